"""Fault injection, outputs: data loss, races and file-system trouble.

Every case: exit code 2 (130 for Ctrl-C) with one line naming the path, and every artifact that
existed before byte-identical afterwards, with no staging or lock leftovers.
"""

from __future__ import annotations

import errno
import os

import pytest
from faults_kit import (
    WM,
    interrupt_stream,
    invoke,
    leftovers,
    one_line_fault,
    rollout_args,
    snapshot,
    train_args,
)

from logo_cli.outputs import OutputLock

# ---- --overwrite replaces only an artifact of the same kind ---------------------------------------


def user_folder(path):
    path.mkdir()
    (path / "notes.txt").write_text("mine")
    return path


@pytest.mark.parametrize("command", ["rollout", "train-policy", "calibrate", "pretrain"])
def test_overwrite_refuses_a_folder_that_is_not_an_artifact(kit, tmp_path, command):
    out = user_folder(tmp_path / "mine")
    before = snapshot(out)
    args = {
        "rollout": rollout_args(kit, out, "--overwrite"),
        "train-policy": train_args(kit, out, "--overwrite"),
        "calibrate": ["calibrate", "--model", kit.wm, "--data", kit.data, "--out", out, "--overwrite"],
        "pretrain": ["pretrain", "--data", kit.data, "--out", out, "--overwrite"],
    }[command]
    one_line_fault(invoke(*args), out, "not a")
    assert snapshot(out) == before and leftovers(tmp_path) == []


@pytest.mark.parametrize("command", ["rollout", "train-policy", "calibrate"])
def test_overwrite_refuses_an_artifact_of_another_kind(kit, tmp_path, command):
    out = kit.copy("wm", tmp_path / "wm")  # a pretrain run
    before = snapshot(out)
    args = {
        "rollout": rollout_args(kit, out, "--overwrite"),
        "train-policy": train_args(kit, out, "--overwrite"),
        "calibrate": ["calibrate", "--model", kit.wm, "--data", kit.data, "--out", out, "--overwrite"],
    }[command]
    one_line_fault(invoke(*args), out, "a pretrain run directory, not")
    assert snapshot(out) == before


def test_evaluate_out_is_never_replaced_without_overwrite(kit, tmp_path):
    out = kit.copy("ev", tmp_path / "ev.json")
    before = snapshot(out)
    # refused before any episode is played (no simulator is even started)
    one_line_fault(
        invoke("evaluate", "--policy", kit.pol, "--out", out), out, "other settings", "--overwrite"
    )
    foreign = tmp_path / "notes.json"
    foreign.write_text('{"mine": 1}')
    one_line_fault(
        invoke("evaluate", "--policy", kit.pol, "--out", foreign, "--overwrite"), foreign, "not an"
    )
    assert snapshot(out) == before and foreign.read_text() == '{"mine": 1}'


def test_collect_overwrite_refuses_a_file_that_is_not_a_dataset(tmp_path):
    out = tmp_path / "r.h5"
    out.write_bytes(b"keep me")
    one_line_fault(invoke("collect", "--quality", "random", "--out", out, "--overwrite"), out, "not an .h5")
    assert out.read_bytes() == b"keep me"


# ---- the old artifact survives until the new one is complete ---------------------------------------


def interrupt_after(monkeypatch, module, name: str, calls: int, exc: BaseException = KeyboardInterrupt()):
    """Make module.name raise `exc` on its `calls`-th call (counting from 1)."""
    real = getattr(module, name)
    count = {"n": 0}

    def wrapper(*args, **kwargs):
        count["n"] += 1
        if count["n"] >= calls:
            raise exc
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)


def test_interrupted_rollout_overwrite_keeps_the_old_buffer(kit, tmp_path, monkeypatch):
    out = kit.copy("buf", tmp_path / "b.zarr")
    before = snapshot(out)
    interrupt_stream(monkeypatch, after=6)
    res = invoke(*rollout_args(kit, out, "--overwrite", "--seed", "3"))
    assert res.exit_code == 130 and "Traceback" not in res.output
    assert snapshot(out) == before and leftovers(tmp_path) == []


