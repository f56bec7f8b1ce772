"""Wall time of one SMAX 3m quality's grid through `logo sweep` against the job-control bash script
that `scripts/reproduce_smax_3m.sh` was before it became a wrapper over the sweep.

Both run the same grid: the shipped 300-episode medium sample (`small` in the reproduction, so no
collection), all seven methods, seeds 0-2 (9 world models, 21 policies, 21 evaluations), with
budgets scaled down so that a comparison fits in minutes. Both use 2 tasks side by side and one
torch thread per task. The old script runs from a git worktree at --old-commit with that commit's
code; the sweep runs this checkout's code.

    python benchmarks/sweep_vs_script.py [--wm-steps 300] [--policy-steps 500] [--eval-episodes 50]

Writes benchmarks/results/sweep_vs_script.json (wall times, per-stage step times, commits).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
METHODS = ["logo-weight", "logo-penalty", "logo-uniform", "global-weight", "ensemble-weight", "macql", "bc"]
SEEDS = [0, 1, 2]


def grid_toml(a: argparse.Namespace) -> str:
    methods = ", ".join(f'"{m}"' for m in METHODS)
    return f"""env = "smax:3m"
qualities = ["small"]
methods = [{methods}]
seeds = [{", ".join(map(str, SEEDS))}]
eval-seed = 10000

[datasets]
small = "{REPO / "datasets/smax_3m_medium.h5"}"

[pretrain]
steps = {a.wm_steps}

[train-policy]
steps = {a.policy_steps}
refresh-every = {a.refresh_every}
horizon = 15

[evaluate]
episodes = {a.eval_episodes}
"""


def timed(cmd: list[str], env: dict, log: Path) -> float:
    """Run `cmd`, stdout to LOG.out and stderr to LOG.err; -> wall seconds."""
    t0 = time.perf_counter()
    with log.with_suffix(".out").open("w") as out, log.with_suffix(".err").open("w") as err:
        rc = subprocess.run(cmd, env=env, stdout=out, stderr=err).returncode
    if rc != 0:
        tail = log.with_suffix(".err").read_text()[-1500:]
        raise SystemExit(f"failed ({rc}): {' '.join(cmd)}\n{tail}")
    return time.perf_counter() - t0


def run_sweep(work: Path, a: argparse.Namespace, env: dict) -> dict:
    grid = work / "grid.toml"
    grid.write_text(grid_toml(a))
    cmd = [sys.executable, "-m", "logo_cli", "sweep", str(grid), "--root", str(work / "sweep")]
    wall = timed([*cmd, "--num-cpus", "2", "--json"], env, work / "sweep.log")
    summary = json.loads((work / "sweep.out").read_text())
    per_stage: dict[str, float] = {}
    for t in summary.get("tasks", []):
        per_stage[t["stage"]] = per_stage.get(t["stage"], 0.0) + float(t.get("seconds") or 0.0)
    return {"wall_s": wall, "task_seconds_by_stage": per_stage, "complete": summary.get("complete")}


def run_old_script(work: Path, a: argparse.Namespace, env: dict) -> dict:
    tree = work / "old"
    git = ["git", "-C", str(REPO), "worktree"]
    subprocess.run([*git, "add", "--detach", str(tree), a.old_commit], check=True)
    try:
        shim = work / "bin"
        shim.mkdir()
        (shim / "logo").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m logo_cli "$@"\n')
        (shim / "logo").chmod(0o755)
        out = work / "script"
        old_env = dict(env, PATH=f"{shim}:{env['PATH']}", PYTHONPATH=str(tree / "src"))
        old_env.update(
            OUT=str(out), QUALITIES="small", METHODS=" ".join(METHODS), SEEDS=" ".join(map(str, SEEDS)),
            WM_STEPS=str(a.wm_steps), POLICY_STEPS=str(a.policy_steps), REFRESH_EVERY=str(a.refresh_every),
            EVAL_EPISODES=str(a.eval_episodes), JOBS="2", THREADS="1", RESULTS_MD=str(work / "old.md"),
            FIGURE=str(work / "old.png"), RESULTS_JSON=str(work / "old.json"),
        )  # fmt: skip
        wall = timed(["bash", str(tree / "scripts/reproduce_smax_3m.sh")], old_env, work / "script.log")
        per_stage: dict[str, float] = {}
        for line in (out / "logs/steps.tsv").read_text().splitlines()[1:]:
            _, kind, name, seconds, status = line.split("\t")
            if kind == "step" and status == "ran":
                stage = name.split("-")[0]
                per_stage[stage] = per_stage.get(stage, 0.0) + float(seconds)
        return {"wall_s": wall, "step_seconds_by_stage": per_stage}
    finally:
        subprocess.run([*git, "remove", "--force", str(tree)], check=False)


def commit() -> str:
    git = ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]
    out = subprocess.run(git, capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wm-steps", type=int, default=300, help="world-model training steps (default 300)")
    ap.add_argument("--policy-steps", type=int, default=500, help="train-policy steps (default 500)")
    ap.add_argument("--refresh-every", type=int, default=250, help="rollout refresh period (default 250)")
    ap.add_argument("--eval-episodes", type=int, default=50, help="evaluation episodes (default 50)")
    ap.add_argument(
        "--old-commit", default="58ecf84", help="commit of the job-control script (default 58ecf84)"
    )
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results/sweep_vs_script.json")
    a = ap.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)
    with tempfile.TemporaryDirectory(prefix="sweep_vs_script_") as tmp:
        work = Path(tmp)
        load0 = os.getloadavg()
        old = run_old_script(work, a, env)
        sweep = run_sweep(work, a, dict(env, PYTHONPATH=str(REPO / "src")))
        load1 = os.getloadavg()
        shutil.rmtree(work / "sweep", ignore_errors=True)
    result = {
        "benchmark": "sweep_vs_script",
        "commit": commit(),
        "old_commit": a.old_commit,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "loadavg_before": load0,
        "loadavg_after": load1,
        "grid": {
            "quality": "small (datasets/smax_3m_medium.h5)",
            "methods": METHODS,
            "seeds": SEEDS,
            "wm_steps": a.wm_steps,
            "policy_steps": a.policy_steps,
            "refresh_every": a.refresh_every,
            "eval_episodes": a.eval_episodes,
            "tasks_side_by_side": 2,
        },
        "old_script": old,
        "sweep": sweep,
        "speedup": old["wall_s"] / sweep["wall_s"],
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
