"""Continuous-action offline learners: MA-CQL (per-agent SAC + CQL(H)) and MA-TD3+BC.

Known cases for the CQL logsumexp, TD3+BC's actor loss and the tanh-Gaussian log-prob; learning on a
one-step bandit whose best actions are known; the MaMuJoCo pipeline through the real CLI (collect,
pretrain, rollout, train-policy macql / td3bc in synthetic modes and with in-memory refreshes,
evaluate, export); exact resume; and the refusals of options that do not fit."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from cli_checks import ok, one_line_error

from logo_cli.algos.continuous_actor import (
    TwinCritic,
    tanh_gaussian_log_prob,
    tanh_gaussian_sample,
)
from logo_cli.algos.macql_continuous import cql_logsumexp
from logo_cli.algos.td3bc import td3bc_actor_loss
from logo_cli.cli import app
from logo_cli.data.transitions import Transitions
from logo_cli.policies.actor_policy import split_gaussian

ENV, LIMIT, N, AD, OBS = "mamujoco:HalfCheetah-2x3", 12, 2, 3, 12
TINY = ["--batch-size", "32", "--hidden", "16", "--layers", "1", "--device", "cpu"]


# ---- known cases -----------------------------------------------------------------------------------
def test_cql_logsumexp_by_hand():
    """K = 2 draws per proposal, Ad = 2 (uniform density 1/4): log Σ exp(Q − log density)."""
    q_rand, q_pi, q_next = (torch.tensor([[a], [b]]) for a, b in ((1.0, 0.0), (2.0, -1.0), (0.5, 0.5)))
    logp_pi, logp_next = torch.tensor([[0.3], [-0.2]]), torch.tensor([[1.0], [0.0]])
    got = cql_logsumexp(q_rand, q_pi, logp_pi, q_next, logp_next, n_actions=2)
    terms = [1 + math.log(4), 0 + math.log(4), 2 - 0.3, -1 + 0.2, 0.5 - 1.0, 0.5 - 0.0]
    assert got.shape == (1,)
    assert got.item() == pytest.approx(math.log(sum(math.exp(t) for t in terms)), rel=1e-6)


def test_td3bc_actor_loss_by_hand():
    q_pi = torch.tensor([[1.0, 3.0]])  # mean |Q| 2 -> λ = 2.5 / 2
    pi = torch.tensor([[[0.5, 0.0], [0.0, 0.0]]])
    data = torch.zeros_like(pi)
    loss, lam, bc = td3bc_actor_loss(q_pi, pi, data, 2.5, None)
    assert lam.item() == pytest.approx(1.25) and bc.item() == pytest.approx(0.25 / 4)
    assert loss.item() == pytest.approx(-1.25 * 2.0 + 0.0625)
    # the BC term over chosen rows only: row 1 (a synthetic one) is left out
    q2, pi2 = torch.cat([q_pi, q_pi]), torch.cat([pi, torch.ones_like(pi)])
    _, _, bc_real = td3bc_actor_loss(q2, pi2, torch.cat([data, data]), 2.5, torch.tensor([True, False]))
    assert bc_real.item() == pytest.approx(0.0625)


def test_tanh_gaussian_log_prob_matches_a_direct_computation():
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(64, 2, 3, generator=g, dtype=torch.float64) * 2
    log_std = torch.rand(64, 2, 3, generator=g, dtype=torch.float64) - 1.0
    action, logp = tanh_gaussian_sample(mean, log_std, generator=g)
    u = torch.atanh(action)
    direct = torch.distributions.Normal(mean, log_std.exp()).log_prob(u) - torch.log(1 - action.pow(2))
    torch.testing.assert_close(logp, direct.sum(-1), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(tanh_gaussian_log_prob(u, mean, log_std), logp)
    # K draws at once, reparameterised: gradients reach the mean and the log-std
    mean.requires_grad_(True)
    a, lp = tanh_gaussian_sample(mean, log_std, k=4, generator=g)
    assert a.shape == (4, 64, 2, 3) and lp.shape == (4, 64, 2)
    lp.sum().backward()
    assert mean.grad is not None and torch.isfinite(mean.grad).all()


def test_twin_critic_shares_the_observation_part_exactly():
    """One call over K action sets equals K separate calls; the two critics differ."""
    torch.manual_seed(0)
    critic = TwinCritic(5, 3, 2, hidden=8, layers=2)
    obs, acts = torch.randn(4, 2, 5), torch.rand(6, 4, 2, 3) * 2 - 1
    together = critic(obs, acts)
    assert together.shape == (2, 6, 4, 2)
    for k in range(6):
        torch.testing.assert_close(together[:, k], critic(obs, acts[k]))
    assert not torch.allclose(together[0], together[1])


# ---- learning on a one-step bandit ----------------------------------------------------------------
def _bandit(n: int = 512, seed: int = 0) -> Transitions:
    """One-step episodes, data actions uniform on [-1, 1]; team reward −(a_0 − 0.6)² − (a_1 + 0.4)²
    (summed over the action entries), so agent 0's best action is 0.6 and agent 1's −0.4."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, 2, 3)).astype(np.float32)
    acts = rng.uniform(-1, 1, size=(n, 2, 2)).astype(np.float32)
    reward = -((acts[:, 0] - 0.6) ** 2).sum(-1) - ((acts[:, 1] + 0.4) ** 2).sum(-1)
    ones = np.ones((n, 2, 1), bool)
    return Transitions(
        state=np.zeros((n, 4), np.float32), obs=obs, actions=acts, avail_actions=ones,
        reward=reward.astype(np.float32), terminated=np.ones(n, bool),
        next_state=np.zeros((n, 4), np.float32), next_obs=obs, next_avail_actions=ones,
    )  # fmt: skip


