"""Shared pieces of the fault-injection suite (tests/test_faults_*.py).

One tiny set of real artifacts is built once per session (a dataset, a pretrain run, a policy file,
a synthetic buffer, a train-policy run, a calibrate run and an evaluate result); each test copies
what it needs, injects one fault and checks the three promises:

- the command exits with code 2 (130 for Ctrl-C) and says what went wrong in ONE line naming the
  file, never a traceback;
- every artifact that existed before is byte-identical afterwards (nothing lost or garbled);
- nothing half-written is accepted or left behind (no staging or lock leftovers).

Running as root, permission bits are ignored, so unwritable outputs are simulated by a file where a
folder should be, or by making os functions raise OSError in-process.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch
from typer.testing import CliRunner

from logo_cli.cli import app

N, OBS, S, A, LIMIT = 2, 4, 6, 5, 8
WM = ["--batch-size", "32", "--hidden", "16", "--latent", "8", "--holdout", "0.25", "--device", "cpu"]
TP = ["--batch-size", "16", "--hidden", "16", "--layers", "1", "--cql-samples", "4", "--device", "cpu"]


def invoke(*args: str | Path, env: dict | None = None):
    """Run `logo ARGS` in-process; stderr is kept apart from stdout."""
    res = CliRunner().invoke(app, [str(a) for a in args], env=env)
    _log({"run": [str(a) for a in args[:1]], "exit": res.exit_code,
          "exception": None if res.exception is None or isinstance(res.exception, SystemExit)
          else type(res.exception).__name__,
          "traceback": "Traceback" in res.output, "lines": len(error_lines(res))})  # fmt: skip
    return res


def error_lines(res) -> list[str]:
    """stderr's lines, less the plain lines announcing a progress task (cli_checks.PROGRESS_START)."""
    from cli_checks import without_progress

    return without_progress(res.stderr.splitlines())


# FAULTS_LOG=<file>: every run (test id, command, exit code, exception, traceback?, stderr lines) and
# every message checked are appended there as JSON lines: the totals in docs/reliability.md.
_LOG = os.environ.get("FAULTS_LOG")


def _log(entry: dict) -> None:
    if _LOG:
        test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
        with open(_LOG, "a") as f:
            f.write(json.dumps({"test": test, **entry}) + "\n")


def record(res, line: str) -> None:
    _log({"checked": True, "exit": res.exit_code, "line": line})


def one_line_fault(res, *needles: str, code: int = 2) -> str:
    """The command failed with `code` and one line (no traceback) holding every needle."""
    assert res.exit_code == code, (res.exit_code, res.output, repr(res.exception))
    assert "Traceback" not in res.output, res.output
    lines = error_lines(res)
    assert len(lines) == 1, res.stderr
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0])
    record(res, lines[0])
    return lines[0]


def snapshot(path: Path) -> dict[str, str]:
    """sha256 of every file under `path` (or of the file), plus link targets: what 'unchanged' means."""
    path = Path(path)
    if path.is_symlink():
        return {".": "link:" + str(path.readlink())}
    if path.is_file():
        return {".": hashlib.sha256(path.read_bytes()).hexdigest()}
    out = {}
    for p in sorted(path.rglob("*")):
        rel = str(p.relative_to(path))
        if p.is_symlink():
            out[rel] = "link:" + str(p.readlink())
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[rel] = "dir"
    return out


def leftovers(folder: Path) -> list[str]:
    """Hidden staging, trash or lock entries a writer may leave beside its output."""
    return sorted(
        p.name
        for p in Path(folder).iterdir()
        if p.name.startswith(".") and p.name.endswith((".tmp", ".old", ".lock"))
    )


def write_data(path: Path, n_episodes: int = 24, seed: int = 0, attrs: dict | None = None) -> Path:
    """A tiny canonical dataset; `attrs` are written last (over the writer's own, e.g. obs_dim)."""
    import h5py

    from logo_cli.data.h5_write import write_dataset
    from logo_cli.data.synthetic import random_episodes

    eps = random_episodes(
        n_episodes, n_agents=N, obs_dim=OBS, state_dim=S, n_actions=A, episode_limit=LIMIT, seed=seed
    )
    write_dataset(path, eps, {"map_name": "toy", "quality": "medium"})
    if attrs:
        with h5py.File(path, "r+") as f:
            f.attrs.update(attrs)
    return path


