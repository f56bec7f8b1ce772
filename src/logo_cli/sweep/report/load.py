"""Reading a reproduction folder: its evaluation JSONs with their policies' provenance, the wall
times of its steps log and the win rates of its datasets."""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

# How the table, the plot and the results JSON name each method (also their order).
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
    "oracle-weight": "oracle (the simulator) + MACQL",
}
# What each method's train-policy manifest must say (algo, mode), to catch mislabelled runs.
METHOD_CONFIG = {
    "logo-weight": ("macql", "weight"),
    "logo-penalty": ("macql", "penalty"),
    "logo-uniform": ("macql", "uniform"),
    "global-weight": ("macql", "weight"),
    "ensemble-weight": ("macql", "weight"),
    "macql": ("macql", "real-only"),
    "oracle-weight": ("macql", "weight"),
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