@pytest.mark.parametrize("algo", ["macql", "td3bc"])
def test_learners_move_towards_the_best_in_data_action(algo):
    from logo_cli.algos.gaussian_bc import obs_stats
    from logo_cli.algos.macql_continuous import ContinuousCqlConfig, ContinuousCqlNets, continuous_cql_update
    from logo_cli.algos.td3bc import Td3bcConfig, Td3bcNets, td3bc_update
    from logo_cli.data.sampler import MixedSampler
    from logo_cli.policies.actor_policy import ContinuousActorPolicy

    data = _bandit()
    sampler = MixedSampler(data, mode="real-only", rng=np.random.default_rng(0))
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    stats = obs_stats(data)
    if algo == "macql":
        nets = ContinuousCqlNets(data.dims, hidden=32, layers=2)
        opt, cfg, update = (
            nets.optimisers(3e-3, 3e-3),
            ContinuousCqlConfig(cql_samples=4),
            continuous_cql_update,
        )
        mode = "tanh_gaussian"
    else:
        nets = Td3bcNets(data.dims, hidden=32, layers=2)
        opt, cfg, update = nets.optimisers(3e-3, 3e-3), Td3bcConfig(), td3bc_update
        mode = "deterministic"
    nets.norm.set_stats(*stats)
    best = np.array([0.6, -0.4])

    def greedy_error() -> float:
        policy = ContinuousActorPolicy(nets.actor, mode, data.dims, *stats)
        act = policy.act(data.obs[:64], None, None, greedy=True, rng=np.random.default_rng(0))
        nets.actor.train()
        return float(np.abs(act.mean(axis=(0, 2)) - best).mean())

    before = greedy_error()
    for step in range(1, 301):
        parts = update(nets, opt, sampler.sample(64), cfg, step, gen)
    assert all(torch.isfinite(v).all() for v in parts.values())
    after = greedy_error()
    # from about the midpoint of [-1, 1] (mean error 0.48) to within 0.2 of the best actions (measured:
    # 0.12 for MA-CQL, 0.07 for MA-TD3+BC, whose BC term pulls towards the data mean 0)
    assert after < 0.2 < before and after < before / 2, (before, after)


