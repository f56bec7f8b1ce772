"""Aggregating a reproduction's evaluations: load.py reads the folder, stats.py computes the cells
and paired differences, render.py writes the markdown block and the plot, main.py is the command
line (`python -m logo_cli.sweep.report`, scripts/aggregate_results.py) and view.py lays a sweep's
artifacts out as such a folder (`logo sweep --report`)."""

from logo_cli.sweep.report.main import main
from logo_cli.sweep.report.view import sweep_report, sweep_view

__all__ = ["main", "sweep_report", "sweep_view"]
