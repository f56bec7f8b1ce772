"""One stage task in a Ray worker: the stage's own `logo` command, run in-process.

Running the command (not a copy of its body) keeps every check, default, manifest and atomic publish
of the command line: a sweep's artifact is exactly what `logo pretrain ... --out DIR` makes. The
command's output goes to the task's log file; the task is finished when ROOT/<stage>/<key>/task.json
exists, written last and atomically.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

# Tests: the tasks whose first attempt kills its worker process (a retried crash): a stage
# (train-policy) or one task, stage:label (dataset:medium).
CRASH_ENV = "LOGO_SWEEP_TEST_CRASH"


class StageFailed(Exception):
    """The command refused its input (exit code 2): rerunning it would fail the same way."""


class StageCrashed(Exception):
    """Any other failure (a bug's exit code 1, an exception out of the command): retried."""


def run(spec: dict) -> dict:
    """Run one task described by `spec` (execute.py builds it); returns its record."""
    import ray

    task_dir = Path(spec["dir"])
    task_dir.mkdir(parents=True, exist_ok=True)
    log = Path(spec["log"])
    log.parent.mkdir(parents=True, exist_ok=True)
    attempts = _count_attempt(task_dir)
    if spec.get("crash") in (spec["stage"], f"{spec['stage']}:{spec['label']}") and attempts == 1:
        os._exit(1)  # a worker death, as an OOM kill or a lost node would be: Ray retries the task
    # Every evaluate in a fresh process compiles the same SMAX step: JAX's persistent cache shared
    # by the sweep's workers halves that (read when jax is first imported in the worker).
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(Path(spec["root"]) / "jax_cache"))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    import torch

    torch.set_num_threads(max(1, int(spec.get("num_cpus", 1))))
    started = time.time()
    with _logged(log):
        print(f"[{time.strftime('%H:%M:%S')}] {spec['stage']} {spec['label']} attempt {attempts}", flush=True)
        code, line = _run_stage(spec)
    seconds = time.time() - started
    if code != 0:
        text = f"exit {code}: {line}" if line else f"exit {code}"
        raise (StageFailed if code == 2 else StageCrashed)(text)
    record = {
        "stage": spec["stage"],
        "key": spec["key"],
        "label": spec["label"],
        "inputs": spec["inputs"],
        "options": spec["options"],
        "artifact": spec["artifact"],
        "seconds": seconds,
        "attempts": attempts,
        "node_id": ray.get_runtime_context().get_node_id(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    from logo_cli.artifacts import write_json_atomic

    write_json_atomic(task_dir / "task.json", record)
    return record


def _count_attempt(task_dir: Path) -> int:
    """This attempt's number (1 for the first), kept in the task folder across worker deaths (and
    across sweeps: a task that failed in an earlier sweep starts its next one at 2)."""
    path = task_dir / ".attempts"
    try:
        n = int(path.read_text()) + 1
    except (OSError, ValueError):
        n = 1
    path.write_text(str(n))
    return n


@contextlib.contextmanager
def _logged(path: Path) -> Iterator[None]:
    """stdout and stderr of this process (Python's and native libraries') into the log file."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    saved = os.dup(1), os.dup(2)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for f in (fd, *saved):
            os.close(f)


def _run_stage(spec: dict) -> tuple[int, str]:
    """(exit code, the error's line) of the stage's work."""
    from logo_cli.artifact_kind import is_finished_run
    from logo_cli.errors import LogoError

    stage, inputs, out = spec["stage"], spec["inputs"], spec["artifact"]
    if stage == "dataset" and spec.get("source"):
        try:
            _copy_dataset(Path(spec["source"]), Path(out))
        except (LogoError, OSError) as e:
            print(f"error: {e}", flush=True)
            return 2, str(e)
        return 0, ""
    if stage in ("pretrain", "train-policy") and is_finished_run(Path(out)):
        # Finished before its task.json was written (the worker died in between): the run directory
        # refuses a second run, and its manifest, written last, says it is complete.
        print(f"{out}: finished run found, kept", flush=True)
        return 0, ""
    argv = {
        "dataset": ["collect", "--overwrite"],
        "pretrain": ["pretrain", "--data", inputs.get("data", "")],
        "train-policy": ["train-policy", "--data", inputs.get("data", "")],
        "evaluate": ["evaluate", "--policy", inputs.get("policy", ""), "--overwrite"],
    }[stage]
    if stage == "train-policy" and "model" in inputs:
        argv += ["--model", inputs["model"]]
    argv += [*spec["options"], "--out", out, "--workspace", spec["workspace"]]
    if stage != "dataset" or not spec.get("source"):
        argv += ["--device", spec["device"]]
    argv += ["--threads", str(max(1, int(spec.get("num_cpus", 1))))]  # the CPUs the task reserved
    return _invoke(spec["commands"](), argv, Path(spec["log"]))


def _invoke(commands, argv: list[str], log: Path) -> tuple[int, str]:
    """Run `logo ARGV` with the click group `commands` (the spec's loader builds it once per worker)."""
    print("logo " + " ".join(argv), flush=True)
    try:
        code = commands.main(argv, prog_name="logo", standalone_mode=False)
    except Exception as e:  # click's usage errors, and anything past the command's own boundary
        print(f"error: {type(e).__name__}: {e}", flush=True)
        return (2 if getattr(e, "exit_code", 1) == 2 else 1), str(e)  # a usage error is click's 2
    code = code if isinstance(code, int) else 0
    return code, _last_error(log) if code else ""


def _last_error(log: Path) -> str:
    """The command's one error line, from the end of its log."""
    try:
        lines = [x.strip() for x in log.read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        return ""
    errors = [x for x in lines if x.startswith("error:")]
    return (errors or lines or [""])[-1][:300]


def _copy_dataset(source: Path, out: Path) -> None:
    """An existing dataset file, checked the way every stage opens it, copied into ROOT: a cluster's
    workers read it from the sweep's shared storage, and replacing the original changes nothing."""
    import shutil
    import tempfile

    from logo_cli.artifacts import publish
    from logo_cli.data.h5 import open_dataset

    ds = open_dataset(source)
    close = getattr(ds, "close", None)
    if close is not None:
        close()
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        publish(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    print(f"copied {source} -> {out}", flush=True)
