"""The error budget: a policy's win-rate change from synthetic data against the one-step error of
that data's TD targets, for the oracle at several corruption levels and for learned world models.

Inputs, all files the project's own tools write:
  --targets   benchmarks/td_target_error.py JSONs (repeatable) that measured the oracle with each
              corruption level of the grid (--corrupt ...) and, optionally, learned models;
  --results   sweep results JSONs (`logo sweep --report`'s results-json) holding the real-data
              learner (`--baseline`, default macql) and the oracle methods of the grid;
  --grid      the sweep's grid files (repeatable): their [variants] name each method's corruption
              levels;
  --model-result NAME=METHOD  pairs a td_target_error model row with a results method (learned
              models: e.g. "logo 3155a3bc=logo-weight"; the row is matched by its name's prefix);
  --mark NAME   a model row whose target RMSE is drawn as a vertical line (a model whose policy was
              not trained on these settings).

    python benchmarks/error_budget.py --targets T.json --results R.json --grid G.toml \
        --quality medium --figure docs/figures/error_budget_3m.png

Prints a table (method, target RMSE and its parts, win-rate change with its seed spread) and draws
the figure: win-rate change (points, mean over seeds ± the seeds' standard error) against the
target RMSE.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import tomllib

from logo_cli.models.corruption import Corruption

PARTS = ("next obs only", "next avail only", "next state only", "reward only")


def levels_of(grid: dict, method: str) -> dict[str, float]:
    """The corruption levels a grid method applies (all 0 for a plain method)."""
    table = grid.get("variants", {}).get(method, {})
    given = {k.replace("-", "_"): float(v) for k, v in table.items() if k != "base"}
    return Corruption(**{k: v for k, v in given.items() if k in Corruption().to_dict()}).to_dict()


def win_change(results: list[dict], quality: str, method: str, baseline: str) -> tuple[float, float, int]:
    """Mean over seeds of (method − baseline) win rate in points, its standard error, seeds."""
    by_seed: dict[str, float] = {}  # a run listed by several results files counts once
    for res in results:
        cell = res["results"].get(quality, {})
        if method not in cell or baseline not in cell:
            continue
        for seed, run in cell[method].items():
            if seed in cell[baseline]:
                by_seed[seed] = 100 * (run["win_rate"] - cell[baseline][seed]["win_rate"])
    diffs = list(by_seed.values())
    if not diffs:
        return math.nan, math.nan, 0
    mean = sum(diffs) / len(diffs)
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1)) if len(diffs) > 1 else 0.0
    return mean, sd / math.sqrt(len(diffs)), len(diffs)


def points(args) -> list[dict]:
    targets = {k: v for path in args.targets for k, v in json.loads(path.read_text())["models"].items()}
    results = [json.loads(p.read_text()) for p in args.results]
    grids = [tomllib.loads(path.read_text()) for path in args.grid]
    grid = {"methods": list(dict.fromkeys(m for g in grids for m in g["methods"])),
            "variants": {k: v for g in grids for k, v in g.get("variants", {}).items()}}  # fmt: skip
    rows = []
    methods = [m for m in grid["methods"] if m != args.baseline and grid["variants"].get(m, {}).get(
        "base", m).startswith("oracle")]  # fmt: skip
    for method in methods:
        levels = levels_of(grid, method)
        match = [v for v in targets.values() if v["kind"] == "oracle" and v.get("corruption") == levels]
        if not match:
            raise SystemExit(f"--targets: no oracle row with the levels of {method} ({levels})")
        rows.append({"method": method, "levels": levels, "target": match[0]})
    for pair in args.model_result:
        name, _, method = pair.partition("=")
        match = [v for k, v in targets.items() if k.startswith(name) and "+" not in k]
        if not match:
            raise SystemExit(f"--targets: no model row named {name!r}")
        rows.append({"method": method, "levels": None, "target": match[0]})
    for row in rows:
        row["change"], row["se"], row["seeds"] = win_change(
            results, args.quality, row["method"], args.baseline
        )
    return rows


def draw(rows: list[dict], marks: dict[str, float], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    oracle = sorted((r for r in rows if r["levels"] is not None), key=lambda r: r["target"]["target"]["rmse"])
    xs = [r["target"]["target"]["rmse"] for r in oracle]
    ax.errorbar(xs, [r["change"] for r in oracle], yerr=[r["se"] for r in oracle], fmt="o-", color="tab:blue",
                capsize=3, label="oracle at increasing corruption")  # fmt: skip
    for i, r in enumerate(r for r in rows if r["levels"] is None):
        x = r["target"]["target"]["rmse"]
        label = f"{r['method']} (same learner settings)"
        ax.errorbar([x], [r["change"]], yerr=[r["se"]], fmt="s", color=f"C{i + 1}", capsize=3, label=label)
    for i, (name, x) in enumerate(sorted(marks.items())):
        ax.axvline(
            x, color=f"C{i + 4}", ls="--", lw=1.0, label=f"{name}: target RMSE (policy not trained here)"
        )
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xlabel("one-step TD-target RMSE of the synthetic rows")
    ax.set_ylabel("win rate − MACQL on real data (points)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--targets", type=Path, action="append", required=True)
    ap.add_argument("--results", type=Path, action="append", required=True)
    ap.add_argument("--grid", type=Path, action="append", required=True)
    ap.add_argument("--quality", required=True)
    ap.add_argument("--baseline", default="macql")
    ap.add_argument("--model-result", action="append", default=[])
    ap.add_argument(
        "--mark", action="append", default=[], help="a model row (name prefix) drawn as a line at its RMSE"
    )
    ap.add_argument("--figure", type=Path)
    ap.add_argument("--title", default="The error budget")
    args = ap.parse_args()
    rows = points(args)
    print("| method | target RMSE | " + " | ".join(PARTS) + " | win-rate change (points, ± s.e.) | seeds |")
    print("|---|---|" + "---|" * len(PARTS) + "---|---|")
    for r in sorted(rows, key=lambda r: r["target"]["target"]["rmse"]):
        t = r["target"]
        parts = " | ".join(f"{t[p]['rmse']:.3f}" for p in PARTS)
        print(f"| {r['method']} | {t['target']['rmse']:.3f} | {parts} | {r['change']:+.1f} ± {r['se']:.1f} | "
              f"{r['seeds']} |")  # fmt: skip
    targets = {k: v for path in args.targets for k, v in json.loads(path.read_text())["models"].items()}
    marks = {}
    for name in args.mark:
        found = [v for k, v in targets.items() if k.startswith(name) and "+" not in k]
        if not found:
            raise SystemExit(f"--mark {name}: no such model row")
        marks[name.split()[0]] = found[0]["target"]["rmse"]
        print(f"{name}: target RMSE {marks[name.split()[0]]:.3f} (no policy trained on its rows here)")
    if args.figure:
        draw(rows, marks, args.figure, args.title)


if __name__ == "__main__":
    main()