def test_actor_bc_steps_clone_the_real_actions_first():
    """During the first `bc_steps` steps the MA-CQL actor loss is α log π(a|o) − log π(a_data|o) over
    the real rows (the critic does not enter it): the greedy action moves to the data's actions."""
    from logo_cli.algos.gaussian_bc import obs_stats
    from logo_cli.algos.macql_continuous import ContinuousCqlConfig, ContinuousCqlNets, continuous_cql_update
    from logo_cli.data.sampler import MixedSampler

    data = _bandit()
    rng = np.random.default_rng(0)
    # data actions concentrated near (-0.5, 0.5), far from the reward's best (0.6, -0.4): only cloning
    # can bring the greedy action there
    data.actions[:] = np.clip(np.array([-0.5, 0.5]) + 0.05 * rng.normal(size=data.actions.shape), -1, 1)
    sampler = MixedSampler(data, mode="real-only", rng=np.random.default_rng(0))
    torch.manual_seed(0)
    nets = ContinuousCqlNets(data.dims, hidden=32, layers=2)
    nets.norm.set_stats(*obs_stats(data))
    opt = nets.optimisers(3e-3, 3e-3)
    cfg = ContinuousCqlConfig(cql_samples=2, bc_steps=400, cql_alpha=0.0)
    gen = torch.Generator().manual_seed(1)
    for step in range(1, 401):
        parts = continuous_cql_update(nets, opt, sampler.sample(64), cfg, step, gen)
    assert torch.isfinite(parts["actor_loss"])
    with torch.no_grad():
        mean, _ = split_gaussian(nets.actor(nets.norm(torch.as_tensor(data.obs[:64]))))
    greedy = torch.tanh(mean).mean(dim=(0, 1)).numpy()
    assert np.abs(greedy - np.array([-0.5, 0.5])).max() < 0.1, greedy


# ---- the MaMuJoCo pipeline through the CLI ---------------------------------------------------------
@pytest.fixture(scope="module")
def hc(tmp_path_factory):
    """A random HalfCheetah-2x3 dataset (4 episodes of 12 steps), a tiny LOGO world model and a
    synthetic buffer rolled out from it."""
    pytest.importorskip("gymnasium_robotics")
    from typer.testing import CliRunner

    runner, tmp = CliRunner(), tmp_path_factory.mktemp("contlearners")
    data, wm, buf = tmp / "hc_random.h5", tmp / "wm", tmp / "buf.zarr"
    args = ["collect", "--env", ENV, "--quality", "random", "--episodes", "4", "--num-envs", "2"]
    ok(runner.invoke(app, [*args, "--episode-limit", str(LIMIT), "--out", str(data), "--json"]))
    args = ["pretrain", "--data", str(data), "--kind", "logo", "--out", str(wm), "--steps", "10"]
    args += ["--batch-size", "16", "--hidden", "16", "--latent", "8", "--holdout", "0.25", "--device", "cpu"]
    ok(runner.invoke(app, args))
    args = ["rollout", "--model", str(wm), "--data", str(data), "--out", str(buf), "--n-starts", "30"]
    ok(runner.invoke(app, [*args, "--horizon", "3", "--bc-steps", "10", "--device", "cpu", "--json"]))
    return tmp, data, wm, buf


