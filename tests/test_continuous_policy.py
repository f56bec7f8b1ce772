"""Continuous-action policies through the CLI: `logo train-policy --algo bc` on a MaMuJoCo dataset
(Gaussian BC, policy.pt mode "gaussian"), `logo evaluate` and `logo export` on it, the refusals, exact
resume, and the Gaussian BC learning a known linear-tanh policy (the continuous offline RL learners:
tests/test_continuous_learners.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from cli_checks import ok, one_line_error

from logo_cli.cli import app
from logo_cli.stages.train_policy import TrainPolicyConfig, run

ENV, LIMIT, N, AD, OBS = "mamujoco:HalfCheetah-2x3", 20, 2, 3, 12
TINY = ["--batch-size", "32", "--hidden", "16", "--layers", "1", "--device", "cpu"]


@pytest.fixture(scope="module")
def hc_data(tmp_path_factory):
    """A random HalfCheetah-2x3 dataset, 4 episodes of 20 steps."""
    pytest.importorskip("gymnasium_robotics")
    from typer.testing import CliRunner

    data = tmp_path_factory.mktemp("contpolicy") / "hc_random.h5"
    args = ["collect", "--env", ENV, "--quality", "random", "--episodes", "4", "--num-envs", "2"]
    ok(CliRunner().invoke(app, [*args, "--episode-limit", str(LIMIT), "--out", str(data), "--json"]))
    return data


def test_train_bc_then_evaluate_on_mamujoco(runner, tmp_path, hc_data):
    run_dir = tmp_path / "bc"
    args = ["train-policy", "--data", str(hc_data), "--algo", "bc", "--mode", "real-only", "--steps", "20"]
    summary = json.loads(ok(runner.invoke(app, [*args, "--out", str(run_dir), "--json", *TINY])).stdout)
    assert summary["algo"] == "bc" and summary["steps"] == 20 and np.isfinite(summary["final"]["bc_loss"])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["policy"] == {"file": "policy.pt", "mode": "gaussian", "algo": "bc"}
    assert manifest["dims"]["discrete"] is False and manifest["dims"]["n_actions"] == AD

    payload = torch.load(run_dir / "policy.pt", weights_only=True)  # plain data only
    assert payload["mode"] == "gaussian" and payload["dims"]["n_actions"] == AD
    assert payload["obs_norm"]["mean"].shape == (OBS,) and (payload["obs_norm"]["std"] > 0).all()

    from logo_cli.policies.torch_policy import load_policy

    policy = load_policy(run_dir / "policy.pt")
    obs = np.random.default_rng(0).standard_normal((5, N, OBS)).astype(np.float32) * 3
    avail = np.ones((5, N, 1), bool)
    greedy = policy.act(obs, None, avail, greedy=True, rng=np.random.default_rng(1))
    again = policy.act(obs, None, avail, greedy=True, rng=np.random.default_rng(2))
    sampled = policy.act(obs, None, avail, greedy=False, rng=np.random.default_rng(1))
    assert greedy.shape == sampled.shape == (5, N, AD) and greedy.dtype == np.float32
    assert np.array_equal(greedy, again) and not np.array_equal(greedy, sampled)  # the mean is deterministic
    assert np.abs(greedy).max() <= 1.0 and np.abs(sampled).max() <= 1.0

    ev_args = ["evaluate", "--env", ENV, "--episodes", "2", "--num-envs", "2", "--episode-limit", str(LIMIT)]
    for spec in (str(run_dir), "random"):
        out = tmp_path / f"ev-{spec.replace('/', '_')}.json"
        res = ok(runner.invoke(app, [*ev_args, "--policy", spec, "--out", str(out), "--json"]))
        ev = json.loads(res.stdout)
        assert ev["episodes"] == 2 and ev["length_mean"] == LIMIT and len(ev["return_ci95"]) == 2
        assert ev["win_rate"] is None and ev["win_rate_ci95"] is None and ev["wins"] is None  # nothing is won
        assert np.isfinite(ev["return_mean"]) and ev["env"] == ENV
        record = json.loads(out.read_text())
        assert record["format"] == "logo-evaluate" and len(record["returns"]) == 2 and record["won"] is None
    assert ev["policy"]["kind"] == "random"

    # export: the deterministic action tanh(mean), observation standardisation inside
    ok(runner.invoke(app, ["export", str(run_dir), "--out", str(tmp_path / "ex")]))
    with torch.no_grad():
        exported = torch.jit.load(str(tmp_path / "ex" / "agent.pt"))(torch.as_tensor(obs)).numpy()
    np.testing.assert_allclose(exported, greedy, atol=1e-5)


def test_continuous_refusals_name_what_works(runner, tmp_path, hc_data):
    base = ["train-policy", "--data", str(hc_data), "--out", str(tmp_path / "r"), "--steps", "2", *TINY]
    one_line_error(runner.invoke(app, [*base, "--algo", "cfcql"]), "macql, td3bc, or bc")
    # BC in a synthetic mode: refused before any world model is read
    res = runner.invoke(app, [*base, "--algo", "bc", "--mode", "uniform", "--model", str(tmp_path)])
    one_line_error(res, "--algo bc --mode real-only")
    assert not (tmp_path / "r").exists()


def test_gaussian_bc_resumes_exactly(tmp_path, hc_data):
    def cfg(out):
        return TrainPolicyConfig(hc_data, out, algo="bc", mode="real-only", steps=12, checkpoint_every=6,
                                 batch_size=16, hidden=16, layers=1, log_every=3, device="cpu")  # fmt: skip

    run(cfg(tmp_path / "full"))

    def interrupt(phase, done, total, info):
        if phase == "train" and done == 9:  # after the step-6 checkpoint
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(cfg(tmp_path / "resumed"), progress=interrupt)
    assert run(cfg(tmp_path / "resumed")).resumed_from == 6
    wa = torch.load(tmp_path / "full" / "policy.pt", weights_only=True)
    wb = torch.load(tmp_path / "resumed" / "policy.pt", weights_only=True)
    assert all(torch.equal(wa["state_dict"][k], wb["state_dict"][k]) for k in wa["state_dict"])
    assert torch.equal(wa["obs_norm"]["mean"], wb["obs_norm"]["mean"])


def test_gaussian_bc_learns_a_known_linear_policy(runner, tmp_path):
    """Actions = tanh(obs @ W) exactly (representable by the tanh mean): the NLL falls and the saved
    policy's mean action approaches the target on fresh observations."""
    from logo_cli.data.h5_write import write_dataset
    from logo_cli.data.synthetic import random_episodes
    from logo_cli.policies.torch_policy import load_policy

    eps = random_episodes(24, n_agents=2, obs_dim=4, state_dim=3, n_actions=2, episode_limit=10,
                          seed=0, discrete=False, terminate_prob=0.0)  # fmt: skip
    w = np.array([[0.8, 0.0], [0.0, -0.6], [0.5, 0.5], [0.0, 0.0]], np.float32)
    eps.actions[...] = np.tanh(eps.obs @ w)
    data = tmp_path / "linear_medium.h5"
    write_dataset(data, eps, {"map_name": "linear", "quality": "medium"})
    run_dir = tmp_path / "bc"
    args = ["train-policy", "--data", str(data), "--algo", "bc", "--mode", "real-only", "--steps", "300"]
    args += ["--batch-size", "64", "--hidden", "32", "--layers", "1", "--lr", "3e-3", "--log-every", "20"]
    ok(runner.invoke(app, [*args, "--out", str(run_dir), "--device", "cpu"]))
    losses = [json.loads(x)["bc_loss"] for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert losses[-1] < losses[0] - 1.0  # the log-std shrinks as the mean fits

    policy = load_policy(run_dir / "policy.pt")
    obs = np.random.default_rng(5).standard_normal((200, 2, 4)).astype(np.float32)
    mean = policy.act(obs, None, np.ones((200, 2, 1), bool), greedy=True, rng=np.random.default_rng(0))
    target = np.tanh(obs @ w)
    assert np.abs(mean - target).mean() < 0.1 < np.abs(target).mean()  # far closer than a zero policy


def test_gaussian_payload_round_trip_and_garbled_files():
    """A gaussian payload rebuilds the same policy; a missing or bad obs_norm, or a mode that does not
    fit the dims' action kind, is one LogoError naming the file."""
    from logo_cli.data.transitions import Dims
    from logo_cli.errors import LogoError
    from logo_cli.models.agent_net import AgentNet
    from logo_cli.policies.torch_policy import policy_from_payload, policy_payload

    dims = Dims(n_agents=2, obs_dim=4, state_dim=3, n_actions=2, discrete=False)
    net = AgentNet(4, 2, 4, hidden=8, layers=1)
    norm = (np.arange(4, dtype=np.float32), np.full(4, 2.0, np.float32))
    payload = policy_payload(net, "gaussian", dims, 8, 1, obs_norm=norm)
    policy = policy_from_payload(payload, "p.pt")
    obs = np.ones((3, 2, 4), np.float32)
    mean = policy.act(obs, None, np.ones((3, 2, 1), bool), greedy=True, rng=np.random.default_rng(0))
    with torch.no_grad():
        expected = torch.tanh(net(torch.as_tensor((obs - norm[0]) / norm[1]))[..., :2]).numpy()
    np.testing.assert_allclose(mean, expected, atol=1e-6)

    bad_std = {**payload, "obs_norm": {"mean": payload["obs_norm"]["mean"], "std": torch.zeros(4)}}
    no_norm = {k: v for k, v in payload.items() if k != "obs_norm"}
    discrete = {**payload, "dims": {**payload["dims"], "discrete": True}}
    logits = {**payload, "mode": "logits"}
    for garbled, needle in ((bad_std, "std"), (no_norm, "obs_norm"), (discrete, "discrete"),
                            (logits, "continuous")):  # fmt: skip
        with pytest.raises(LogoError, match=needle) as e:
            policy_from_payload(garbled, "p.pt")
        assert str(e.value).startswith("p.pt:") and "\n" not in str(e.value)
