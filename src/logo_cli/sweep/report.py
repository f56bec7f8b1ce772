"""Aggregate a reproduction's evaluate JSONs into a table, a JSON and a plot.

    logo sweep scripts/grids/smax_3m.toml --report
    python scripts/aggregate_results.py --out runs/reproduce_smax_3m \
        --markdown docs/results.md --figure docs/figures/reproduce_smax_3m.png

`logo sweep --report` first lays its finished evaluations out as the folder described below
(`sweep_view`) and then runs `main` on it.

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
import csv
import json
import os
import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

DEFAULT_TAG = "reproduce_smax_3m"


def markers(tag: str = DEFAULT_TAG) -> tuple[str, str]:
    """The block's start and end comments; one block per tag, so several runs share a page."""
    return f"<!-- {tag}:start -->", f"<!-- {tag}:end -->"


START, END = markers()
METHOD_LABELS = {
    "logo-weight": "LOGO + MACQL (weight)",
    "logo-penalty": "LOGO + MACQL (penalty)",
    "logo-uniform": "LOGO + MACQL (uniform)",
    "global-weight": "global model + MACQL (weight)",
    "ensemble-weight": "ensemble + MACQL (weight)",
    "macql": "MACQL (real only)",
    "bc": "BC",
    "cfcql": "CFCQL (real only)",
    "logo-cfcql": "LOGO + CFCQL (weight)",
    "td3bc": "MA-TD3+BC (real only)",
    "logo-td3bc": "LOGO + MA-TD3+BC (weight)",
    "logo-td3bc-penalty": "LOGO + MA-TD3+BC (penalty)",
    "logo-td3bc-uniform": "LOGO + MA-TD3+BC (uniform)",
}
# What each method's train-policy manifest must say (algo, mode), to catch mislabelled runs.
METHOD_CONFIG = {
    "logo-weight": ("macql", "weight"),
    "logo-penalty": ("macql", "penalty"),
    "logo-uniform": ("macql", "uniform"),
    "global-weight": ("macql", "weight"),
    "ensemble-weight": ("macql", "weight"),
    "macql": ("macql", "real-only"),
    "bc": ("bc", "real-only"),
    "cfcql": ("cfcql", "real-only"),
    "logo-cfcql": ("cfcql", "weight"),
    "td3bc": ("td3bc", "real-only"),
    "logo-td3bc": ("td3bc", "weight"),
    "logo-td3bc-penalty": ("td3bc", "penalty"),
    "logo-td3bc-uniform": ("td3bc", "uniform"),
}


@dataclass
class Run:
    quality: str
    method: str
    seed: int
    win_rate: float | None  # None where nothing is won (MaMuJoCo)
    return_mean: float
    episodes: int
    file: str
    provenance: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    normalised_score: float | None = None  # 0 = random, 100 = the dataset's expert; None: no references

    @property
    def headline(self) -> float | None:
        """The figure methods are compared on, as a fraction: the win rate, else the normalised
        score / 100, else nothing (no win, no reference returns)."""
        if self.win_rate is not None:
            return self.win_rate
        return None if self.normalised_score is None else self.normalised_score / 100.0


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


def parse_name(path: Path) -> tuple[str, str, int] | None:
    """<quality>-<method>-s<seed>.json -> parts; qualities use '_', methods may use '-'."""
    stem = path.stem
    quality, sep, rest = stem.partition("-")
    method, sep2, seed = rest.rpartition("-s")
    if not (sep and sep2 and quality and method and seed.isdigit()):
        return None
    return quality, method, int(seed)