@pytest.mark.parametrize(
    ("algo", "mode", "policy_mode"),
    [("macql", "weight", "tanh_gaussian"), ("td3bc", "penalty", "deterministic")],
)
def test_train_evaluate_export_on_mamujoco(runner, tmp_path, hc, algo, mode, policy_mode):
    _, data, _, buf = hc
    run_dir = tmp_path / algo
    args = ["train-policy", "--data", str(data), "--synthetic", str(buf), "--algo", algo, "--mode", mode]
    args += ["--steps", "8", "--log-every", "4", "--out", str(run_dir), "--json", *TINY]
    summary = json.loads(ok(runner.invoke(app, args)).stdout)
    assert summary["algo"] == algo and summary["steps"] == 8 and np.isfinite(summary["final"]["loss"])
    assert "actor_loss" in summary["final"] and ("cql_gap" in summary["final"]) == (algo == "macql")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["policy"] == {"file": "policy.pt", "mode": policy_mode, "algo": algo}
    assert manifest["sampler"]["mode"] == mode and manifest["synthetic"]["kind"] == "buffer"
    resolved = {"macql": (3e-4, 1e-4, 1, 0.005), "td3bc": (3e-4, 3e-4, 2, 0.005)}[algo]
    cfg = manifest["config"]
    assert (cfg["lr"], cfg["actor_lr"], cfg["target_update_every"], cfg["target_tau"]) == resolved

    from logo_cli.policies.torch_policy import load_policy

    payload = torch.load(run_dir / "policy.pt", weights_only=True)
    assert payload["mode"] == policy_mode and payload["obs_norm"]["mean"].shape == (OBS,)
    policy = load_policy(run_dir / "policy.pt")
    obs = np.random.default_rng(0).standard_normal((5, N, OBS)).astype(np.float32) * 3
    greedy = policy.act(obs, None, None, greedy=True, rng=np.random.default_rng(1))
    sampled = policy.act(obs, None, None, greedy=False, rng=np.random.default_rng(1))
    with torch.no_grad():  # the deterministic action is tanh of the (mean) head, as trained
        raw = policy.net((torch.as_tensor(obs) - payload["obs_norm"]["mean"]) / payload["obs_norm"]["std"])
    np.testing.assert_allclose(greedy, torch.tanh(raw[..., :AD]).numpy(), atol=1e-6)
    assert greedy.shape == (5, N, AD) and np.abs(sampled).max() <= 1.0 and not np.array_equal(greedy, sampled)

    ev = tmp_path / "ev.json"
    args = ["evaluate", "--env", ENV, "--episodes", "2", "--num-envs", "2", "--episode-limit", str(LIMIT)]
    res = json.loads(
        ok(runner.invoke(app, [*args, "--policy", str(run_dir), "--out", str(ev), "--json"])).stdout
    )
    assert res["episodes"] == 2 and np.isfinite(res["return_mean"]) and res["win_rate"] is None

    ex = tmp_path / "export"
    ok(runner.invoke(app, ["export", str(run_dir), "--out", str(ex), "--json"]))
    agent = torch.jit.load(str(ex / "agent.pt"))
    with torch.no_grad():
        np.testing.assert_allclose(agent(torch.as_tensor(obs)).numpy(), greedy, atol=1e-5)
    assert json.loads((ex / "export.json").read_text())["mode"] == policy_mode
    assert not (ex / "mixer.pt").exists()


def test_in_memory_refresh_uses_the_learners_own_actor(runner, tmp_path, hc):
    _, data, wm, _ = hc
    run_dir = tmp_path / "refresh"
    args = ["train-policy", "--data", str(data), "--model", str(wm), "--algo", "macql", "--mode", "uniform"]
    args += ["--steps", "6", "--refresh-every", "3", "--bc-steps", "5", "--rollout-starts", "10"]
    args += ["--horizon", "2", "--cql-samples", "2", "--out", str(run_dir), *TINY]
    ok(runner.invoke(app, args))
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if x["kind"] == "refresh"] == [3]  # none at the last step
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["synthetic"]["kind"] == "model" and manifest["config"]["cql_samples"] == 2


