"""Reruns through the real CLI: the same command on a finished artifact is up to date, other options
go to a folder named for them (default output) or are refused (an explicit --out), --overwrite runs
again, and a run's directory as --config with another --seed writes that seed's folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cli_checks import ok, one_line_error
from test_workspace_cli import SHIPPED, TINY_POLICY, TINY_ROLLOUT, Smax3m

import logo_cli.envs
from logo_cli.cli import app

WM = ["--steps", "5", "--hidden", "16", "--latent", "8", "--device", "cpu"]
EV = "runs/evaluate/smax_3m_medium-macql-weight-s0-smax_3m-s0"
EVAL = ["--episodes", "2", "--num-envs", "2", "--device", "cpu"]


def up_to_date(res, artifact: str) -> None:
    ok(res)
    assert res.stdout == ""
    notes = [line for line in res.stderr.splitlines() if not line.startswith("using ")]  # the defaults
    assert notes == [f"up to date: {artifact} (same options and inputs; --overwrite runs it again)"], (
        res.stderr
    )


def stamps(folder: Path) -> dict[str, int]:
    """Every file under a folder (or the file itself) with its modification time."""
    files = [folder] if folder.is_file() else sorted(p for p in folder.rglob("*") if p.is_file())
    return {str(p): p.stat().st_mtime_ns for p in files}


@pytest.fixture
def work(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(SHIPPED, work / "smax_3m_medium.h5")
    monkeypatch.chdir(work)
    monkeypatch.delenv("LOGO_WORKSPACE")  # the default: ./runs
    return work


def test_every_stage_rerun_is_up_to_date_refused_or_elsewhere(runner, work, monkeypatch):
    monkeypatch.setattr(logo_cli.envs, "make_env", lambda name, num_envs=1, **kw: Smax3m(num_envs))
    commands = {
        "pretrain": (
            ["pretrain", "--data", "smax_3m_medium.h5", *WM],
            "runs/pretrain/smax_3m_medium-logo-s0",
        ),
        "rollout": (["rollout", *TINY_ROLLOUT], "runs/rollout/smax_3m_medium-logo-s0-h3-s0.zarr"),
        "train-policy": (
            ["train-policy", "--steps", "3", *TINY_POLICY],
            "runs/policy/smax_3m_medium-macql-weight-s0",
        ),
        "evaluate": (["evaluate", *EVAL], "runs/evaluate/smax_3m_medium-macql-weight-s0-smax_3m-s0.json"),
        "calibrate": (
            ["calibrate", "--horizon", "2", "--device", "cpu"],
            "runs/calibrate/smax_3m_medium-logo-s0",
        ),
    }
    for args, _ in commands.values():
        ok(runner.invoke(app, args))
    before = {stage: stamps(work / path) for stage, (_, path) in commands.items()}
    index = (work / "runs" / "index.json").read_text()
    for args, path in commands.values():
        up_to_date(runner.invoke(app, args), path)
    assert {stage: stamps(work / path) for stage, (_, path) in commands.items()} == before
    assert (work / "runs" / "index.json").read_text() == index  # nothing recorded again

    # another option, default output: a sibling named for it; the first run is untouched
    other = {
        "pretrain": ("--hidden", "8", "runs/pretrain/smax_3m_medium-logo-s0-hidden8"),
        "rollout": ("--bc-steps", "4", "runs/rollout/smax_3m_medium-logo-s0-h3-s0-bcsteps4.zarr"),
        "train-policy": ("--gamma", "0.9", "runs/policy/smax_3m_medium-macql-weight-s0-gamma0.9"),
        "evaluate": (
            "--episodes",
            "4",
            "runs/evaluate/smax_3m_medium-macql-weight-s0-smax_3m-s0-episodes4.json",
        ),
        "calibrate": ("--horizon", "3", "runs/calibrate/smax_3m_medium-logo-s0-horizon3"),
    }
    for stage, (option, value, path) in reversed(other.items()):  # each chains from the first runs
        args, first = commands[stage]
        if option in args:  # the last occurrence wins
            args = [*args[: args.index(option)], *args[args.index(option) + 2 :]]
        res = ok(runner.invoke(app, [*args, option, value]))
        assert f"{first} holds a run with other settings ({option}: " in res.stderr, res.stderr
        assert f"writing {path}" in res.stderr
        assert (work / path).exists(), path
        up_to_date(runner.invoke(app, [*args, option, value]), path)
    assert stamps(work / commands["pretrain"][1]) == before["pretrain"]

    # an explicit --out holding a run made otherwise: refused, naming what differs
    res = runner.invoke(app, [*commands["pretrain"][0], "--out", commands["pretrain"][1], "--lr", "0.01"])
    one_line_error(res, commands["pretrain"][1], "--lr: 0.001 -> 0.01", "--overwrite")
    evaluate = [*commands["evaluate"][0], "--policy", commands["train-policy"][1], "--env", "smax:3m"]
    res = runner.invoke(app, [*evaluate, "--out", commands["evaluate"][1], "--seed", "3"])
    assert one_line_error(res, "--seed: 0 -> 3", "--overwrite").endswith("or another --out")
    assert stamps(work / commands["pretrain"][1]) == before["pretrain"]

    # --overwrite runs again
    up_to_date(runner.invoke(app, evaluate), commands["evaluate"][1])
    ok(runner.invoke(app, [*evaluate, "--overwrite"]))
    assert stamps(work / commands["evaluate"][1]) != before["evaluate"]


def test_a_changed_input_is_not_up_to_date(runner, work):
    args = ["pretrain", "--data", "smax_3m_medium.h5", *WM]
    ok(runner.invoke(app, args))
    shutil.copy(SHIPPED, work / "other.h5")
    with open(work / "other.h5", "ab") as f:  # another file's content under the same name
        f.write(b"\0")
    (work / "other.h5").replace(work / "smax_3m_medium.h5")
    res = runner.invoke(app, args)
    one_line_error(res, "runs/pretrain/smax_3m_medium-logo-s0", "changed since", "--overwrite")


def test_the_same_run_with_another_seed_from_its_directory(runner, work):
    ok(runner.invoke(app, ["pretrain", "--data", "smax_3m_medium.h5", *WM, "--seed", "3"]))
    first = work / "runs" / "pretrain" / "smax_3m_medium-logo-s3"
    before = stamps(first)
    res = ok(runner.invoke(app, ["pretrain", "--config", str(first), "--seed", "1", "--json"]))
    seed1 = work / "runs" / "pretrain" / "smax_3m_medium-logo-s1"
    assert json.loads(res.stdout)["out"] == "runs/pretrain/smax_3m_medium-logo-s1"
    manifest = json.loads((seed1 / "manifest.json").read_text())
    assert manifest["config"]["seed"] == 1 and manifest["config"]["hidden"] == 16
    assert stamps(first) == before
    # the run itself, repeated from its directory, is up to date
    up_to_date(
        runner.invoke(app, ["pretrain", "--config", str(first)]), "runs/pretrain/smax_3m_medium-logo-s3"
    )
