"""Provenance: inputs found from anywhere, git commit, library versions and command line in every record."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from test_evaluate_metrics import OD, A, N, S, ScriptedEnv
from test_models_dynamics import NOOP, episodes

from logo_cli import __version__
from logo_cli.artifacts import file_hash, read_manifest
from logo_cli.cli import app
from logo_cli.data.h5 import write_dataset

SMALL = ["--hidden", "16", "--latent", "8", "--batch-size", "64", "--device", "cpu", "--steps", "4"]


def pretrain_from(runner, monkeypatch, cwd: Path) -> Path:
    """A tiny pretrain run made from `cwd` with relative --data and --out."""
    cwd.mkdir(parents=True, exist_ok=True)
    write_dataset(cwd / "toy.h5", episodes(8, seed=0), {"noop_action": NOOP})
    monkeypatch.chdir(cwd)
    res = runner.invoke(app, ["pretrain", "--data", "toy.h5", "--out", "runs/wm", *SMALL])
    assert res.exit_code == 0, res.output
    return cwd / "runs" / "wm"


def inspect_inputs(runner, run: Path) -> dict:
    res = runner.invoke(app, ["inspect", str(run), "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)["inputs"]


def test_manifest_records_inputs_absolute_and_relative_and_the_provenance(runner, tmp_path, monkeypatch):
    argv = ["logo", "pretrain", "--data", "toy.h5", "--out", "runs/wm", *SMALL]
    monkeypatch.setattr("sys.argv", argv)  # what the `logo` console script would see
    run = pretrain_from(runner, monkeypatch, tmp_path / "a")
    spec = read_manifest(run, "pretrain")["inputs"]["data"]
    assert spec == {"path": str(tmp_path / "a" / "toy.h5"), "relative": "../../toy.h5",
                    "hash": file_hash(tmp_path / "a" / "toy.h5")}  # fmt: skip
    prov = read_manifest(run)["provenance"]
    assert prov["command"] == argv
    assert prov["cwd"] == str(tmp_path / "a")
    assert prov["versions"]["logo-cli"] == __version__
    import h5py
    import numpy
    import torch

    assert prov["versions"]["torch"] == torch.__version__ and prov["versions"]["numpy"] == numpy.__version__
    assert prov["versions"]["h5py"] == h5py.__version__ and "zarr" in prov["versions"]
    assert prov["git_commit"] is None or re.fullmatch(r"[0-9a-f]{40}", prov["git_commit"])


def test_git_commit_is_the_source_tree_head_or_none(monkeypatch):
    from logo_cli import provenance

    src = Path(provenance.__file__).parent
    head = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True)
    provenance.git_commit.cache_clear()
    found = provenance.git_commit()
    if head.returncode == 0:
        assert found is not None and found["commit"] == head.stdout.strip()
    else:
        assert found is None

    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    provenance.git_commit.cache_clear()
    monkeypatch.setattr(provenance.subprocess, "run", no_git)
    try:
        assert provenance.git_commit() is None
        assert provenance.provenance_block()["git_commit"] is None  # never fails a run
    finally:
        monkeypatch.undo()
        provenance.git_commit.cache_clear()


def test_inspect_from_another_directory_finds_the_inputs(runner, tmp_path, monkeypatch):
    run = pretrain_from(runner, monkeypatch, tmp_path / "a")
    elsewhere = tmp_path / "b"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    found = inspect_inputs(runner, run)["data"]
    assert found["exists"] is True and found["resolved"] == str(tmp_path / "a" / "toy.h5")
    res = runner.invoke(app, ["inspect", str(run)])
    assert res.exit_code == 0 and "missing" not in res.stdout


def test_a_moved_tree_finds_its_inputs_by_the_relative_path(runner, tmp_path, monkeypatch):
    pretrain_from(runner, monkeypatch, tmp_path / "a")
    monkeypatch.chdir(tmp_path)
    shutil.move(tmp_path / "a", tmp_path / "moved")
    found = inspect_inputs(runner, tmp_path / "moved" / "runs" / "wm")["data"]
    assert found["exists"] is True and found["resolved"] == str(tmp_path / "moved" / "toy.h5")
    (tmp_path / "moved" / "toy.h5").unlink()
    assert inspect_inputs(runner, tmp_path / "moved" / "runs" / "wm")["data"]["exists"] is False


def test_a_manifest_written_before_provenance_is_still_read(runner, tmp_path, monkeypatch):
    run = pretrain_from(runner, monkeypatch, tmp_path / "a")
    manifest = json.loads((run / "manifest.json").read_text())
    del manifest["provenance"]
    manifest["inputs"]["data"] = {"path": "toy.h5", "hash": manifest["inputs"]["data"]["hash"]}  # as given
    (run / "manifest.json").write_text(json.dumps(manifest))
    assert read_manifest(run, "pretrain")["inputs"]["data"]["path"] == "toy.h5"
    monkeypatch.chdir(tmp_path / "a")  # where that run was made: the path as given still resolves
    assert inspect_inputs(runner, run)["data"]["exists"] is True
    monkeypatch.chdir(tmp_path)
    assert inspect_inputs(runner, run)["data"]["exists"] is False  # nothing to find it by: reported


def test_evaluate_result_embeds_the_same_provenance(runner, tmp_path, monkeypatch):
    import logo_cli.envs
    from logo_cli.data.transitions import Dims
    from logo_cli.models.agent_net import AgentNet
    from logo_cli.policies.torch_policy import save_policy

    monkeypatch.setattr(logo_cli.envs, "make_env", lambda name, num_envs=1, **kw: ScriptedEnv(num_envs))
    (tmp_path / "pol").mkdir()
    save_policy(
        tmp_path / "pol" / "p.pt", AgentNet(OD, N, A, hidden=8, layers=1), "q", Dims(N, OD, S, A), 8, 1
    )
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["evaluate", "--policy", "pol/p.pt", "--env", "smax:3m", "--episodes", "2",
                              "--num-envs", "2", "--out", "eval/r.json", "--device", "cpu"])  # fmt: skip
    assert res.exit_code == 0, res.output
    record = json.loads((tmp_path / "eval" / "r.json").read_text())
    assert record["inputs"]["policy"]["path"] == str(tmp_path / "pol" / "p.pt")
    assert record["inputs"]["policy"]["relative"] == os.path.join("..", "pol", "p.pt")
    assert record["provenance"]["versions"]["logo-cli"] == __version__
    assert record["package"]["version"] == __version__ and record["wall_time_s"] >= 0
    assert set(record["provenance"]) == {"command", "cwd", "git_commit", "git_dirty", "versions"}


def test_a_rollout_buffer_records_its_inputs_and_provenance(runner, tmp_path, monkeypatch):
    from logo_cli.data.zarr_store import open_synthetic
    from logo_cli.workspace import artifact_inputs

    run = pretrain_from(runner, monkeypatch, tmp_path / "a")
    args = ["rollout", "--model", "runs/wm", "--data", "toy.h5", "--out", "buf.zarr", "--n-starts", "20",
            "--horizon", "3", "--batch-size", "16", "--bc-steps", "5", "--device", "cpu"]  # fmt: skip
    assert runner.invoke(app, args).exit_code == 0
    attrs = open_synthetic(tmp_path / "a" / "buf.zarr").attrs
    assert attrs["inputs"]["data"] == {"path": str(tmp_path / "a" / "toy.h5"), "relative": "../toy.h5",
                                       "hash": file_hash(tmp_path / "a" / "toy.h5")}  # fmt: skip
    assert attrs["inputs"]["model"]["path"] == str(run / "model.pt")
    assert attrs["inputs"]["model"]["relative"] == "../runs/wm/model.pt"
    assert attrs["provenance"]["versions"]["logo-cli"] == __version__
    assert attrs["source_data"]["path"] == "toy.h5"  # as given: what a continued rollout compares
    monkeypatch.chdir(tmp_path)
    shutil.move(tmp_path / "a", tmp_path / "moved")
    found = artifact_inputs("rollout", tmp_path / "moved" / "buf.zarr")
    assert found["data"]["path"] == str(tmp_path / "moved" / "toy.h5")
    assert found["model"]["path"] == str(tmp_path / "moved" / "runs" / "wm" / "model.pt")