def test_interrupted_pretrain_overwrite_keeps_the_old_run(kit, tmp_path, monkeypatch):
    from logo_cli.algos import world_model_train

    out = kit.copy("wm", tmp_path / "wm")
    before = snapshot(out)
    interrupt_after(monkeypatch, world_model_train, "train_step", 5)
    res = invoke("pretrain", "--data", kit.data, "--out", out, "--steps", "20", "--overwrite", *WM)
    assert res.exit_code == 130 and "Traceback" not in res.output
    assert snapshot(out) == before and leftovers(tmp_path) == []


def test_interrupted_train_policy_overwrite_keeps_the_old_run(kit, tmp_path, monkeypatch):
    from logo_cli.train.learners.macql import MacqlLearner

    out = kit.copy("tp", tmp_path / "tp")
    before = snapshot(out)
    interrupt_after(monkeypatch, MacqlLearner, "update", 4)
    res = invoke(*train_args(kit, out, "--overwrite", "--seed", "2"))
    assert res.exit_code == 130 and "Traceback" not in res.output
    assert snapshot(out) == before


def test_failed_calibrate_overwrite_keeps_the_old_run(kit, tmp_path, monkeypatch):
    from logo_cli.stages import calibrate_plots

    out = kit.copy("cal", tmp_path / "cal")
    before = snapshot(out)
    monkeypatch.setattr(calibrate_plots, "plot_horizon", lambda *a, **k: (_ for _ in ()).throw(
        OSError(errno.ENOSPC, "No space left on device")))  # fmt: skip
    res = invoke("calibrate", "--model", kit.wm, "--data", kit.data, "--out", out, "--overwrite",
                 "--horizon", "2", "--max-starts", "40", "--device", "cpu")  # fmt: skip
    one_line_fault(res, str(out), "No space left on device")
    assert snapshot(out) == before and leftovers(tmp_path) == []


def test_train_policy_never_deletes_an_out_that_appeared_meanwhile(kit, tmp_path, monkeypatch):
    """Something appears at --out while the run trains: the final step refuses to replace it and
    keeps the finished run in <out>.partial."""
    from logo_cli import artifacts

    out = tmp_path / "tp"
    real = artifacts.save_checkpoint

    def meanwhile(path, payload):
        if not out.exists():
            user_folder(out)
        return real(path, payload)

    monkeypatch.setattr(artifacts, "save_checkpoint", meanwhile)
    line = one_line_fault(invoke(*train_args(kit, out)), out, "already exists", "kept in")
    assert (out / "notes.txt").read_text() == "mine" and len(list(out.iterdir())) == 1
    assert (tmp_path / "tp.partial" / "manifest.json").is_file(), line


# ---- races: one writer per output ------------------------------------------------------------------


@pytest.mark.parametrize("command", ["rollout", "train-policy", "pretrain", "calibrate"])
def test_a_second_writer_of_one_output_gets_one_line(kit, tmp_path, command):
    name = {"rollout": "buf", "train-policy": "tp", "pretrain": "wm", "calibrate": "cal"}[command]
    out = kit.copy(name, tmp_path / name)
    before = snapshot(out)
    args = {
        "rollout": rollout_args(kit, out, "--overwrite"),
        "train-policy": train_args(kit, out, "--overwrite"),
        "pretrain": ["pretrain", "--data", kit.data, "--out", out, "--overwrite", "--steps", "5"],
        "calibrate": ["calibrate", "--model", kit.wm, "--data", kit.data, "--out", out, "--overwrite"],
    }[command]
    with OutputLock(out).acquire():  # another process is writing this output
        one_line_fault(invoke(*args), out, "another logo process", str(os.getpid()))
    assert snapshot(out) == before


def test_fresh_runs_into_one_directory_are_serialised(kit, tmp_path):
    out = tmp_path / "new"
    with OutputLock(out).acquire():
        one_line_fault(invoke(*train_args(kit, out)), out, "another logo process")
        one_line_fault(invoke("pretrain", "--data", kit.data, "--out", out), out, "another logo process")
    assert not out.exists()
    assert invoke(*train_args(kit, out)).exit_code == 0  # the lock is gone with its holder
    assert leftovers(tmp_path) == []


