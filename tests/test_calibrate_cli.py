"""`logo calibrate` end to end on tiny pretrain runs: outputs, held-out split, bad inputs."""

from __future__ import annotations

import json

import pytest
from test_rollout_cli import OBS, make_pretrain_run, write_data

from logo_cli.cli import app


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from typer.testing import CliRunner

    tmp = tmp_path_factory.mktemp("calibrate")
    data = write_data(tmp / "toy_medium.h5", n_episodes=24)
    runner = CliRunner()
    logo_run = make_pretrain_run(runner, tmp, data, "logo")
    return tmp, data, logo_run, make_pretrain_run(runner, tmp, data, "global")


def test_calibrate_two_models_side_by_side(runner, runs, tmp_path):
    from logo_cli.data.h5 import open_dataset, split_episodes

    tmp, data, logo_run, global_run = runs
    out = tmp_path / "cal"
    args = ["calibrate", "--model", str(logo_run), "--model", str(global_run), "--data", str(data)]
    args += ["--out", str(out), "--horizon", "4", "--device", "cpu", "--json"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    m = json.loads(res.stdout)
    assert m == json.loads((out / "metrics.json").read_text())
    # scored on exactly the episodes pretrain held out (holdout 0.25, seed 0)
    with open_dataset(data) as ds:
        _, held = split_episodes(ds.n_episodes, 0.25, 0)
        n_held = int(ds.lengths[held].sum())
    assert m["data"]["episodes"] == "episodes held out by every run"
    assert m["data"]["n_episodes"] == len(held) and m["n_transitions"] == n_held
    assert [x["kind"] for x in m["models"]] == ["logo", "global"]
    for x in m["models"]:
        one = x["one_step"]
        assert one["n"] == n_held and one["error_mean"] > 0
        assert one["auroc_worst10"] is None or 0.0 <= one["auroc_worst10"] <= 1.0
        assert [r["horizon"] for r in x["multi_step"]] == [1, 2, 3, 4]
        assert x["multi_step"][0]["n"] == n_held
        ns = [r["n"] for r in x["multi_step"]]
        assert ns == sorted(ns, reverse=True)
        assert x["parameters"] > 0
        # depth 1 from every held-out step is the one-step evaluation
        assert x["multi_step"][0]["error_mean"] == pytest.approx(one["error_mean"], rel=1e-4)
    for png in ("uncertainty_vs_error.png", "error_vs_horizon.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "calibrate" and set(manifest["inputs"]) == {"data", "model_0", "model_1"}
    # the table view and inspect of the calibrate run directory
    res = runner.invoke(app, [*args[:-1], "--overwrite"])
    assert res.exit_code == 0 and "Spearman" in res.stdout
    res = runner.invoke(app, ["inspect", str(out), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["stage"] == "calibrate"


def test_a_separate_file_is_scored_whole(runner, runs, tmp_path):
    tmp, data, logo_run, _ = runs
    other = write_data(tmp_path / "other_medium.h5", n_episodes=6, seed=9)
    out = tmp_path / "cal"
    args = ["calibrate", "--model", str(logo_run), "--data", str(other), "--out", str(out)]
    res = runner.invoke(app, [*args, "--horizon", "2", "--device", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    m = json.loads(res.stdout)
    assert m["data"]["episodes"] == "all episodes of the file" and m["data"]["n_episodes"] == 6
    # asking for the pretrain split on a file the model was not trained on is refused
    res = runner.invoke(app, [*args, "--holdout-from-manifest", "--overwrite", "--device", "cpu"])
    assert res.exit_code == 2 and "not the dataset" in res.stderr


def test_bad_inputs_one_line(runner, runs, tmp_path):
    tmp, data, logo_run, _ = runs
    base = ["calibrate", "--data", str(data), "--device", "cpu", "--out", str(tmp_path / "x")]
    res = runner.invoke(app, [*base, "--model", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "manifest" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    other = write_data(tmp_path / "wide.h5", obs_dim=OBS + 2)
    res = runner.invoke(app, ["calibrate", "--model", str(logo_run), "--data", str(other), "--device", "cpu"])
    assert res.exit_code == 2 and "dims do not match" in res.stderr
    assert not (tmp_path / "x").exists()
    res = runner.invoke(app, [*base, "--model", str(logo_run), "--horizon", "0"])
    assert res.exit_code == 2 and "--horizon" in res.stderr