def provenance(ev: dict, method: str, seed: int) -> tuple[dict, list[str]]:
    """The policy run's manifest: what trained it, on what data, for how long."""
    problems: list[str] = []
    policy = ev.get("policy") or {}
    run_dir = policy.get("run")
    prov: dict = {"policy_hash": policy.get("hash"), "policy_run": run_dir}
    manifest_path = Path(run_dir) / "manifest.json" if run_dir else None
    if manifest_path is None or not manifest_path.is_file():
        problems.append("no policy manifest")
        return prov, problems
    manifest = json.loads(manifest_path.read_text())
    cfg = manifest.get("config", {})
    inputs = manifest.get("inputs", {})
    prov.update(
        algo=cfg.get("algo"),
        mode=cfg.get("mode"),
        steps=cfg.get("steps"),
        train_seed=cfg.get("seed"),
        data_hash=(inputs.get("data") or {}).get("hash"),
        synthetic_hash=(inputs.get("synthetic") or {}).get("hash"),
        c=(manifest.get("sampler") or {}).get("c"),
        train_wall_s=manifest.get("wall_time_s"),
        steps_per_s=(manifest.get("metrics") or {}).get("steps_per_s"),
        commit=run_commit(manifest.get("provenance") or {}),
    )
    want = METHOD_CONFIG.get(method)
    if want is not None and (cfg.get("algo"), cfg.get("mode")) != want:
        problems.append(f"manifest says algo={cfg.get('algo')} mode={cfg.get('mode')}, expected {want}")
    if cfg.get("seed") is not None and cfg.get("seed") != seed:
        problems.append(f"manifest seed {cfg.get('seed')} != file seed {seed}")
    return prov, problems


def run_commit(prov: dict) -> str | None:
    """The short commit of the code that trained a policy, from its manifest; "-dirty" where that
    checkout had uncommitted changes; None for a non-git install."""
    sha = prov.get("git_commit")
    if not sha:
        return None
    return sha[:7] + ("-dirty" if prov.get("git_dirty") else "")


