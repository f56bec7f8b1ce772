"""Continuous actions end to end through the real CLI on MaMuJoCo HalfCheetah-2x3 (tiny budgets):
collect random -> inspect -> pretrain (logo, global, ensemble) -> rollout -> calibrate; plus the
world models' continuous-action input on small known cases."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

pytest.importorskip("gymnasium_robotics")

from cli_checks import ok

from logo_cli.cli import app  # noqa: E402
from logo_cli.data.transitions import Dims  # noqa: E402

ENV, EPISODES, LIMIT = "mamujoco:HalfCheetah-2x3", 4, 30
N, AD = 2, 3


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """One collected dataset and one tiny pretrain run per model kind, shared by the CLI tests."""
    from typer.testing import CliRunner

    runner, tmp = CliRunner(), tmp_path_factory.mktemp("mamujoco")
    data = tmp / "hc_random.h5"
    args = ["collect", "--env", ENV, "--quality", "random", "--episodes", str(EPISODES), "--num-envs", "2"]
    ok(runner.invoke(app, [*args, "--episode-limit", str(LIMIT), "--out", str(data), "--json"]))
    runs = {}
    for kind in ("logo", "global", "ensemble"):
        runs[kind] = tmp / f"wm-{kind}"
        args = [
            "pretrain",
            "--data",
            str(data),
            "--kind",
            kind,
            "--out",
            str(runs[kind]),
            "--steps",
            "20",
        ]
        args += [
            "--batch-size",
            "32",
            "--hidden",
            "16",
            "--latent",
            "8",
            "--holdout",
            "0.25",
            "--device",
            "cpu",
        ]
        args += ["--members", "3", "--elites", "2"] if kind == "ensemble" else []
        ok(runner.invoke(app, args))
    return tmp, data, runs


# ---- collect and inspect ------------------------------------------------------------------------
def test_collect_random_writes_the_canonical_continuous_layout(pipeline, runner):
    _, data, _ = pipeline
    with h5py.File(data, "r") as f:
        assert set(f.keys()) == {"state", "obs", "actions", "reward", "terminated", "filled"}  # no avail
        acts, filled = f["actions"][:], f["filled"][:, :, 0]
        assert acts.dtype == np.float32 and acts.shape == (EPISODES, LIMIT + 1, N, AD)
        assert f["obs"].shape == (EPISODES, LIMIT + 1, N, 12) and f["state"].shape[-1] == 17
        assert (filled.sum(1) == LIMIT + 1).all()
        assert f["terminated"][:].sum() == 0  # HalfCheetah never falls: every end is a time-out
    steps = acts[:, :LIMIT]
    assert np.abs(steps).max() <= 1.0 and steps.std() > 0.4  # uniform on [-1, 1]: std ~0.58
    assert (acts[:, LIMIT] == 0).all()  # the final row's dummy action
    desc = json.loads(ok(runner.invoke(app, ["inspect", str(data), "--json"])).stdout)
    assert desc["discrete"] is False and desc["action_shape"] == [N, AD]
    assert desc["terminations"] == {"terminated": 0, "timeouts": EPISODES, "cut_short": 0}
    assert desc["attrs"]["env"] == ENV and desc["quality"] == "random"


def test_collect_keeps_falls_apart_from_time_outs(runner, tmp_path):
    # Random Hopper falls within a few dozen steps (a termination); cut at 5 steps it only times out.
    fell, cut = tmp_path / "fell.h5", tmp_path / "cut.h5"
    base = ["collect", "--env", "mamujoco:Hopper-3x1", "--quality", "random", "--episodes", "2"]
    ok(runner.invoke(app, [*base, "--num-envs", "2", "--out", str(fell)]))
    ok(runner.invoke(app, [*base, "--num-envs", "2", "--episode-limit", "5", "--out", str(cut)]))
    ends = [json.loads(ok(runner.invoke(app, ["inspect", str(p), "--json"])).stdout) for p in (fell, cut)]
    assert ends[0]["terminations"]["terminated"] == 2 and ends[0]["episode_length"]["max"] < 1000
    assert ends[1]["terminations"] == {"terminated": 0, "timeouts": 2, "cut_short": 0}


# ---- pretrain, rollout, calibrate -----------------------------------------------------------------
def test_pretrain_runs_hold_continuous_models(pipeline):
    _, _, runs = pipeline
    for kind, run in runs.items():
        manifest = json.loads((run / "manifest.json").read_text())
        assert manifest["dims"] == {"n_agents": N, "obs_dim": 12, "state_dim": 17, "n_actions": AD,
                                    "discrete": False}  # fmt: skip
        assert np.isfinite(manifest["metrics"]["next_state_rmse_norm"])
        hparams = torch.load(run / "model.pt", weights_only=True)["hparams"]
        assert kind != "logo" or hparams["local_action"] == "own"  # the continuous default


@pytest.mark.parametrize("policy", ["bc", "uniform"])
def test_rollout_writes_continuous_actions(pipeline, runner, tmp_path, policy):
    from logo_cli.data.zarr_store import open_synthetic

    _, data, runs = pipeline
    out = tmp_path / "buf.zarr"
    args = ["rollout", "--model", str(runs["logo"]), "--data", str(data), "--out", str(out)]
    args += ["--n-starts", "40", "--horizon", "4", "--bc-steps", "20", "--device", "cpu", "--json"]
    summary = json.loads(ok(runner.invoke(app, args + (["--uniform"] if policy == "uniform" else []))).stdout)
    assert summary["policy"]["kind"] == ("gaussian_bc" if policy == "bc" else "uniform")
    buf = open_synthetic(out)
    tr = buf.transitions()
    assert buf.complete and buf.n == summary["transitions"] >= 40
    assert tr.actions.dtype == np.float32 and tr.actions.shape[1:] == (N, AD)
    assert np.abs(tr.actions).max() <= 1.0 and np.isfinite(tr.next_state).all()


def test_rollout_refuses_uniform_with_a_policy_file(pipeline, runner, tmp_path):
    _, data, runs = pipeline
    args = ["rollout", "--model", str(runs["logo"]), "--data", str(data), "--out", str(tmp_path / "b.zarr")]
    res = runner.invoke(app, [*args, "--uniform", "--policy", str(tmp_path / "p.pt")])
    assert res.exit_code != 0 and "--uniform / --policy" in res.output


def test_calibrate_scores_continuous_models(pipeline, runner, tmp_path):
    _, data, runs = pipeline
    out = tmp_path / "cal"
    args = ["calibrate", "--data", str(data), "--out", str(out), "--horizon", "3", "--device", "cpu"]
    for run in runs.values():
        args += ["--model", str(run)]
    ok(runner.invoke(app, args))
    metrics = json.loads((out / "metrics.json").read_text())
    assert [m["kind"] for m in metrics["models"]] == ["logo", "global", "ensemble"]
    for m in metrics["models"]:
        one = m["one_step"]
        assert np.isfinite(one["error_mean"]) and np.isfinite(one["no_change_error_mean"])
        assert [r["horizon"] for r in m["multi_step"]] == [1, 2, 3] and m["multi_step"][2]["n"] > 0


# ---- the world models' continuous-action input ---------------------------------------------------
DIMS = Dims(n_agents=N, obs_dim=4, state_dim=5, n_actions=AD, discrete=False)


def _inputs(b: int = 6):
    g = torch.Generator().manual_seed(0)
    return (
        torch.randn(b, 5, generator=g),
        torch.randn(b, N, 4, generator=g),
        torch.rand(b, N, AD, generator=g),
    )


def test_logo_local_model_sees_its_own_action_only():
    from logo_cli.models.world_model import build_world_model

    torch.manual_seed(0)
    model = build_world_model("logo", DIMS, hidden=16, latent=8).eval()
    assert model.local_action == "own"
    assert model.local_enc.linears[0].weight.shape[-2] == 4 + 5 + AD  # o^i, s, a^i
    state, obs, act = _inputs()
    base = model.predict(state, obs, act).next_obs
    own, other = act.clone(), act.clone()
    own[:, 0] += 0.5
    other[:, 1] -= 0.5
    assert not torch.allclose(model.predict(state, obs, own).next_obs[:, 0], base[:, 0])
    # agent 0's local prediction ignores agent 1's action (it reaches the state only via the deduction)
    torch.testing.assert_close(model.predict(state, obs, other).next_obs[:, 0], base[:, 0])
    joint = build_world_model("logo", DIMS, hidden=16, latent=8, local_action="joint")
    assert joint.local_enc.linears[0].weight.shape[-2] == 4 + 5 + N * AD


def test_continuous_action_encoding_is_the_clipped_joint_vector():
    from logo_cli.models.world_model import build_world_model

    model = build_world_model("global", DIMS, hidden=16)
    assert model.in_dim == 5 + N * 4 + N * AD
    act = torch.tensor([[[0.5, -2.0, 1.5], [0.1, 0.2, -0.3]]])
    torch.testing.assert_close(model.encode_actions(act), torch.tensor([[0.5, -1.0, 1.0, 0.1, 0.2, -0.3]]))


@pytest.mark.parametrize("kind", ["logo", "global", "ensemble"])
def test_world_models_refuse_malformed_continuous_actions(kind):
    from logo_cli.models.world_model import build_world_model

    hp = {"hidden": 8} | ({"members": 2, "elites": 1} if kind == "ensemble" else {})
    model = build_world_model(kind, DIMS, **hp).eval()
    state, obs, act = _inputs(3)
    p = model.predict(state, obs, act)
    assert p.next_state.shape == (3, 5) and p.next_obs.shape == (3, N, 4)
    assert p.next_avail.shape == (3, N, 1) and bool(p.next_avail.all())
    nan = act.clone()
    nan[1, 0, 2] = float("nan")
    bad = {
        "NaN": nan,
        "wrong size": act[..., :2],
        "integers": act.long(),
        "one per agent": act[..., 0],
    }
    for what, actions in bad.items():
        with pytest.raises(ValueError, match="actions"):
            model.predict(state, obs, actions)
            pytest.fail(f"{what} actions were accepted")


def test_gaussian_bc_recovers_the_data_actions():
    from logo_cli.algos.gaussian_bc import train_gaussian_bc
    from logo_cli.data.transitions import Transitions

    rng = np.random.default_rng(0)
    t = 256
    obs = rng.normal(size=(t, N, 4)).astype(np.float32)
    # agent 0 pushes +0.6 on every joint, agent 1 -0.3: the agent id must tell them apart
    actions = np.broadcast_to(np.array([[0.6] * AD, [-0.3] * AD], np.float32), (t, N, AD)).copy()
    actions += rng.normal(scale=0.05, size=actions.shape).astype(np.float32)
    z = np.zeros((t,), np.float32)
    tr = Transitions(
        state=np.zeros((t, 5), np.float32), obs=obs, actions=actions, avail_actions=np.ones((t, N, 1), bool),
        reward=z, terminated=z.astype(bool), next_state=np.zeros((t, 5), np.float32), next_obs=obs,
        next_avail_actions=np.ones((t, N, 1), bool),
    )  # fmt: skip
    policy = train_gaussian_bc(tr, steps=300, hidden=32, seed=0)
    greedy = policy.act(obs[:8], None, None, greedy=True, rng=rng)
    np.testing.assert_allclose(greedy.mean(axis=(0, 2)), [0.6, -0.3], atol=0.1)
    sampled = policy.act(obs[:8], None, None, greedy=False, rng=rng)
    assert sampled.dtype == np.float32 and sampled.shape == (8, N, AD) and np.abs(sampled).max() <= 1.0


def test_rollout_options_added_later_keep_older_interrupted_buffers_resumable():
    from logo_cli.data.zarr_store.target import _config_diff

    # a buffer interrupted before --uniform existed drove its rollouts with BC, i.e. uniform=False
    assert _config_diff({"horizon": 15}, {"horizon": 15, "uniform": False}) == ""
    assert "uniform" in _config_diff({"horizon": 15}, {"horizon": 15, "uniform": True})


def test_pretrain_refuses_an_unknown_local_action(pipeline, runner, tmp_path):
    _, data, _ = pipeline
    args = ["pretrain", "--data", str(data), "--out", str(tmp_path / "wm"), "--local-action", "mine"]
    res = runner.invoke(app, args)
    assert res.exit_code != 0 and "--local-action mine: expected one of joint, own" in res.output
    assert not (tmp_path / "wm").exists()


def test_logo_checkpoints_from_before_local_action_load_as_joint():
    from logo_cli.models.world_model import (
        build_world_model,
        world_model_from_checkpoint,
        world_model_payload,
    )

    old = world_model_payload(build_world_model("logo", DIMS, hidden=8, latent=4, local_action="joint"))
    del old["hparams"]["local_action"]  # as older versions wrote it
    model = world_model_from_checkpoint(old, "old.pt")
    assert model.local_action == "joint"
    state, obs, act = _inputs(2)
    assert model.predict(state, obs, act).next_obs.shape == (2, N, 4)
