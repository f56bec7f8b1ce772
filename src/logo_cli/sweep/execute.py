"""Run a task graph on Ray: submit what is ready, wait, repeat.

A task whose artifact is finished is never submitted. A task that fails after its retries is
reported with its log, and every task after it in the graph is skipped; the others go on. Ctrl-C
cancels the running tasks; a rerun continues from the finished artifacts.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from logo_cli.errors import LogoError
from logo_cli.sweep import stage_commands
from logo_cli.sweep.graph import DONE, STAGES, Task
from logo_cli.sweep.task import CRASH_ENV, StageCrashed

RAY_MISSING = 'logo sweep needs Ray: pip install "logo-cli[cluster]"'
GPU_STAGES = ("pretrain", "train-policy")
# The steps log scripts/aggregate_results.py reads for wall times: one name prefix per stage.
STEP_PREFIX = {"dataset": "collect", "pretrain": "pretrain", "train-policy": "train", "evaluate": "evaluate"}


@dataclass
class State:
    """Where every task stands: cached (finished before this run), pending, running, ran, failed,
    skipped. `records` holds the finished tasks' task.json records and `errors` the failures."""

    tasks: list[Task]
    status: dict[str, str] = field(default_factory=dict)
    records: dict[str, dict] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)
    slots: int = 1  # tasks the cluster runs side by side, for the ETA
    t0: float = field(default_factory=time.time)

    def count(self, stage: str, status: str) -> int:
        return sum(1 for t in self.tasks if t.stage == stage and self.status[t.key] == status)


def ray_module():
    try:
        import ray
    except ImportError:
        raise LogoError(RAY_MISSING) from None
    return ray


def start_ray(address: str | None, num_cpus: int | None) -> float:
    """Connect to a cluster (--address) or start a local one; returns the seconds it took."""
    ray = ray_module()
    t0 = time.perf_counter()
    if ray.is_initialized():  # a caller (a test, a notebook) already holds one
        return 0.0
    # Local workers inherit this process's environment: make sure they import this same package.
    src = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH", "")
    if src not in path.split(os.pathsep):
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (src, path) if p)
    kwargs: dict = {"logging_level": "ERROR", "log_to_driver": False}
    if address is None:
        # Ray starts its workers at niceness 15 by default; here the workers do all of the sweep's
        # work, and on a machine busy with other jobs they starved (evaluations got ~4% of a core).
        # A user's own RAY_worker_niceness wins.
        os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(num_cpus=num_cpus, include_dashboard=False, **kwargs)
    else:
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise LogoError(f"--address {address}: cannot connect to a Ray cluster ({e})") from None
    return time.perf_counter() - t0


