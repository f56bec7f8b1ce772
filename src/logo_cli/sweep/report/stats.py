"""The statistics of a reproduction: per quality x method mean and sd over seeds, the paired
per-seed differences, and the compact machine-readable results."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from logo_cli.sweep.report.load import METHOD_LABELS, Run


@dataclass
class Cell:
    quality: str
    method: str
    n: int
    expected: int
    win_rate_mean: float | None
    win_rate_sd: float | None
    return_mean: float | None
    return_sd: float | None
    seeds: list[int]
    missing_seeds: list[int]
    win_rates: list[float | None]
    normalised_score_mean: float | None = None
    normalised_score_sd: float | None = None
    normalised_scores: list[float | None] = field(default_factory=list)


def mean_sd(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample sd; sd is None below two values (undefined, not zero)."""
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def planned_cells(plans: list[dict], runs: list[Run]) -> list[tuple[str, str]]:
    """The (quality, method) cells of the grid: the union of every invocation's qualities x methods,
    plus any cell found in the runs; ordered by quality (first seen), then method (first seen).
    A cell no invocation asked for and no run has is not part of the grid (not "missing")."""
    wanted = {(q, m) for plan in plans for q in plan["qualities"] for m in plan["methods"]}
    wanted |= {(r.quality, r.method) for r in runs}
    qualities = [q for plan in plans for q in plan["qualities"]] + [r.quality for r in runs]
    methods = [m for plan in plans for m in plan["methods"]] + [r.method for r in runs]
    if len(plans) > 1:  # several invocations: the known methods in their usual order, then the rest
        methods = [m for m in METHOD_LABELS if m in methods] + methods
    return [(q, m) for q in dict.fromkeys(qualities) for m in dict.fromkeys(methods) if (q, m) in wanted]


def aggregate(
    runs: list[Run],
    qualities: list[str],
    methods: list[str],
    seeds: list[int],
    plans: list[dict] | None = None,
) -> list[Cell]:
    """One cell per quality x method of the grid (planned, plus any found in the runs). `plans` (one
    per invocation of the script: its qualities and methods) replaces the single qualities x methods
    plan when several invocations filled different parts of the grid."""
    plans = plans or [{"qualities": qualities, "methods": methods}]
    cells = []
    for q, m in planned_cells(plans, runs):
        mine = sorted((r for r in runs if r.quality == q and r.method == m), key=lambda r: r.seed)
        wr_mean, wr_sd = mean_sd([r.win_rate for r in mine if r.win_rate is not None])
        ret_mean, ret_sd = mean_sd([r.return_mean for r in mine])
        ns_mean, ns_sd = mean_sd([r.normalised_score for r in mine if r.normalised_score is not None])
        have = [r.seed for r in mine]
        cells.append(
            Cell(
                quality=q,
                method=m,
                n=len(mine),
                expected=len(seeds),
                win_rate_mean=wr_mean,
                win_rate_sd=wr_sd,
                return_mean=ret_mean,
                return_sd=ret_sd,
                seeds=have,
                missing_seeds=[s for s in seeds if s not in have],
                win_rates=[r.win_rate for r in mine],
                normalised_score_mean=ns_mean,
                normalised_score_sd=ns_sd,
                normalised_scores=[r.normalised_score for r in mine],
            )
        )
    return cells


def paired_differences(runs: list[Run], reference: str = "logo-weight") -> list[dict]:
    """Headline figure (win rate, or normalised score / 100 where nothing is won) of `reference` minus
    each other method's, seed by seed (same data, same evaluation seeds), over the seeds both have:
    the comparison the paper's claim is about."""
    out = []
    by = {(r.quality, r.method, r.seed): r.headline for r in runs if r.headline is not None}
    for q in dict.fromkeys(r.quality for r in runs):
        for m in dict.fromkeys(r.method for r in runs if r.quality == q and r.method != reference):
            seeds = sorted(s for (qq, mm, s) in by if qq == q and mm == m and (q, reference, s) in by)
            diffs = [by[(q, reference, s)] - by[(q, m, s)] for s in seeds]
            mean, sd = mean_sd(diffs)
            positive = sum(d > 0 for d in diffs)
            out.append(
                {"quality": q, "reference": reference, "method": m, "seeds": seeds, "diffs": diffs}
                | {"mean": mean, "sd": sd, "positive": positive}
            )
    return [d for d in out if d["seeds"]]


# LOGO on another backbone and the methods it is compared with seed by seed (same learner).
BACKBONE_PEERS = {
    "logo-cfcql": ("cfcql",),
    "logo-td3bc": ("td3bc", "logo-td3bc-penalty", "logo-td3bc-uniform"),
}


# LOGO + MACQL is compared with every method except LOGO on another backbone (a different learner).
OTHER_BACKBONE_METHODS = {m for m in BACKBONE_PEERS if m.startswith("logo-")} | {
    p for peers in BACKBONE_PEERS.values() for p in peers if p.startswith("logo-")
}


def backbone_differences(runs: list[Run]) -> list[dict]:
    """paired_differences of LOGO on the CFCQL and TD3+BC backbones against their own peers."""
    return [
        d
        for ref, peers in BACKBONE_PEERS.items()
        for d in paired_differences(runs, ref)
        if d["method"] in peers
    ]


def compact_results(runs: list[Run], params: dict, plans: list[dict] | None = None) -> dict:
    """The machine-readable results: per quality x method x seed the win rate, mean return, evaluation
    episodes and the commit that trained it (from its manifest; the sweep's commit where the manifest
    has none); `params` are the last invocation's, `plans` every invocation's qualities x methods."""
    commit = params.get("commit")
    table: dict = {}
    for r in sorted(runs, key=lambda r: (r.quality, r.method, r.seed)):
        table.setdefault(r.quality, {}).setdefault(r.method, {})[f"s{r.seed}"] = {
            "win_rate": r.win_rate,
            "return_mean": r.return_mean,
            **({} if r.win_rate is not None else {"normalised_score": r.normalised_score}),
            "episodes": r.episodes,
            "commit": r.provenance.get("commit") or commit,
        }
    return {
        "env": params.get("env", "smax:3m"),
        "methods": {m: METHOD_LABELS.get(m, m) for m in dict.fromkeys(r.method for r in runs)},
        # Where this machine kept the artifacts says nothing about the results and would point
        # outside the repository: the published file leaves it out.
        "params": {k: v for k, v in params.items() if k != "artifacts"},
        "plans": plans or [{"qualities": params.get("qualities"), "methods": params.get("methods")}],
        "results": table,
    }
