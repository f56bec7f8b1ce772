"""python -m logo_cli.sweep.report --out DIR [...]: the aggregation's command line (main.py)."""

from logo_cli.sweep.report.main import main

main(prog="python -m logo_cli.sweep.report")