# ---- file-system trouble ---------------------------------------------------------------------------


def test_out_below_a_regular_file(kit, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for args in (rollout_args(kit, blocker / "b.zarr"), train_args(kit, blocker / "run")):
        one_line_fault(invoke(*args), blocker, "a file is in the way")
    assert blocker.read_text() == "x"


def raise_in(monkeypatch, folder, err: int, fn_name: str = "open"):
    """os.<fn_name> raises OSError(err) for paths inside `folder` (root ignores permission bits)."""
    real = getattr(os, fn_name)

    def guarded(path, *args, **kwargs):
        if str(path).startswith(str(folder)):
            raise OSError(err, os.strerror(err), str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, fn_name, guarded)


@pytest.mark.parametrize("err", [errno.EACCES, errno.EROFS])
def test_unwritable_out_folder(kit, tmp_path, monkeypatch, err):
    folder = tmp_path / "ro"
    folder.mkdir()
    raise_in(monkeypatch, folder, err)
    for args in (rollout_args(kit, folder / "b.zarr"), train_args(kit, folder / "run"),
                 ["pretrain", "--data", kit.data, "--out", folder / "wm"]):  # fmt: skip
        one_line_fault(invoke(*args), folder, os.strerror(err))
    assert list(folder.iterdir()) == []


def test_disk_full_while_writing_a_buffer(kit, tmp_path, monkeypatch):
    from logo_cli.data.zarr_store import SyntheticWriter

    out = kit.copy("buf", tmp_path / "b.zarr")
    before = snapshot(out)
    interrupt_after(
        monkeypatch, SyntheticWriter, "_write", 2, OSError(errno.ENOSPC, "No space left on device")
    )
    one_line_fault(
        invoke(*rollout_args(kit, out, "--overwrite", "--seed", "4")), out, "No space left", "ENOSPC"
    )
    assert snapshot(out) == before and leftovers(tmp_path) == []
    fresh = tmp_path / "fresh.zarr"  # a fresh buffer keeps the rows written so far, marked incomplete
    one_line_fault(invoke(*rollout_args(kit, fresh)), fresh, "No space left")


def test_disk_full_while_saving_a_model(kit, tmp_path, monkeypatch):
    out = kit.copy("wm", tmp_path / "wm")
    before = snapshot(out)
    real = __import__("torch").save

    def full(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and obj.get("format") == "logo-world-model":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(obj, f, *args, **kwargs)

    monkeypatch.setattr("torch.save", full)
    res = invoke("pretrain", "--data", kit.data, "--out", out, "--steps", "5", "--overwrite", *WM)
    one_line_fault(res, "No space left on device")
    assert snapshot(out) == before and leftovers(tmp_path) == []


def test_symlinked_or_dangling_out(kit, tmp_path):
    real = kit.copy("buf", tmp_path / "real.zarr")
    before = snapshot(real)
    link = tmp_path / "link.zarr"
    link.symlink_to(real)
    one_line_fault(invoke(*rollout_args(kit, link, "--overwrite")), link, "symbolic link", str(real))
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    for args in (rollout_args(kit, dangling, "--overwrite"), train_args(kit, dangling, "--overwrite"),
                 ["pretrain", "--data", kit.data, "--out", dangling]):  # fmt: skip
        one_line_fault(invoke(*args), dangling, "dangling symbolic link")
    assert snapshot(real) == before and dangling.is_symlink() and not (tmp_path / "nowhere").exists()


def test_stale_staging_of_a_killed_writer_is_cleaned_by_the_next_one(kit, tmp_path):
    out = kit.copy("buf", tmp_path / "b.zarr")
    stale = tmp_path / ".b.zarr.abcd1234.tmp"  # tempfile-style: 8 of [a-z0-9_]
    stale.mkdir()
    (stale / "zarr.json").write_text("{}")
    assert invoke(*rollout_args(kit, out, "--overwrite", "--seed", "5")).exit_code == 0
    assert leftovers(tmp_path) == []