def commits_line(runs: list[Run], fallback: str | None) -> str | None:
    """The commits that trained the runs, with counts where a resumed grid spans several."""
    counts = Counter(r.provenance.get("commit") or fallback for r in runs)
    counts.pop(None, None)
    if len(counts) <= 1:
        return next(iter(counts), fallback)
    ordered = sorted(counts.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{c} ({n} run{'s' * (n > 1)})" for c, n in ordered)


def load_runs(out: Path) -> tuple[list[Run], list[str]]:
    """Every evaluate JSON under OUT/eval; unreadable or misnamed files are reported, not used."""
    runs: list[Run] = []
    skipped: list[str] = []
    for path in sorted((out / "eval").glob("*.json")):
        parts = parse_name(path)
        if parts is None:
            skipped.append(f"{path.name}: name is not <quality>-<method>-s<seed>.json")
            continue
        try:
            ev = json.loads(path.read_text())
            win_rate = None if ev["win_rate"] is None else float(ev["win_rate"])
            ret, episodes = float(ev["return_mean"]), int(ev["episodes"])
            score = ev.get("normalised_score")
            score = None if score is None else float(score)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            skipped.append(f"{path.name}: unreadable evaluate JSON ({exc})")
            continue
        quality, method, seed = parts
        prov, problems = provenance(ev, method, seed)
        runs.append(Run(quality, method, seed, win_rate, ret, episodes, str(path), prov, problems, score))
    return runs, skipped


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


def wall_times(steplog: Path) -> dict:
    """Total wall time = sum of the script's invocations (a resumed run has several, redone work
    included). Per stage: the time of each step's last completed run, the one whose artifact is
    used (a step redone after its artifact was deleted counts once there)."""
    if not steplog.is_file():
        return {"total_s": None, "sessions": 0, "by_stage_s": {}, "steps_ran": 0, "steps_failed": 0}
    total, sessions, failed = 0.0, 0, 0
    last_run: dict[str, float] = {}
    with steplog.open() as f:
        for row in csv.DictReader(f, delimiter="\t"):
            seconds = float(row["seconds"])
            if row["kind"] == "session":
                total += seconds
                sessions += 1
            elif row["status"] == "ran":
                last_run[row["name"]] = seconds
            elif row["status"].startswith("failed"):
                failed += 1
    by_stage: dict[str, float] = {}
    for name, seconds in last_run.items():
        stage = name.split("-", 1)[0]
        by_stage[stage] = by_stage.get(stage, 0.0) + seconds
    return {
        "total_s": total if sessions else None,
        "sessions": sessions,
        "by_stage_s": by_stage,
        "steps_ran": len(last_run),
        "steps_failed": failed,
    }


def dataset_win_rates(out: Path, qualities: list[str], env: str = "smax:3m") -> dict[str, float]:
    """Win rate of each collected dataset (its behaviour policy, sampled), for reference: the files
    OUT/data/<env with : as _>_<quality>.h5 (smax_3m_medium.h5). A dataset with reference returns
    (MaMuJoCo, nothing won) gives its normalised score / 100 instead."""
    rates: dict[str, float] = {}
    stem = env.replace(":", "_")
    for q in qualities:
        path = out / "data" / f"{stem}_{q}.h5"
        if not path.is_file():
            continue
        import h5py

        with h5py.File(path, "r") as f:
            n = f.attrs.get("n_episodes")
            wins = f.attrs.get("n_wins")
            refs = [f.attrs.get(f"reference_return_{k}") for k in ("random", "expert")]
        if n and None not in refs:  # nothing is won here (MaMuJoCo): the normalised score / 100
            from logo_cli.data.h5 import open_dataset
            from logo_cli.data.layout import normalised_score

            with open_dataset(path) as ds:
                mean_return = float(ds.transitions().reward.sum()) / float(n)
            rates[q] = normalised_score(mean_return, float(refs[0]), float(refs[1])) / 100.0
        elif n and wins is not None:
            rates[q] = float(wins) / float(n)
    return rates


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


def scored(cells: list[Cell]) -> bool:
    """True where the cells' runs win nothing (MaMuJoCo): the normalised score is their headline."""
    return any(c.n for c in cells) and all(c.win_rate_mean is None for c in cells if c.n)


def fmt_score(mean: float | None, sd: float | None) -> str:
    if mean is None:
        return "missing"
    return f"{mean:.1f}" + (f" ± {sd:.1f}" if sd is not None else " (1 seed, no sd)")


def fmt(mean: float | None, sd: float | None, pct: bool) -> str:
    if mean is None:
        return "missing"
    scale, unit = (100.0, "%") if pct else (1.0, "")
    digits = 1 if pct else 3
    text = f"{mean * scale:.{digits}f}{unit}"
    return text + (f" ± {sd * scale:.{digits}f}" if sd is not None else " (1 seed, no sd)")


def markdown_block(
    cells: list[Cell],
    walls: dict,
    params: dict,
    data_rates: dict,
    skipped: list[str],
    figure: str | None = None,
    paired: list[dict] | None = None,
    tag: str = DEFAULT_TAG,
) -> str:
    """The table and its notes, between the markers; `figure` is a path relative to the markdown."""
    start, end = markers(tag)
    by_score = scored(cells)
    name = "normalised score" if by_score else "win rate"
    lines = [
        start,
        "",
        f"| quality | method | {name} (mean ± sd) | return (mean ± sd) | seeds | {name} per seed |",
    ]
    lines.append("|---|---|---|---|---|---|")
    for c in cells:
        if by_score:
            per_seed = ", ".join(
                f"s{s}: " + ("-" if v is None else f"{v:.1f}")
                for s, v in zip(c.seeds, c.normalised_scores, strict=True)
            )
            head = fmt_score(c.normalised_score_mean, c.normalised_score_sd)
        else:
            per_seed = ", ".join(
                f"s{s}: " + ("-" if w is None else f"{w:.1%}")
                for s, w in zip(c.seeds, c.win_rates, strict=True)
            )
            head = fmt(c.win_rate_mean, c.win_rate_sd, True)
        seeds = f"{c.n}/{c.expected}" + (
            f" (missing {', '.join(f's{s}' for s in c.missing_seeds)})" if c.missing_seeds else ""
        )
        label = METHOD_LABELS.get(c.method, c.method)
        ret = fmt(c.return_mean, c.return_sd, False)
        lines.append(f"| {c.quality} | {label} | {head} | {ret} | {seeds} | {per_seed or '-'} |")
    lines.append("")
    for d in paired or []:
        diffs = ", ".join(f"{x * 100:+.1f}" for x in d["diffs"])
        lines.append(
            f"- {d['quality']}: {METHOD_LABELS.get(d['reference'], d['reference'])} minus "
            f"{METHOD_LABELS.get(d['method'], d['method'])}, {name} per seed (points): {diffs}; "
            f"mean {d['mean'] * 100:+.1f}"
            + (f" ± {d['sd'] * 100:.1f}" if d["sd"] is not None else "")
            + f", higher on {d['positive']}/{len(d['diffs'])} seeds"
        )
    if paired:
        lines.append("")
    if data_rates:
        if by_score:
            ref = ", ".join(f"{q} {r * 100:.1f}" for q, r in data_rates.items())
        else:
            ref = ", ".join(f"{q} {r:.1%}" for q, r in data_rates.items())
        lines.append(f"Datasets' own {name}s (behaviour policy, sampled actions): {ref}.")
    missing = [f"{c.quality}/{c.method}/s{s}" for c in cells for s in c.missing_seeds]
    lines.append(f"Missing runs: {', '.join(missing) if missing else 'none'}.")
    for s in skipped:
        lines.append(f"Not used: {s}.")
    if walls.get("total_s") is not None:
        stages = ", ".join(f"{k} {v / 60:.1f}" for k, v in sorted(walls["by_stage_s"].items()))
        lines.append(
            f"Wall time: {walls['total_s'] / 60:.1f} min over {walls['sessions']} invocation(s) of the "
            "script "
            f"(step time summed per stage, min: {stages}; steps overlap when JOBS > 1)."
        )
    if params:
        keys = (
            "episodes",
            "wm_steps",
            "horizon",
            "rollout_starts",
            "policy_steps",
            "eval_episodes",
            "train_args",
            "jobs",
            "commit",
        )
        shown = [f"{k} {params[k]}" for k in keys if params.get(k) not in (None, "")]
        lines.append("Parameters: " + ", ".join(shown) + ".")
    if figure is not None:
        lines += ["", f"![{name} and return per quality and method]({figure})"]
    lines += ["", end]
    return "\n".join(lines)


def write_markdown(path: Path, block: str, tag: str = DEFAULT_TAG) -> None:
    """Replace the tag's block between its markers; append it (or create the file) when absent."""
    start, end = markers(tag)
    text = path.read_text() if path.is_file() else "# Results\n"
    if start in text and end in text:
        head, _, rest = text.partition(start)
        _, _, tail = rest.partition(end)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def plot(cells: list[Cell], path: Path, title: str, data_rates: dict[str, float] | None = None) -> None:
    """Grouped bars per quality (win rate left, return right); the dataset's own win rate dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    qualities = list(dict.fromkeys(c.quality for c in cells))
    methods = list(dict.fromkeys(c.method for c in cells))
    by = {(c.quality, c.method): c for c in cells}
    by_score = scored(cells)
    fig, axes = plt.subplots(1, 2, figsize=(max(8.0, 3.2 * len(qualities) + 4), 4.6))
    width = 0.8 / max(1, len(methods))
    x = np.arange(len(qualities))
    colors = plt.get_cmap("tab10").colors
    headline = ("normalised_score", "normalised score (0 random, 100 expert)", 1.0)
    for ax, key, label, scale in (
        (axes[0], *(headline if by_score else ("win_rate", "win rate (%)", 100.0))),
        (axes[1], "return", "mean episode return", 1.0),
    ):
        for j, m in enumerate(methods):
            pos = x - 0.4 + width * (j + 0.5)
            for i, q in enumerate(qualities):
                c = by.get((q, m))
                mean = getattr(c, f"{key}_mean") if c else None
                if mean is None:  # asked for but absent: "missing"; never asked for: "not run"
                    absent = "missing" if c else "not run"
                    ax.text(
                        pos[i], 0, absent, rotation=90, ha="center", va="bottom", fontsize=7, color="grey"
                    )
                    continue
                sd = getattr(c, f"{key}_sd")
                ax.bar(
                    pos[i],
                    mean * scale,
                    width,
                    color=colors[j % 10],
                    label=METHOD_LABELS.get(m, m) if i == 0 else None,
                )
                if abs(mean * scale) < 0.5:  # a zero-height bar is invisible: mark it in its colour
                    ax.plot(
                        [pos[i] - width / 2, pos[i] + width / 2],
                        [0, 0],
                        color=colors[j % 10],
                        lw=4,
                        solid_capstyle="butt",
                        clip_on=False,
                    )
                if sd is not None:
                    ax.errorbar(pos[i], mean * scale, yerr=sd * scale, color="black", capsize=3, lw=1)
                # returns in the thousands (MaMuJoCo) get no decimals: labels of neighbouring bars collide
                plain = f"{mean:.0f}" if abs(mean) >= 100 else f"{mean:.2f}"
                note = {"win_rate": f"{mean * scale:.0f}%", "normalised_score": f"{mean:.0f}"}.get(key, plain)
                if c.n < c.expected:
                    note += f"\nn={c.n}"
                top = (mean + (sd or 0.0)) * scale
                ax.text(pos[i], top, note, ha="center", va="bottom", fontsize=7)
        ax.set_xticks(x, qualities)
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    for i, q in enumerate(qualities):
        if data_rates and q in data_rates:
            axes[0].hlines(
                data_rates[q] * 100,
                x[i] - 0.45,
                x[i] + 0.45,
                colors="black",
                linestyles="dashed",
                lw=1,
                label="dataset (behaviour, sampled)" if i == 0 else None,
            )
    if not by_score:  # a normalised score can fall below 0 or pass 100
        axes[0].set_ylim(0, 105)
    handles, labels = axes[0].get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda k: labels[k].startswith("dataset"))  # methods first
    handles, labels = [handles[k] for k in order], [labels[k] for k in order]
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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


# ---- `logo sweep --report`: the sweep's artifacts laid out as a reproduction folder --------------


def sweep_view(grid, tasks, root: Path, env: str, view: Path) -> Path:
    """VIEW/eval/<quality>-<method>-s<seed>.json and VIEW/data/<env>_<quality>.h5 as links to one
    map's finished artifacts, params.json and plans.json from the grid, logs/steps.tsv the sweep's
    own: the folder `main` reads. Rebuilt at every report (unfinished tasks simply have no link)."""
    import shutil
    import subprocess

    shutil.rmtree(view, ignore_errors=True)
    (view / "eval").mkdir(parents=True)
    (view / "data").mkdir()
    (view / "logs").mkdir()
    stem = env.replace(":", "_")
    for t in tasks:
        if t.meta.get("env") != env or not t.done(root):
            continue
        if t.stage == "evaluate":
            name = f"{t.meta['quality']}-{t.meta['method']}-s{t.seed}.json"
            (view / "eval" / name).symlink_to(t.artifact(root))
        elif t.stage == "dataset":
            (view / "data" / f"{stem}_{t.meta['quality']}.h5").symlink_to(t.artifact(root))
    steps = root / "logs" / "steps.tsv"
    if steps.is_file():
        (view / "logs" / "steps.tsv").symlink_to(steps)
    # The commit of the code that ran the stages (this package's checkout), not of the grid file's
    # folder, which may be outside any repository; empty for an installed, non-git copy.
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent,
    ).stdout.strip()
    train = grid.options["train-policy"]
    params = {
        "env": env,
        "qualities": grid.qualities,
        "methods": grid.methods,
        "seeds": grid.seeds,
        "grid": grid.path.name,
        "options": grid.tables,  # as written in the grid file (relative paths stay relative)
        "policy_steps": train["steps"][1] if "steps" in train else None,
        "eval_seed": grid.eval_seed,
        "commit": commit or None,
        "artifacts": str(view),
    }
    (view / "params.json").write_text(json.dumps(params, indent=2))
    (view / "plans.json").write_text(json.dumps([{"qualities": grid.qualities, "methods": grid.methods}]))
    return view


def sweep_report(grid, tasks, root: Path) -> dict[str, dict]:
    """The aggregation of the sweep's finished evaluations, per map: ROOT/results.json always, and
    the markdown block, figure and compact results JSON the grid's [report] table names. With several
    maps each gets its own: ROOT/report/<map>/, ROOT/results_<map>.json, and the [report] files and
    tag with _<map> added (smax_3m)."""
    import contextlib
    import sys

    results = {}
    for env in grid.envs:
        suffix = "" if len(grid.envs) == 1 else "_" + env.replace(":", "_")
        view = root / "report" / suffix.lstrip("_") if suffix else root / "report"
        sweep_view(grid, tasks, root, env, view)
        argv = ["--out", str(view), "--json", str(root / f"results{suffix}.json")]
        for key in ("markdown", "figure", "results-json"):
            if key in grid.report:
                path = Path(grid.report[key])
                if suffix and key != "markdown":  # one markdown page holds every map's block
                    path = path.with_name(f"{path.stem}{suffix}{path.suffix}")
                argv += [f"--{key}", str(path)]
        argv += ["--tag", str(grid.report.get("tag", grid.path.stem)) + suffix]
        with contextlib.redirect_stdout(sys.stderr):  # stdout stays the sweep's (its --json summary)
            results[env] = main(argv)
    return results