def run_graph(
    tasks: list[Task],
    root: Path,
    *,
    cpus_per_task: int = 1,
    max_retries: int = 2,
    on_update: Callable[[State], None] | None = None,
    runner: Callable[[dict], dict] | None = None,
) -> State:
    """Run every unfinished task; returns the final state (no task left pending or running).

    `runner` replaces task.run, the function each task calls with its spec (benchmarks/sweep_overhead.py
    runs no-op tasks through this loop to measure its own cost)."""
    ray = ray_module()
    from logo_cli.sweep import task as task_module

    state = State(tasks)
    for t in tasks:
        state.status[t.key] = "cached" if t.done(root) else "pending"
        if state.status[t.key] == "cached":
            state.records[t.key] = _read_record(t, root)
    by_key = {t.key: t for t in tasks}
    resources = ray.cluster_resources()
    gpus = resources.get("GPU", 0) > 0
    state.slots = max(1, int(resources.get("CPU", 1) // cpus_per_task))
    remote = ray.remote(runner or task_module.run)
    crash = os.environ.get(CRASH_ENV)  # read here: a shared cluster's workers do not see our env
    running: dict = {}  # object ref -> task key
    (root / "logs").mkdir(parents=True, exist_ok=True)
    try:
        while True:
            _skip_after_failures(state, by_key)
            for t in tasks:
                if state.status[t.key] == "pending" and all(_finished(state, d) for d in t.deps):
                    use_gpu = gpus and t.stage in GPU_STAGES
                    options = remote.options(
                        num_cpus=cpus_per_task,
                        num_gpus=1 if use_gpu else 0,
                        max_retries=max_retries,  # the worker process died (killed, OOM, lost node)
                        retry_exceptions=[StageCrashed],  # not a refused input: that fails again
                        name=f"{t.stage}:{t.label}",
                    )
                    spec = _spec(t, by_key, root, cpus_per_task, "cuda" if use_gpu else "cpu", crash)
                    running[options.remote(spec)] = t.key
                    state.status[t.key] = "running"
                    state.started[t.key] = time.time()
            if on_update is not None:
                on_update(state)
            if not running:
                break
            ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
            for ref in ready:
                key = running.pop(ref)
                try:
                    state.records[key] = ray.get(ref)
                    state.status[key] = "ran"
                except Exception as e:  # the task's own error, or Ray's (worker died past its retries)
                    state.status[key] = "failed"
                    state.errors[key] = _error_text(e)
                _log_step(root, by_key[key], state)
    except KeyboardInterrupt:
        for ref in running:
            ray.cancel(ref, force=True)  # stops the worker processes; finished artifacts stay
        raise
    return state


def _finished(state: State, key: str) -> bool:
    return state.status[key] in ("cached", "ran")


def _skip_after_failures(state: State, by_key: dict[str, Task]) -> None:
    """Tasks that need a failed or skipped task's artifact are skipped (in graph order, so a chain
    is skipped in one pass)."""
    for t in state.tasks:
        if state.status[t.key] == "pending":
            bad = [d for d in t.deps if state.status[d] in ("failed", "skipped")]
            if bad:
                state.status[t.key] = "skipped"
                dep = by_key[bad[0]]
                state.errors[t.key] = f"needs {dep.stage} {dep.label}, which {state.status[bad[0]]}"


def _spec(t: Task, by_key: dict[str, Task], root: Path, num_cpus: int, device: str, crash) -> dict:
    inputs = {}
    for d in (by_key[k] for k in t.deps):
        name = {"dataset": "data", "pretrain": "model", "train-policy": "policy"}[d.stage]
        inputs[name] = str(d.artifact(root))
    return {
        "stage": t.stage,
        "key": t.key,
        "label": t.label,
        "root": str(root),
        "dir": str(t.dir(root)),
        "artifact": str(t.artifact(root)),
        "log": str(log_path(t, root)),
        "workspace": str(root / "workspace"),
        "inputs": inputs,
        "options": t.options,
        "source": t.source,
        "num_cpus": num_cpus,
        "device": device,
        "crash": crash,
        "commands": stage_commands.loader(),  # the `logo` click group's loader (sweep/stage_commands.py)
    }


def log_path(t: Task, root: Path) -> Path:
    return root / "logs" / f"{t.stage}-{_file_name(t.label)}-{t.key}.log"


def _file_name(label: str) -> str:
    """medium/logo-weight/s0 -> medium-logo-weight-s0 (smax:3m medium/... -> smax_3m_medium-...)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", label.replace("/", "-"))


def _read_record(t: Task, root: Path) -> dict:
    import json

    try:
        return json.loads((t.dir(root) / DONE).read_text())
    except (OSError, ValueError):
        return {}


def _error_text(e: Exception) -> str:
    """One line: the task's own message when it raised, else Ray's first line."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, Exception) and str(cause):
        return str(cause).splitlines()[0][:300]
    lines = [x for x in str(e).splitlines() if x.strip()]
    return (lines[0] if lines else type(e).__name__)[:300]


def _log_step(root: Path, t: Task, state: State) -> None:
    """A line per task run in ROOT/logs/steps.tsv (time, kind, name, seconds, status)."""
    path = root / "logs" / "steps.tsv"
    new = not path.is_file()
    seconds = state.records.get(t.key, {}).get("seconds", time.time() - state.started[t.key])
    status = "ran" if state.status[t.key] == "ran" else "failed"
    name = f"{STEP_PREFIX[t.stage]}-{_file_name(t.label)}"
    with path.open("a") as f:
        if new:
            f.write("time\tkind\tname\tseconds\tstatus\n")
        f.write(
            f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\tstep\t{name}\t{seconds:.3f}\t{status}\n"
        )


def log_session(root: Path, seconds: float, status: str) -> None:
    path = root / "logs" / "steps.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.is_file()
    with path.open("a") as f:
        if new:
            f.write("time\tkind\tname\tseconds\tstatus\n")
        f.write(
            f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\tsession\trun\t{seconds:.3f}\t{status}\n"
        )


def summary(state: State, root: Path, log: Callable[[Task], Path] = log_path) -> dict:
    """The machine-readable result: per stage the counts, and every task with its status."""
    by_key = {t.key: t for t in state.tasks}
    stages = {}
    for s in STAGES:
        stages[s] = {st: state.count(s, st) for st in ("cached", "ran", "failed", "skipped", "pending")}
        stages[s]["tasks"] = sum(1 for t in state.tasks if t.stage == s)
    tasks = []
    for t in state.tasks:
        rec = state.records.get(t.key, {})
        tasks.append(
            {
                "stage": t.stage,
                "label": t.label,
                "key": t.key,
                "status": state.status[t.key],
                "seconds": rec.get("seconds"),
                "attempts": rec.get("attempts"),
                "node_id": rec.get("node_id"),
                "error": state.errors.get(t.key),
                "log": str(log(t, root)) if state.status[t.key] in ("ran", "failed") else None,
            }
        )
    failed = [x for x in tasks if x["status"] == "failed"]
    return {
        "root": str(root),
        "wall_s": time.time() - state.t0,
        "stages": stages,
        "executed": {s: stages[s]["ran"] for s in STAGES},
        "failed": len(failed),
        "skipped": sum(1 for x in tasks if x["status"] == "skipped"),
        "complete": all(x["status"] in ("cached", "ran") for x in tasks),
        "tasks": tasks,
        "errors": [f"{by_key[x['key']].stage} {x['label']}: {x['error']} (log: {x['log']})" for x in failed],
    }
