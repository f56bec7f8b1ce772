"""Fault injection, runs: numbers that go wrong, dead ends, bugs, and processes killed or racing.

- float options that are NaN, infinite or out of range; a training loss that turns non-finite (the
  last good checkpoint is kept); a world model that predicts NaN;
- dead ends: an incomplete buffer (a real option uses it, the same rollout command finishes it),
  bad options refused before any work, interrupted runs shown by inspect;
- an unexpected exception: one line saying how to get the traceback, which --debug shows;
- real processes: `kill -9` of a rollout (the old buffer survives; a fresh one is continued to the
  same rows), and two processes racing for one output.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from faults_kit import (
    WM,
    error_lines,
    interrupt_stream,
    invoke,
    leftovers,
    one_line_fault,
    rollout_args,
    snapshot,
    train_args,
)

# ---- float options ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "option, value",
    [
        ("--lr", "nan"), ("--lr", "inf"), ("--lr", "0"), ("--gamma", "nan"), ("--gamma", "1.5"),
        ("--synthetic-ratio", "nan"), ("--truncation", "nan"), ("--truncation", "-1"),
        ("--penalty-lambda", "inf"), ("--cql-alpha", "nan"), ("--target-tau", "0"),
        ("--rollout-epsilon", "2"), ("--hidden", "0"), ("--layers", "1000"), ("--cql-samples", "0"),
    ],
)  # fmt: skip
def test_train_policy_refuses_a_float_option_out_of_range(kit, tmp_path, option, value):
    out = tmp_path / "run"
    one_line_fault(invoke(*train_args(kit, out, option, value)), f"{option} {value}")
    assert not out.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "option, value", [("--lr", "nan"), ("--lr", "-inf"), ("--holdout", "nan"), ("--hidden", "100000000")]
)
def test_pretrain_refuses_a_float_option_out_of_range(kit, tmp_path, option, value):
    out = tmp_path / "wm"
    one_line_fault(invoke("pretrain", "--data", kit.data, "--out", out, option, value), f"{option} {value}")
    assert not out.exists()


# ---- a loss that turns non-finite --------------------------------------------------------------------


def test_train_policy_stops_on_a_nan_loss_and_keeps_the_last_good_checkpoint(kit, tmp_path, monkeypatch):
    from logo_cli.artifacts import load_checkpoint
    from logo_cli.data.sampler import MixedSampler

    real = MixedSampler.sample
    calls = {"n": 0}

    def poisoned(self, batch_size):
        calls["n"] += 1
        batch = real(self, batch_size)
        if calls["n"] >= 4:  # steps 4.. see a NaN reward: the loss turns NaN
            batch["reward"] = batch["reward"] * float("nan")
        return batch

    monkeypatch.setattr(MixedSampler, "sample", poisoned)
    out = tmp_path / "run"
    line = one_line_fault(invoke(*train_args(kit, out)), out, "NaN or inf between steps 3 and 4", "step 2")
    ckpt = tmp_path / "run.partial" / "checkpoint.pt"
    assert str(ckpt) in line and not out.exists()
    state = load_checkpoint(ckpt)
    assert state["step"] == 2 and all(torch.isfinite(v).all() for v in state["nets"].values())


def test_pretrain_stops_on_a_nan_loss_and_keeps_the_last_good_checkpoint(kit, tmp_path, monkeypatch):
    from logo_cli.algos import world_model_train
    from logo_cli.artifacts import load_checkpoint

    real = world_model_train.draw_batch
    calls = {"n": 0}

    def poisoned(data, batch_size, gen):
        calls["n"] += 1
        batch = real(data, batch_size, gen)
        if calls["n"] >= 8:
            batch = {**batch, "reward": batch["reward"] * float("nan")}
        return batch

    monkeypatch.setattr(world_model_train, "draw_batch", poisoned)
    out = tmp_path / "wm"
    one_line_fault(
        invoke("pretrain", "--data", kit.data, "--out", out, "--steps", "20", *WM), out, "NaN or inf"
    )
    state = load_checkpoint(out / "checkpoint.pt")
    assert 0 < state["trainer"]["step"] < 8 and not (out / "model.pt").exists()
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_a_model_that_predicts_nan_never_reaches_the_buffer(kit, tmp_path, monkeypatch):
    from logo_cli.models.logo_model import LogoWorldModel

    real = LogoWorldModel.predict
    calls = {"n": 0}

    def nan_later(self, *args, **kwargs):
        calls["n"] += 1
        pred = real(self, *args, **kwargs)
        if calls["n"] >= 3:
            pred.next_obs.fill_(float("nan"))
        return pred

    monkeypatch.setattr(LogoWorldModel, "predict", nan_later)
    out = kit.copy("buf", tmp_path / "b.zarr")
    before = snapshot(out)
    one_line_fault(
        invoke(*rollout_args(kit, out, "--overwrite")), out, "refusing to write NaN or inf 'next_obs'"
    )
    assert snapshot(out) == before and leftovers(tmp_path) == []


# ---- dead ends --------------------------------------------------------------------------------------


def interrupted_buffer(kit, out: Path, monkeypatch, after: int = 5, *extra: str) -> None:
    interrupt_stream(monkeypatch, after)
    assert invoke(*rollout_args(kit, out, *extra)).exit_code == 130
    monkeypatch.undo()


def test_an_incomplete_buffer_names_real_ways_out_and_allow_incomplete_is_one(kit, tmp_path, monkeypatch):
    buf = tmp_path / "cut.zarr"
    interrupted_buffer(kit, buf, monkeypatch)
    before = snapshot(buf)
    line = one_line_fault(
        invoke(*train_args(kit, tmp_path / "r", "--synthetic", buf)), buf, "incomplete buffer"
    )
    assert "--allow-incomplete" in line and "logo rollout" in line
    res = invoke(*train_args(kit, tmp_path / "r", "--synthetic", buf, "--allow-incomplete"))
    assert res.exit_code == 0, res.output
    synthetic = json.loads((tmp_path / "r" / "manifest.json").read_text())["synthetic"]
    assert synthetic["complete"] is False and synthetic["rows"] > 0
    assert snapshot(buf) == before


def arrays(path: Path) -> dict[str, np.ndarray]:
    import zarr

    g = zarr.open_group(path, mode="r")
    n = g.attrs["n_rows"]
    return {name: np.asarray(g[name][:n]) for name in g.array_keys()}


def same_rows(a: Path, b: Path) -> None:
    x, y = arrays(a), arrays(b)
    assert x.keys() == y.keys()
    for k in x:
        np.testing.assert_allclose(x[k], y[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_an_interrupted_rollout_is_continued_to_the_same_rows(kit, tmp_path, monkeypatch):
    ref = tmp_path / "ref.zarr"
    assert invoke(*rollout_args(kit, ref)).exit_code == 0
    cut = tmp_path / "first.zarr"
    interrupted_buffer(kit, cut, monkeypatch, 4)
    cut = cut.rename(tmp_path / "cut.zarr")  # a moved buffer is continued where it is
    res = invoke(*rollout_args(kit, cut))
    assert res.exit_code == 0, res.output
    assert "continued the interrupted buffer" in " ".join(res.stderr.split())
    same_rows(ref, cut)
    from logo_cli.data.zarr_store import open_synthetic

    buf = open_synthetic(cut)
    assert buf.complete and len(buf.attrs["resumed_from"]) == 1 and "interrupted" not in buf.attrs


def test_an_interrupted_rollout_with_other_options_is_refused_as_it_was(kit, tmp_path, monkeypatch):
    cut = tmp_path / "cut.zarr"
    interrupted_buffer(kit, cut, monkeypatch)
    before = snapshot(cut)
    one_line_fault(
        invoke(*rollout_args(kit, cut, "--seed", "9")), cut, "other options", "seed 0 vs 9", "--overwrite"
    )
    assert snapshot(cut) == before


def test_bad_rollout_options_are_refused_before_any_work(kit, tmp_path):
    out = tmp_path / "b.zarr"
    for option in ("--horizon", "--batch-size", "--chunk-rows"):
        args = [
            "rollout",
            "--model",
            kit.wm,
            "--data",
            kit.data,
            "--out",
            out,
            option,
            "0",
            "--device",
            "cpu",
        ]
        t0 = time.perf_counter()
        one_line_fault(invoke(*args), f"{option} 0")
        assert time.perf_counter() - t0 < 5  # no behaviour cloning first
    assert not out.exists()
    assert invoke(*rollout_args(kit, out)).exit_code == 0  # nothing blocks the rerun


def test_a_rollout_that_fails_before_its_first_row_leaves_nothing(kit, tmp_path, monkeypatch):
    from logo_cli.models.logo_model import LogoWorldModel

    def broken(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(LogoWorldModel, "predict", broken)
    out = tmp_path / "b.zarr"
    one_line_fault(invoke(*rollout_args(kit, out)), "No space left on device")
    monkeypatch.undo()
    assert not out.exists() and leftovers(tmp_path) == []
    assert invoke(*rollout_args(kit, out)).exit_code == 0


def test_inspect_shows_interrupted_runs(kit, tmp_path, monkeypatch):
    from logo_cli.algos import world_model_train
    from logo_cli.train.learners.macql import MacqlLearner

    real = world_model_train.train_step
    calls = {"n": 0}

    def stop_at_8(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(world_model_train, "train_step", stop_at_8)
    wm = tmp_path / "wm"
    assert invoke("pretrain", "--data", kit.data, "--out", wm, "--steps", "20", *WM).exit_code == 130
    res = invoke("inspect", wm, "--json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["kind"] == "interrupted_run" and d["stage"] == "pretrain" and d["step"] == 7
    res = invoke("inspect", wm)
    assert (
        res.exit_code == 0
        and "interrupted" in res.stdout
        and "rerun the same" in " ".join(res.stdout.split())
    )

    real_update = MacqlLearner.update
    count = {"n": 0}

    def stop_at_5(self, batch, step):
        count["n"] += 1
        if count["n"] == 5:
            raise KeyboardInterrupt
        return real_update(self, batch, step)

    monkeypatch.setattr(MacqlLearner, "update", stop_at_5)
    run = tmp_path / "tp"
    assert invoke(*train_args(kit, run)).exit_code == 130
    res = invoke("inspect", run, "--json")  # <out> does not exist yet: its work directory is shown
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["stage"] == "train-policy" and d["step"] == 4 and d["path"].endswith("tp.partial")


# ---- an unexpected exception (a bug) ----------------------------------------------------------------


def test_a_bug_is_one_line_saying_how_to_see_its_traceback(kit, tmp_path, monkeypatch):
    from logo_cli.stages import inspect as stage

    def bug(path):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(stage, "describe", bug)
    line = one_line_fault(invoke("inspect", kit.data), "internal error (ZeroDivisionError", "--debug",
                          "LOGO_DEBUG=1", "report", code=1)  # fmt: skip
    assert "bug" in line
    for res in (invoke("--debug", "inspect", kit.data), invoke("inspect", kit.data, env={"LOGO_DEBUG": "1"})):
        assert isinstance(res.exception, ZeroDivisionError)  # the traceback is kept
    monkeypatch.undo()
    assert invoke("inspect", kit.data).exit_code == 0  # --debug does not stick


def test_running_out_of_memory_is_one_line(kit, tmp_path, monkeypatch):
    from logo_cli.algos import world_model_train

    def oom(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(world_model_train, "train_step", oom)
    out = tmp_path / "wm"
    one_line_fault(invoke("pretrain", "--data", kit.data, "--out", out, *WM), "out of memory", "--batch-size")
    assert not out.exists()


# ---- real processes: kill -9 and races ---------------------------------------------------------------


def spawn(*args) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    return subprocess.Popen(
        [sys.executable, "-m", "logo_cli", *map(str, args)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_for(proc: subprocess.Popen, ready, timeout: float = 60.0) -> None:
    t0 = time.monotonic()
    while not ready():
        if proc.poll() is not None:
            raise AssertionError(f"exited early ({proc.returncode}): {proc.stderr.read().decode()[-2000:]}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            raise AssertionError("timed out waiting for the process")
        time.sleep(0.01)


def n_rows(path: Path) -> int:
    try:
        return json.loads((path / "zarr.json").read_text())["attributes"]["n_rows"]
    except (OSError, ValueError, KeyError):
        return 0


def slow_rollout(kit, out: Path, *extra) -> list:
    """Small batches: many model calls per row, so a process can be killed in the middle."""
    small = ["--horizon", "3", "--batch-size", "4", "--chunk-rows", "64", "--device", "cpu"]
    return [
        "rollout",
        "--model",
        kit.wm,
        "--data",
        kit.data,
        "--out",
        out,
        "--policy",
        kit.pol,
        *small,
        *extra,
    ]


def test_kill_9_during_rollout_overwrite_keeps_the_old_buffer(kit, tmp_path):
    out = kit.copy("buf", tmp_path / "b.zarr")
    before = snapshot(out)
    proc = spawn(*slow_rollout(kit, out, "--transitions", "10000000", "--overwrite"))

    def staging_has_rows() -> bool:
        return any(n_rows(p) >= 64 for p in tmp_path.glob(".b.zarr.*.tmp"))

    wait_for(proc, staging_has_rows)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert snapshot(out) == before  # the complete old buffer, untouched
    assert any(p.name.endswith(".tmp") for p in tmp_path.iterdir())  # the killed writer's staging
    res = invoke(*rollout_args(kit, out, "--overwrite", "--seed", "1"))
    assert res.exit_code == 0, res.output
    assert leftovers(tmp_path) == []  # the next writer removed it


def test_kill_9_during_a_fresh_rollout_then_the_same_command_finishes_it(kit, tmp_path):
    args = ("--transitions", "2500")
    ref = tmp_path / "ref.zarr"
    assert invoke(*slow_rollout(kit, ref, *args)).exit_code == 0
    cut = tmp_path / "cut.zarr"
    proc = spawn(*slow_rollout(kit, cut, *args))
    wait_for(proc, lambda: n_rows(cut) >= 128)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    from logo_cli.data.zarr_store import open_synthetic

    assert not open_synthetic(cut, allow_incomplete=True).complete
    res = invoke(*slow_rollout(kit, cut, *args))
    assert res.exit_code == 0, res.output
    same_rows(ref, cut)


def test_two_processes_racing_for_one_run_directory(kit, tmp_path):
    out = tmp_path / "wm"
    proc = spawn("pretrain", "--data", kit.data, "--out", out, "--steps", "100000", *WM)
    try:
        wait_for(proc, lambda: (out / "checkpoint.pt").is_file())  # training, holding the lock
        res = invoke("pretrain", "--data", kit.data, "--out", out, "--steps", "100000", *WM)
        one_line_fault(res, out, f"another logo process (pid {proc.pid})")
        res = invoke(*train_args(kit, tmp_path / "tp"))  # other outputs are not blocked
        assert res.exit_code == 0, error_lines(res)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # the lock died with its holder: the same command resumes the killed run
    res = invoke("pretrain", "--data", kit.data, "--out", out, "--steps", "10", *WM, "--json")
    assert res.exit_code == 0, res.output
    assert (out / "model.pt").is_file() and leftovers(tmp_path) == []
