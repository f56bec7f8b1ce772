"""The `oracle` world model: the real SMAX simulator rebuilt from dataset rows, end to end.

Uses the shipped 3m sample and JaxMARL's real env (one compilation per process)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_checks import ok, one_line_error

from logo_cli.cli import app

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "datasets" / "smax_3m_medium.h5"


@pytest.fixture(scope="module")
def sample():
    from logo_cli.data.h5 import open_dataset

    with open_dataset(SAMPLE) as ds:
        return ds.transitions()


@pytest.fixture(scope="module")
def oracle_run(tmp_path_factory):
    from typer.testing import CliRunner

    out = tmp_path_factory.mktemp("oracle") / "wm-oracle"
    ok(CliRunner().invoke(app, ["pretrain", "--data", str(SAMPLE), "--kind", "oracle", "--out", str(out)]))
    return out


def test_the_simulator_rebuilt_from_rows_reproduces_the_recorded_next_steps(sample):
    """Rewards and ends exactly; states as close to the data as two draws of the simulator are to
    each other (enemy choices and weapon cooldowns are random); available actions almost always."""
    from logo_cli.envs.smax_oracle import smax_stepper

    st = smax_stepper("3m")
    rows = sample.select(np.arange(1500))
    a = st.step(rows.state, rows.obs, rows.actions, seed=1)
    b = st.step(rows.state, rows.obs, rows.actions, seed=2)
    std = sample.next_state.std(0) + 1e-6
    vs_data = np.sqrt((((a["next_state"] - rows.next_state) / std) ** 2).mean())
    vs_self = np.sqrt((((a["next_state"] - b["next_state"]) / std) ** 2).mean())
    assert vs_data < 1.5 * vs_self + 1e-3, (vs_data, vs_self)
    np.testing.assert_allclose(a["reward"], rows.reward, atol=1e-5)
    np.testing.assert_array_equal(a["terminated"], rows.terminated)
    assert (a["next_avail"] != rows.next_avail_actions).mean() < 1e-3
    # the same seed gives the same draw; a batch larger than a chunk is stitched in order
    again = st.step(rows.state, rows.obs, rows.actions, seed=1)
    np.testing.assert_array_equal(again["next_obs"], a["next_obs"])
    first = st.step(rows.state[:7], rows.obs[:7], rows.actions[:7], seed=1)
    assert first["next_state"].shape == (7, sample.dims.state_dim)


def test_pretrain_oracle_writes_a_run_that_loads_as_a_world_model(oracle_run, sample):
    from logo_cli.stages.rollout import load_model_run

    manifest = json.loads((oracle_run / "manifest.json").read_text())
    assert manifest["stage"] == "pretrain" and manifest["kind"] == "oracle"
    assert manifest["hparams"]["env"] == "smax:3m"
    m = manifest["metrics"]
    assert m["reward_mae"] < 1e-5 and m["terminated_agreement"] == 1.0
    assert m["state_rmse"] < 1.5 * m["state_rmse_self"] + 1e-3
    mr = load_model_run(oracle_run, "cpu")
    assert mr.kind == "oracle"
    rows = sample.select(np.arange(64))
    gen = torch.Generator().manual_seed(0)
    pred = mr.model.predict(
        torch.as_tensor(rows.state), torch.as_tensor(rows.obs), torch.as_tensor(rows.actions), generator=gen
    )
    assert float(pred.uncertainty.abs().max()) == 0.0
    assert pred.next_obs.shape == rows.next_obs.shape and pred.next_avail.dtype == torch.bool
    np.testing.assert_allclose(pred.reward.numpy(), rows.reward, atol=1e-5)
    np.testing.assert_array_equal(pred.terminated_prob.numpy() > 0.5, rows.terminated)


def test_seeded_oracle_rollouts_repeat_in_either_sampling_mode(oracle_run, sample):
    from logo_cli.policies.random_policy import RandomPolicy
    from logo_cli.stages.rollout import generate_rollouts, load_model_run, start_rows

    model = load_model_run(oracle_run, "cpu").model
    starts = start_rows(sample, np.arange(0, 400, 10))

    def roll(seed: int, sample_mode: bool):
        rng = np.random.default_rng(seed)
        parts = list(generate_rollouts(model, RandomPolicy(), starts, 5, 64, rng, sample=sample_mode))
        return np.concatenate([p[0].next_state for p in parts]), np.concatenate([p[1] for p in parts])

    for mode in (False, True):
        a, unc = roll(3, mode)
        b, _ = roll(3, mode)
        np.testing.assert_array_equal(a, b)
        assert (unc == 0).all()
    assert not np.array_equal(roll(3, False)[0], roll(4, False)[0])


def test_rollout_and_train_policy_take_the_oracle_with_corruption(runner, oracle_run, tmp_path):
    buf = tmp_path / "buf.zarr"
    args = ["rollout", "--model", str(oracle_run), "--data", str(SAMPLE), "--out", str(buf)]
    args += ["--n-starts", "40", "--bc-steps", "20", "--obs-noise", "0.5", "--avail-flip", "0.1", "--json"]
    res = ok(runner.invoke(app, args))
    summary = json.loads(res.stdout[res.stdout.index("{") :])
    assert summary["model_kind"] == "oracle" and summary["transitions"] > 40
    from logo_cli.data.zarr_store import open_synthetic

    attrs = open_synthetic(buf).attrs
    assert attrs["corruption"]["obs_noise"] == 0.5 and attrs["corruption"]["avail_flip"] == 0.1
    res = ok(runner.invoke(app, ["inspect", str(buf)]))
    assert "corruption" in res.output and "obs_noise" in res.output

    pol = tmp_path / "pol"
    args = ["train-policy", "--data", str(SAMPLE), "--model", str(oracle_run), "--out", str(pol)]
    args += ["--steps", "30", "--refresh-every", "15", "--rollout-starts", "32", "--bc-steps", "10"]
    args += ["--switch-flip", "0.2", "--eval-every", "1000", "--device", "cpu"]
    ok(runner.invoke(app, args))
    manifest = json.loads((pol / "manifest.json").read_text())
    assert manifest["config"]["switch_flip"] == 0.2


def test_oracle_refuses_what_it_cannot_rebuild(runner, tmp_path):
    from logo_cli.data.transitions import Dims
    from logo_cli.models.world_model import build_world_model

    dims = Dims(n_agents=2, obs_dim=4, state_dim=6, n_actions=5, discrete=True)
    with pytest.raises(ValueError, match="SMAX states only"):
        build_world_model("oracle", dims, env="mamujoco:HalfCheetah-2x3")
    # a dataset of another simulator (the toy layout records no env): one line, nothing written
    from test_rollout_cli import write_data

    data = write_data(tmp_path / "toy_medium.h5")
    out = tmp_path / "wm"
    one_line_error(
        runner.invoke(app, ["pretrain", "--data", str(data), "--kind", "oracle", "--out", str(out)])
    )
    assert not out.exists()
    with pytest.raises(Exception, match="do not match smax:3m"):
        build_world_model("oracle", dims, env="smax:3m").stepper()