@pytest.mark.parametrize("algo", ["macql", "td3bc"])
def test_continuous_learners_resume_exactly(tmp_path, hc, algo):
    from logo_cli.stages.train_policy import TrainPolicyConfig, run

    _, data, _, buf = hc

    def cfg(out):
        return TrainPolicyConfig(data, out, synthetic=buf, algo=algo, mode="weight", steps=10,
                                 checkpoint_every=4, batch_size=16, hidden=16, layers=1, log_every=2,
                                 device="cpu")  # fmt: skip

    run(cfg(tmp_path / "full"))

    def interrupt(phase, done, total, info):
        if phase == "train" and done == 6:  # after the step-4 checkpoint
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(cfg(tmp_path / "resumed"), progress=interrupt)
    assert run(cfg(tmp_path / "resumed")).resumed_from == 4
    wa = torch.load(tmp_path / "full" / "policy.pt", weights_only=True)
    wb = torch.load(tmp_path / "resumed" / "policy.pt", weights_only=True)
    assert all(torch.equal(wa["state_dict"][k], wb["state_dict"][k]) for k in wa["state_dict"])
    logs = [(tmp_path / d / "metrics.jsonl").read_text().splitlines() for d in ("full", "resumed")]
    strip = [[{k: v for k, v in json.loads(x).items() if k not in ("wall_time", "steps_per_s")} for x in log]
             for log in logs]  # fmt: skip
    assert strip[0] == strip[1]


def test_bad_combinations_are_one_line_errors(runner, tmp_path, hc):
    from logo_cli.data.h5_write import write_dataset
    from logo_cli.data.synthetic import random_episodes

    _, data, _, buf = hc
    out = tmp_path / "r"
    base = ["train-policy", "--data", str(data), "--out", str(out), "--steps", "2", *TINY]
    syn = ["--synthetic", str(buf), "--mode", "weight"]
    cases = [
        ([*base, "--algo", "cfcql", "--mode", "real-only"], ("--algo cfcql needs discrete actions",)),
        ([*base, "--algo", "bc", *syn], ("--mode weight", "macql or td3bc")),
        ([*base, "--algo", "td3bc", *syn, "--cql-synthetic", "combo"], ("--cql-synthetic combo",)),
        ([*base, "--algo", "td3bc", "--mode", "real-only", "--entropy-alpha", "0.2"], ("--entropy-alpha",)),
        ([*base, "--algo", "td3bc", "--mode", "real-only", "--cql-samples", "4"], ("--cql-samples",)),
        ([*base, "--algo", "bc", "--mode", "real-only", "--actor-lr", "1e-3"], ("--actor-lr",)),
        ([*base, "--algo", "macql", "--mode", "real-only", "--policy-delay", "0"], ("--policy-delay 0",)),
        ([*base, "--algo", "td3bc", "--mode", "real-only", "--actor-bc-steps", "5"], ("--actor-bc-steps",)),
    ]
    for args, needles in cases:
        one_line_error(runner.invoke(app, args), *needles)
        assert not out.exists() and not (tmp_path / "r.partial").exists()

    eps = random_episodes(4, n_agents=2, obs_dim=3, state_dim=3, n_actions=4, episode_limit=5, seed=0)
    disc = tmp_path / "disc_medium.h5"
    write_dataset(disc, eps, {"map_name": "toy", "quality": "medium"})
    dbase = [
        "train-policy",
        "--data",
        str(disc),
        "--out",
        str(out),
        "--mode",
        "real-only",
        "--steps",
        "2",
        *TINY,
    ]
    one_line_error(runner.invoke(app, [*dbase, "--algo", "td3bc"]), "td3bc needs continuous actions")
    one_line_error(runner.invoke(app, [*dbase, "--algo", "macql", "--actor-lr", "1e-3"]), "--actor-lr")
    assert not out.exists()


def test_the_command_lists_the_stages_learners():
    from logo_cli.commands.train_policy import ALGOS as COMMAND_ALGOS
    from logo_cli.train.registry import ALGOS

    assert COMMAND_ALGOS == ALGOS and "td3bc" in ALGOS
