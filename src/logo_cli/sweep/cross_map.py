"""One table across maps: the compact results JSONs of several grids (`--results-json`, one per map)
summed up against the map-set questions, per map x quality cell.

    python -m logo_cli.sweep.cross_map docs/results/smax_2s3z.json docs/results/smax_3s_vs_5z.json ...

Per cell it gives each learner's mean win rate over seeds and three paired differences (same seed,
so the same evaluation episodes): LOGO + MACQL − MACQL, LOGO + CFCQL − CFCQL and CFCQL − MACQL, in
win-rate points, or in mean return where no learner of the cell won 1% of its episodes
(`--min-win-rate`).
Below the table: on how many (cell, backbone) pairs LOGO's data raised the backbone's mean and by how
much on average, CFCQL − MACQL on average, and on medium_replay which learners reached BC. Only cells
with every seed of both sides count in a difference; nothing missing is read as zero.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

LEARNERS = ("logo-weight", "macql", "logo-cfcql", "cfcql", "bc")
# (with, without): the difference `with` − `without` per seed
PAIRS = {"logo_vs_macql": ("logo-weight", "macql"), "logo_vs_cfcql": ("logo-cfcql", "cfcql")}
# every per-cell difference: LOGO's two pairs, then the backbones against each other
DIFFS = {**PAIRS, "cfcql_vs_macql": ("cfcql", "macql")}


def seed_rates(results: dict, quality: str, method: str, key: str = "win_rate") -> dict[str, float]:
    runs = results.get(quality, {}).get(method, {})
    return {s: r[key] for s, r in runs.items() if r.get(key) is not None}


def paired_mean(results: dict, quality: str, a: str, b: str, key: str = "win_rate") -> float | None:
    """Mean over shared seeds of a − b (win rate in points, or return); None unless both sides have
    the same seeds."""
    ra, rb = seed_rates(results, quality, a, key), seed_rates(results, quality, b, key)
    if not ra or set(ra) != set(rb):
        return None
    scale = 100.0 if key == "win_rate" else 1.0
    return scale * statistics.fmean(ra[s] - rb[s] for s in ra)


def learner_means(results: dict, quality: str, key: str) -> dict[str, float]:
    """Each learner's mean over its seeds (win rate in points, or return)."""
    scale = 100.0 if key == "win_rate" else 1.0
    return {
        m: scale * statistics.fmean(per_seed.values())
        for m in LEARNERS
        if (per_seed := seed_rates(results, quality, m, key))
    }


def summarise(files: list[dict], min_win_rate: float = 1.0) -> dict:
    """Rows per map x quality and the totals the map set is judged on. A cell where every learner's
    mean win rate is below `min_win_rate` points is compared on the mean return instead."""
    rows = []
    for doc in files:
        results = doc["results"]
        for quality in results:
            means = learner_means(results, quality, "win_rate")
            returns = learner_means(results, quality, "return_mean")
            # Where (almost) nothing is won a win-rate tie, or one lucky episode, says nothing: such
            # cells are compared on the mean return instead, and kept out of the win-rate totals.
            won = any(v >= min_win_rate for v in means.values())
            key = "win_rate" if won else "return_mean"
            diffs = {k: paired_mean(results, quality, *pair, key=key) for k, pair in DIFFS.items()}
            rows.append(
                {"env": doc["env"], "quality": quality, "means": means, "return_means": returns}
                | {"won": won, "headline": means if won else returns, "diffs": diffs}
            )
    won_rows = [r for r in rows if r["won"]]
    gains = [r["diffs"][k] for r in won_rows for k in PAIRS if r["diffs"][k] is not None]
    return_gains = [r["diffs"][k] for r in rows if not r["won"] for k in PAIRS if r["diffs"][k] is not None]
    cf = [r["diffs"]["cfcql_vs_macql"] for r in won_rows if r["diffs"]["cfcql_vs_macql"] is not None]
    below_bc = [  # on the cell's own headline: win rate, or return where nothing is won
        f"{r['env']} {m}"
        for r in rows
        if r["quality"] == "medium_replay" and "bc" in r["headline"]
        for m, v in r["headline"].items()
        if m != "bc" and v < r["headline"]["bc"]
    ]
    replay_learners = sum(
        len([m for m in r["means"] if m != "bc"])
        for r in rows
        if r["quality"] == "medium_replay" and "bc" in r["means"]
    )
    return {
        "rows": rows,
        "logo_pairs": len(gains),
        "logo_pairs_higher": sum(g > 0 for g in gains),
        "logo_mean_gain": statistics.fmean(gains) if gains else None,
        "cfcql_vs_macql_mean": statistics.fmean(cf) if cf else None,
        "min_win_rate": min_win_rate,
        "unwon_cells": [f"{r['env']} {r['quality']}" for r in rows if not r["won"]],
        "unwon_logo_pairs": len(return_gains),
        "unwon_logo_pairs_higher": sum(g > 0 for g in return_gains),
        "medium_replay_learners": replay_learners,
        "medium_replay_below_bc": below_bc,
    }


def _pts(v: float | None, won: bool = True) -> str:
    if v is None:
        return "–"
    return f"{v:+.1f}" if won else f"return {v:+.3f}"


def markdown(summary: dict) -> str:
    head = "| map | quality | LOGO + MACQL | MACQL | LOGO + CFCQL | CFCQL | BC "
    head += "| LOGO − MACQL | LOGO − CFCQL | CFCQL − MACQL |"
    lines = [head, "|---|---|---|---|---|---|---|---|---|---|"]
    for r in summary["rows"]:
        means = " | ".join(f"{r['means'][m]:.1f}" if m in r["means"] else "–" for m in LEARNERS)
        d = r["diffs"]
        lines.append(
            f"| {r['env'].split(':')[-1]} | {r['quality']} | {means} | {_pts(d['logo_vs_macql'], r['won'])} "
            f"| {_pts(d['logo_vs_cfcql'], r['won'])} | {_pts(d['cfcql_vs_macql'], r['won'])} |"
        )
    s = summary
    lines += [
        "",
        f"LOGO's data raised the backbone's mean win rate on {s['logo_pairs_higher']} of "
        f"{s['logo_pairs']} (cell, backbone) pairs, mean change {_pts(s['logo_mean_gain'])} points; "
        f"CFCQL − MACQL {_pts(s['cfcql_vs_macql_mean'])} points on average; on medium_replay "
        f"{s['medium_replay_learners'] - len(s['medium_replay_below_bc'])} of "
        f"{s['medium_replay_learners']} learner cells reached BC"
        + (f" (below: {', '.join(s['medium_replay_below_bc'])})." if s["medium_replay_below_bc"] else "."),
    ]
    if s["unwon_cells"]:
        lines.append(
            f"No learner won {s['min_win_rate']:g}% of its episodes in {', '.join(s['unwon_cells'])}: "
            "those cells compare mean returns "
            f"and are left out of the totals above; there LOGO's data raised the return on "
            f"{s['unwon_logo_pairs_higher']} of {s['unwon_logo_pairs']} pairs."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", type=Path, nargs="+", help="compact results JSONs, one per map")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON, not markdown")
    ap.add_argument(
        "--min-win-rate",
        type=float,
        default=1.0,
        help="cells where every learner wins less (points) compare returns instead (default: 1.0)",
    )
    args = ap.parse_args(argv)
    summary = summarise([json.loads(f.read_text()) for f in args.files], args.min_win_rate)
    print(json.dumps(summary, indent=2) if args.json else markdown(summary))
    return summary


if __name__ == "__main__":
    main()
