"""One table across maps: the compact results JSONs of several grids (`--results-json`, one per map)
summed up against the map-set questions, per map x quality cell.

    python -m logo_cli.sweep.cross_map docs/results/smax_2s3z.json docs/results/smax_3s_vs_5z.json ...

Per cell it gives each learner's mean win rate over seeds and three paired differences (same seed,
so the same evaluation episodes): LOGO + MACQL − MACQL, LOGO + CFCQL − CFCQL and CFCQL − MACQL.
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
CFCQL_VS_MACQL = ("cfcql", "macql")


def seed_rates(results: dict, quality: str, method: str) -> dict[str, float]:
    runs = results.get(quality, {}).get(method, {})
    return {s: r["win_rate"] for s, r in runs.items() if r.get("win_rate") is not None}


def paired_mean(results: dict, quality: str, a: str, b: str) -> float | None:
    """Mean over shared seeds of a − b (win rate, points); None unless both have the same seeds."""
    ra, rb = seed_rates(results, quality, a), seed_rates(results, quality, b)
    if not ra or set(ra) != set(rb):
        return None
    return 100.0 * statistics.fmean(ra[s] - rb[s] for s in ra)


def summarise(files: list[dict]) -> dict:
    """Rows per map x quality and the totals the map set is judged on."""
    rows = []
    for doc in files:
        results = doc["results"]
        for quality in results:
            means = {
                m: 100.0 * statistics.fmean(rates.values())
                for m in LEARNERS
                if (rates := seed_rates(results, quality, m))
            }
            diffs = {k: paired_mean(results, quality, *pair) for k, pair in PAIRS.items()}
            diffs["cfcql_vs_macql"] = paired_mean(results, quality, *CFCQL_VS_MACQL)
            rows.append({"env": doc["env"], "quality": quality, "means": means, "diffs": diffs})
    gains = [r["diffs"][k] for r in rows for k in PAIRS if r["diffs"][k] is not None]
    cf = [r["diffs"]["cfcql_vs_macql"] for r in rows if r["diffs"]["cfcql_vs_macql"] is not None]
    below_bc = [
        f"{r['env']} {m}"
        for r in rows
        if r["quality"] == "medium_replay" and "bc" in r["means"]
        for m, v in r["means"].items()
        if m != "bc" and v < r["means"]["bc"]
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
        "medium_replay_learners": replay_learners,
        "medium_replay_below_bc": below_bc,
    }


def _pts(v: float | None) -> str:
    return "–" if v is None else f"{v:+.1f}"


def markdown(summary: dict) -> str:
    head = "| map | quality | LOGO + MACQL | MACQL | LOGO + CFCQL | CFCQL | BC "
    head += "| LOGO − MACQL | LOGO − CFCQL | CFCQL − MACQL |"
    lines = [head, "|---|---|---|---|---|---|---|---|---|---|"]
    for r in summary["rows"]:
        means = " | ".join(f"{r['means'][m]:.1f}" if m in r["means"] else "–" for m in LEARNERS)
        d = r["diffs"]
        lines.append(
            f"| {r['env'].split(':')[-1]} | {r['quality']} | {means} | {_pts(d['logo_vs_macql'])} "
            f"| {_pts(d['logo_vs_cfcql'])} | {_pts(d['cfcql_vs_macql'])} |"
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
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", type=Path, nargs="+", help="compact results JSONs, one per map")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON, not markdown")
    args = ap.parse_args(argv)
    summary = summarise([json.loads(f.read_text()) for f in args.files])
    print(json.dumps(summary, indent=2) if args.json else markdown(summary))
    return summary


if __name__ == "__main__":
    main()