def rollout_args(kit, out: Path, *extra: str | Path) -> list:
    return ["rollout", "--model", kit.wm, "--data", kit.data, "--out", out, "--policy", kit.pol,
            "--n-starts", "30", "--horizon", "3", "--batch-size", "8", "--chunk-rows", "16",
            "--device", "cpu", *extra]  # fmt: skip


def train_args(kit, out: Path, *extra: str | Path) -> list:
    return ["train-policy", "--data", kit.data, "--out", out, "--steps", "6", "--log-every", "2",
            "--checkpoint-every", "2", *TP, *extra]  # fmt: skip


class Kit:
    """Paths of the session's pristine artifacts (never modified: tests copy them)."""

    root: Path
    data: Path
    wm: Path
    pol: Path
    buf: Path
    tp: Path
    cal: Path
    ev: Path

    def copy(self, name: str, dest: Path) -> Path:
        src = getattr(self, name)
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dest)
        return dest


def build_kit(root: Path) -> Kit:
    from logo_cli.data.transitions import Dims
    from logo_cli.models.agent_net import AgentNet
    from logo_cli.policies.torch_policy import save_policy

    kit = Kit()
    kit.root = root
    kit.data = write_data(root / "toy_medium.h5")
    kit.wm = root / "wm"
    res = invoke("pretrain", "--data", kit.data, "--out", kit.wm, "--steps", "20", *WM)
    assert res.exit_code == 0, res.output
    kit.pol = root / "pol.pt"
    torch.manual_seed(0)
    save_policy(kit.pol, AgentNet(OBS, N, A, hidden=8, layers=1), "logits", Dims(N, OBS, S, A), 8, 1)
    kit.buf = root / "buf.zarr"
    res = invoke(*rollout_args(kit, kit.buf))
    assert res.exit_code == 0, res.output
    kit.tp = root / "tp"
    res = invoke(*train_args(kit, kit.tp))
    assert res.exit_code == 0, res.output
    kit.cal = root / "cal"
    res = invoke("calibrate", "--model", kit.wm, "--data", kit.data, "--out", kit.cal, "--horizon", "2",
                 "--max-starts", "40", "--device", "cpu")  # fmt: skip
    assert res.exit_code == 0, res.output
    kit.ev = root / "ev.json"
    kit.ev.write_text(
        json.dumps({"format": "logo-evaluate", "format_version": 1, "config": {}, "win_rate": 0.5})
    )
    return kit


def edit_zarr_attrs(path: Path, **changes) -> None:
    meta = path / "zarr.json"
    doc = json.loads(meta.read_text())
    doc["attributes"].update(changes)
    meta.write_text(json.dumps(doc))


def rewrite_zarr_array(path: Path, name: str, fn) -> None:
    """Replace array `name` of a buffer by fn(values) (same dtype and shape), chunk files included."""
    import zarr

    arr = zarr.open_group(path, mode="r+")[name].with_config({"write_empty_chunks": True})
    values = np.asarray(arr[:])
    arr[:] = fn(values.copy()).astype(values.dtype)


def edit_checkpoint(src: Path, dest: Path, fn) -> Path:
    """Copy a checkpoint, changing its payload with fn(payload) (which may mutate and return it)."""
    from logo_cli.artifacts import load_checkpoint

    payload = fn(load_checkpoint(src))
    torch.save(payload, dest)
    return dest


def model_copy(kit: Kit, dest: Path, fn=None) -> Path:
    """A copy of the pretrain run whose model.pt payload is changed by fn."""
    shutil.copytree(kit.wm, dest)
    if fn is not None:
        edit_checkpoint(kit.wm / "model.pt", dest / "model.pt", fn)
    return dest


def interrupt_stream(monkeypatch, after: int, exc: BaseException = KeyboardInterrupt()):
    """Rollout's generator raises `exc` after `after` model steps (rows already handed to the writer)."""
    from logo_cli.stages import rollout as stage

    real = stage.generate_rollouts

    def failing(*args, **kwargs):
        for i, item in enumerate(real(*args, **kwargs)):
            if i == after:
                raise exc
            yield item

    monkeypatch.setattr(stage, "generate_rollouts", failing)
