"""`logo rollout` and `logo inspect` on buffers and run directories, end to end on tiny data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_checks import one_line_error

from logo_cli.cli import app
from logo_cli.data.zarr_store import open_synthetic

N, OBS, S, A, LIMIT = 2, 4, 6, 5, 8


def write_data(path, n_episodes: int = 24, seed: int = 0, obs_dim: int = OBS):
    from logo_cli.data.h5_write import write_dataset
    from logo_cli.data.synthetic import random_episodes

    eps = random_episodes(
        n_episodes, n_agents=N, obs_dim=obs_dim, state_dim=S, n_actions=A, episode_limit=LIMIT, seed=seed
    )
    write_dataset(path, eps, {"map_name": "toy", "quality": "medium"})
    return path


def make_pretrain_run(runner, tmp, data, kind: str = "logo", name: str | None = None, steps: int = 30):
    """A tiny real pretrain run through the CLI (a few steps: the numbers do not matter here)."""
    run_dir = tmp / (name or f"wm-{kind}")
    args = ["pretrain", "--data", str(data), "--kind", kind, "--out", str(run_dir)]
    args += ["--steps", str(steps)]
    args += ["--batch-size", "32", "--hidden", "16", "--latent", "8", "--holdout", "0.25", "--device", "cpu"]
    if kind == "ensemble":
        args += ["--members", "3", "--elites", "2"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    return run_dir


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from typer.testing import CliRunner

    tmp = tmp_path_factory.mktemp("rollout")
    data = write_data(tmp / "toy_medium.h5")
    return tmp, data, make_pretrain_run(CliRunner(), tmp, data)


def test_rollout_writes_a_complete_buffer_with_provenance(runner, tiny, tmp_path):
    tmp, data, run = tiny
    out = tmp_path / "buf.zarr"
    args = ["rollout", "--model", str(run), "--data", str(data), "--out", str(out), "--n-starts", "50"]
    args += ["--horizon", "4", "--batch-size", "16", "--bc-steps", "20", "--device", "cpu", "--json"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    buf = open_synthetic(out)
    assert buf.complete and buf.n == summary["transitions"] > 0
    assert summary["branches"] == 50 == len(np.unique(buf.branch))
    assert 50 <= buf.n <= 200 and buf.step.max() <= 3
    tr = buf.transitions()
    assert np.take_along_axis(tr.avail_actions, tr.actions[..., None], -1).all()
    assert buf.attrs["model_kind"] == "logo" and buf.attrs["horizon"] == 4
    assert buf.attrs["policy"]["kind"] == "bc" and buf.attrs["data_matches_pretrain"] is True
    assert buf.attrs["model"]["hash"].startswith("sha256:")
    assert buf.attrs["source_data"]["hash"].startswith("sha256:")
    assert np.isfinite(buf.uncertainty).all() and (buf.uncertainty >= 0).all()


def test_rollout_transitions_budget_and_policy_file(runner, tiny, tmp_path):
    import torch

    from logo_cli.data.transitions import Dims
    from logo_cli.models.agent_net import AgentNet
    from logo_cli.policies.torch_policy import save_policy

    tmp, data, run = tiny
    pol = tmp_path / "pol.pt"
    torch.manual_seed(0)
    save_policy(pol, AgentNet(OBS, N, A, hidden=8, layers=1), "logits", Dims(N, OBS, S, A), 8, 1)
    out = tmp_path / "b.zarr"
    args = ["rollout", "--model", str(run), "--data", str(data), "--out", str(out), "--transitions", "77"]
    args += ["--batch-size", "8", "--policy", str(pol), "--device", "cpu", "--chunk-rows", "16"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    buf = open_synthetic(out)
    assert buf.n == 77 and buf.attrs["policy"]["kind"] == "checkpoint"
    # the same seed writes the same buffer
    out2 = tmp_path / "b2.zarr"
    res = runner.invoke(app, [*args[:6], str(out2), *args[7:]])
    assert res.exit_code == 0, res.output
    np.testing.assert_array_equal(open_synthetic(out2).transitions().actions, buf.transitions().actions)


def test_interrupted_rollout_leaves_an_incomplete_prefix(runner, tiny, tmp_path, monkeypatch):
    from logo_cli.stages import rollout as stage

    real = stage.generate_rollouts

    def failing(*args, **kwargs):
        for i, item in enumerate(real(*args, **kwargs)):
            if i == 3:
                raise KeyboardInterrupt
            yield item

    monkeypatch.setattr(stage, "generate_rollouts", failing)
    tmp, data, run = tiny
    out = tmp_path / "cut.zarr"
    args = ["rollout", "--model", str(run), "--data", str(data), "--out", str(out), "--n-starts", "40"]
    args += ["--batch-size", "5", "--bc-steps", "5", "--device", "cpu", "--chunk-rows", "4"]
    res = runner.invoke(app, args)
    assert res.exit_code == 130
    buf = open_synthetic(out, allow_incomplete=True)
    assert not buf.complete and buf.n == 15  # three steps of five branches, none lost
    res = runner.invoke(app, ["inspect", str(out), "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["kind"] == "synthetic_buffer" and d["complete"] is False and d["transitions"] == 15
    res = runner.invoke(app, ["inspect", str(out)])
    assert res.exit_code == 0 and "interrupted" in res.stdout


def test_inspect_buffer_and_run_dir(runner, tiny, tmp_path):
    tmp, data, run = tiny
    out = tmp_path / "i.zarr"
    args = ["rollout", "--model", str(run), "--data", str(data), "--out", str(out), "--n-starts", "30"]
    args += ["--horizon", "3", "--bc-steps", "5", "--device", "cpu"]
    assert runner.invoke(app, args).exit_code == 0
    res = runner.invoke(app, ["inspect", str(out), "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    buf = open_synthetic(out)
    assert d["transitions"] == buf.n and d["complete"] is True and d["branches"] == 30
    assert d["uncertainty"]["p50"] == pytest.approx(float(np.quantile(buf.uncertainty, 0.5)), rel=1e-6)
    assert sum(d["step_counts"]) == buf.n and len(d["step_counts"]) <= 3
    assert d["provenance"]["horizon"] == 3 and d["provenance"]["model"]["kind"] == "logo"
    # Branch lengths and terminations, beside what the real data says they should look like.
    lengths = np.bincount(np.unique(buf.branch, return_inverse=True)[1])
    assert d["branch_length_counts"] == np.bincount(lengths).tolist() and sum(d["branch_length_counts"]) == 30
    assert d["uncertainty_cumulative"]["p95"] >= d["uncertainty"]["p95"] - 1e-6  # sums of u >= u
    from logo_cli.data.h5 import open_dataset

    with open_dataset(data) as ds:
        real_term = ds.transitions().terminated.mean()
    assert d["real_data"]["terminated_fraction"] == pytest.approx(real_term)
    assert 0.0 <= d["real_data"]["rows_with_3_or_more_steps_left"] <= 1.0
    res = runner.invoke(app, ["inspect", str(out)])
    assert res.exit_code == 0 and "uncertainty" in res.stdout and "branches by length" in res.stdout

    res = runner.invoke(app, ["inspect", str(run), "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["kind"] == "run_dir" and d["stage"] == "pretrain"
    ck = {c["file"]: c for c in d["checkpoints"]}["model.pt"]
    assert ck["kind"] == "logo" and ck["parameters"] > 0 and ck["dims"]["obs_dim"] == OBS
    assert d["inputs"]["data"]["exists"] is True
    res = runner.invoke(app, ["inspect", str(run)])
    assert res.exit_code == 0 and "pretrain" in res.stdout and "parameters" in res.stdout


def test_bad_inputs_give_one_line(runner, tiny, tmp_path):
    tmp, data, run = tiny
    base = ["rollout", "--data", str(data), "--device", "cpu", "--bc-steps", "2"]
    # missing checkpoint
    (tmp_path / "empty").mkdir()
    one_line_error(runner.invoke(app, [*base, "--model", str(tmp_path / "empty")]), "manifest")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text((run / "manifest.json").read_text())
    one_line_error(runner.invoke(app, [*base, "--model", str(broken)]), "model.pt", "not found")
    # dims mismatch between the dataset and the model
    other = write_data(tmp_path / "other.h5", obs_dim=OBS + 1)
    res = runner.invoke(app, ["rollout", "--model", str(run), "--data", str(other), "--device", "cpu"])
    one_line_error(res, "dims do not match", "obs_dim")
    # existing output, and both budgets at once
    out = tmp_path / "x.zarr"
    out.mkdir()
    one_line_error(runner.invoke(app, [*base, "--model", str(run), "--out", str(out)]), "already exists")
    res = runner.invoke(app, [*base, "--model", str(run), "--n-starts", "3", "--transitions", "4"])
    one_line_error(res, "--transitions")
    # an incomplete or foreign zarr group
    res = runner.invoke(app, ["inspect", str(out)])
    assert res.exit_code == 2


def test_other_dataset_with_same_dims_is_allowed_and_recorded(runner, tiny, tmp_path):
    tmp, data, run = tiny
    other = write_data(tmp_path / "other_medium.h5", seed=5)
    out = tmp_path / "o.zarr"
    args = ["rollout", "--model", str(run), "--data", str(other), "--out", str(out), "--n-starts", "10"]
    res = runner.invoke(app, [*args, "--bc-steps", "2", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "not the dataset" in res.stderr
    assert open_synthetic(out).attrs["data_matches_pretrain"] is False
