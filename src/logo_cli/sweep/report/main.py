"""Aggregate a reproduction's evaluate JSONs into a table, a JSON and a plot.

    logo sweep scripts/grids/smax_3m.toml --report
    python scripts/aggregate_results.py --out runs/reproduce_smax_3m \
        --markdown docs/results.md --figure docs/figures/reproduce_smax_3m.png

`logo sweep --report` first lays its finished evaluations out as the folder described below
(view.py) and then runs `main` on it.

Reads OUT/eval/<quality>-<method>-s<seed>.json (from `logo evaluate --out`), the policy run's
manifest.json for provenance, OUT/params.json for the intended grid and OUT/logs/steps.tsv for the
wall time. Per quality x method: mean and sample sd (ddof 1) over seeds of the win rate (or, where
nothing is won, MaMuJoCo, the normalised score: 0 = random, 100 = the ladder's expert) and the mean
return, with the number of seeds; a run that is absent counts as missing, never as a zero. Writes
OUT/results.json, the markdown table between markers in --markdown (a rerun replaces only that
block) and a grouped bar chart (win rate and return, error bars = sd over seeds).
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict
from pathlib import Path

from logo_cli.sweep.report.load import commits_line, dataset_win_rates, load_runs, wall_times
from logo_cli.sweep.report.render import (
    DEFAULT_TAG,
    fmt,
    fmt_score,
    markdown_block,
    plot,
    scored,
    write_markdown,
)
from logo_cli.sweep.report.stats import (
    OTHER_BACKBONE_METHODS,
    aggregate,
    backbone_differences,
    compact_results,
    paired_differences,
)


def main(argv: list[str] | None = None, prog: str | None = None) -> dict:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="the reproduction's output directory")
    ap.add_argument("--markdown", type=Path, help="markdown file whose marked block gets the table")
    ap.add_argument("--figure", type=Path, help="PNG of win rate and return per quality and method")
    ap.add_argument("--json", type=Path, help="results JSON (default OUT/results.json)")
    ap.add_argument(
        "--results-json",
        type=Path,
        help="compact results JSON: quality -> method -> seed: win rate, return, episodes, commit",
    )
    ap.add_argument(
        "--tag", default=DEFAULT_TAG, help="names the markdown block's markers (one block per run)"
    )
    args = ap.parse_args(argv)

    params_path = args.out / "params.json"
    params = json.loads(params_path.read_text()) if params_path.is_file() else {}
    runs, skipped = load_runs(args.out)
    qualities = list(params.get("qualities") or dict.fromkeys(r.quality for r in runs))
    methods = list(params.get("methods") or dict.fromkeys(r.method for r in runs))
    seeds = [int(s) for s in params.get("seeds") or sorted({r.seed for r in runs})]
    plans_path = args.out / "plans.json"  # every invocation's grid, when there were several
    plans = json.loads(plans_path.read_text()) if plans_path.is_file() else None
    cells = aggregate(runs, qualities, methods, seeds, plans)
    walls = wall_times(args.out / "logs" / "steps.tsv")
    found_qualities = list(dict.fromkeys(c.quality for c in cells))
    data_rates = dataset_win_rates(
        Path(params.get("artifacts") or args.out), found_qualities, params.get("env", "smax:3m")
    )
    result = {
        "params": params,
        "plans": plans,
        "cells": [asdict(c) for c in cells],
        "runs": [asdict(r) for r in runs],
        "missing": [f"{c.quality}/{c.method}/s{s}" for c in cells for s in c.missing_seeds],
        "not_used": skipped,
        "dataset_win_rates": data_rates,
        "wall_time": walls,
        "paired_vs_logo_weight": [
            d for d in paired_differences(runs) if d["method"] not in OTHER_BACKBONE_METHODS
        ],
        "paired_same_backbone": backbone_differences(runs),
    }
    json_path = args.json or args.out / "results.json"
    tmp = json_path.with_name(f".{json_path.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2, allow_nan=False))
    tmp.replace(json_path)
    if args.results_json is not None:
        args.results_json.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.results_json.with_name(f".{args.results_json.name}.tmp")
        tmp.write_text(json.dumps(compact_results(runs, params, plans), indent=1, allow_nan=False) + "\n")
        tmp.replace(args.results_json)
    if args.markdown is not None:
        figure = None
        if args.figure is not None:
            figure = os.path.relpath(args.figure.resolve(), args.markdown.resolve().parent)
        write_markdown(
            args.markdown,
            markdown_block(
                cells,
                walls,
                {**params, "commit": commits_line(runs, params.get("commit"))},
                data_rates,
                skipped,
                figure,
                result["paired_vs_logo_weight"] + result["paired_same_backbone"],
                args.tag,
            ),
            args.tag,
        )
    if args.figure is not None:
        steps = params.get("policy_steps", "?")
        extra = f", {params['train_args']}" if params.get("train_args") else ""
        title = (
            f"{params.get('env', 'smax:3m')}: greedy evaluation, mean ± sd over seeds "
            f"({steps} policy steps{extra})"
        )
        plot(cells, args.figure, title, data_rates)
    by_score = scored(cells)
    for c in cells:
        if by_score:
            head = "score " + fmt_score(c.normalised_score_mean, c.normalised_score_sd)
        else:
            head = "win " + fmt(c.win_rate_mean, c.win_rate_sd, True)
        ret = fmt(c.return_mean, c.return_sd, False)
        print(f"{c.quality:14s} {c.method:13s} {head:28s} return {ret:24s} n={c.n}/{c.expected}")
    if result["missing"]:
        print(f"missing: {', '.join(result['missing'])}")
    if walls.get("total_s") is not None:
        print(f"wall time: {walls['total_s'] / 60:.1f} min")
    return result


if __name__ == "__main__":
    main()
