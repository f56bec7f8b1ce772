"""Aggregate the evaluate JSONs of a reproduction into a table, a JSON and a plot.

    python scripts/aggregate_results.py --out runs/reproduce_smax_3m \
        --markdown docs/results.md --figure docs/figures/reproduce_smax_3m.png

The aggregation lives in the package (logo_cli.sweep.report, also behind `logo sweep --report`);
this script keeps the command line of earlier reproductions working on their output folders.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The checkout's own package first: the script must aggregate with the code beside it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

# The aggregation's names, for scripts and tests that load this file as a module:
from logo_cli.sweep.report.load import *  # noqa: E402,F403
from logo_cli.sweep.report.main import main  # noqa: E402
from logo_cli.sweep.report.render import *  # noqa: E402,F403
from logo_cli.sweep.report.stats import *  # noqa: E402,F403

if __name__ == "__main__":
    main()
