"""Independent CQL (`--algo icql`): it learns on a one-step problem, and runs through the command line."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from logo_cli.cli import app
from logo_cli.data.transitions import Transitions
from logo_cli.errors import LogoError
from logo_cli.stages.train_policy_config import TrainPolicyConfig, resolve
from logo_cli.train.registry import key, learner_class
from tests.cli_checks import ok

N, A, OD = 2, 3, 4
BEST = (1, 2)  # the action that earns each agent's share of the team reward


def _toy(n: int = 512, seed: int = 0) -> Transitions:
    """One-step episodes; team reward [a_0 = 1] + [a_1 = 2], so agent 0's best action is 1 and agent
    1's is 2 whatever the other does. Agent 0 takes actions 0 and 1 (2 is available but never in the
    data), agent 1 takes 1 and 2 (0 is unavailable to it)."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, N, OD)).astype(np.float32)
    avail = np.ones((n, N, A), bool)
    avail[:, 1, 0] = False
    acts = np.stack([rng.integers(0, 2, n), rng.integers(1, A, n)], axis=1)
    reward = (acts[:, 0] == BEST[0]).astype(np.float32) + (acts[:, 1] == BEST[1])
    return Transitions(
        state=np.zeros((n, 5), np.float32), obs=obs, actions=acts.astype(np.int64), avail_actions=avail,
        reward=reward.astype(np.float32), terminated=np.ones(n, bool),
        next_state=np.zeros((n, 5), np.float32), next_obs=obs, next_avail_actions=avail,
    )  # fmt: skip


def _train(alpha: float, steps: int = 400) -> tuple[list[float], torch.Tensor]:
    """ICQL on the toy data; the TD losses of every step and the agents' Qs averaged over observations
    (which carry no information here) [N,A]."""
    from logo_cli.data.sampler import MixedSampler

    data = _toy()
    opts = TrainPolicyConfig(data=Path("toy.h5"), out=Path("run"), algo="icql", hidden=32, lr=3e-3)
    opts = resolve(replace(opts, cql_alpha=alpha), discrete=True)
    learner = learner_class(key("icql", True, "mlp"))(data.dims, data, opts)
    assert opts.target_update_every == 200 and learner.mode == "q"  # the discrete learners' defaults
    batches = learner.batches(MixedSampler(data, mode="real-only", rng=np.random.default_rng(0)))
    losses = [float(learner.update(batches(), step)["td_loss"]) for step in range(1, steps + 1)]
    with torch.no_grad():
        return losses, learner.agent()(torch.as_tensor(data.obs)).mean(0)


def test_icql_ranks_each_agents_rewarded_action_highest_and_pushes_unseen_actions_down():
    losses, q = _train(alpha=1.0)
    # An agent's own Q cannot predict the other's share of the reward (1 with probability 1/2): the
    # TD loss falls towards ½ · 1/4, above it by what the CQL term costs.
    floor = 0.5 * 0.25
    first, last = np.mean(losses[:10]), np.mean(losses[-50:])
    assert last < 1.5 * floor < 2 * floor < first, (first, last)
    assert int(q[0].argmax()) == BEST[0] and int(q[1, 1:].argmax()) + 1 == BEST[1], q
    assert float(q[0, 1] - q[0, 0]) > 0.25 and float(q[1, 2] - q[1, 1]) > 0.25, q  # reward gap: 1
    # agent 0's action 2, never in the data, ends far below the data's actions (conservatism) ...
    assert float(q[0, 2]) < float(q[0, 0]) - 2, q
    # ... which plain independent Q-learning (α = 0) does not do: the CQL term is what pushed it
    _, q_plain = _train(alpha=0.0)
    assert float(q_plain[0, 2]) > float(q_plain[0, 0]) - 1, q_plain


def test_icql_refuses_continuous_actions_and_gru_agents():
    from logo_cli.stages.train_policy_checks import check_action_kind, check_recurrent_config

    cfg = TrainPolicyConfig(data=Path("d.h5"), out=Path("run"), algo="icql")
    with pytest.raises(LogoError, match="--algo icql needs discrete actions"):
        check_action_kind(cfg, False, "d.h5")
    check_action_kind(cfg, True, "d.h5")
    with pytest.raises(LogoError, match=r"--agent gru: needs --algo macql or cfcql \(--algo icql"):
        check_recurrent_config(replace(cfg, agent="gru"))


def test_icql_through_the_command_line(runner, tmp_path):
    from logo_cli.policies.torch_policy import load_policy
    from tests.test_train_policy_resume import write_data

    data = write_data(tmp_path / "toy_medium.h5")
    run_dir = tmp_path / "run"
    args = ["train-policy", "--data", str(data), "--algo", "icql", "--mode", "real-only", "--steps", "12"]
    args += ["--log-every", "4", "--batch-size", "16", "--hidden", "16", "--layers", "1", "--n-step", "2"]
    ok(runner.invoke(app, [*args, "--out", str(run_dir), "--device", "cpu", "--json"]))
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["policy"] == {"file": "policy.pt", "mode": "q", "algo": "icql"}
    assert manifest["config"]["lr"] == 5e-4 and manifest["config"]["n_step"] == 2
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [x for x in lines if x["kind"] == "train"]
    assert [x["step"] for x in train] == [4, 8, 12] and all(np.isfinite(x["cql_gap"]) for x in train)
    payload = torch.load(run_dir / "policy.pt", weights_only=True)
    assert payload["mode"] == "q" and payload.get("mixer") is None
    policy = load_policy(run_dir / "policy.pt")
    obs = np.zeros((3, 2, 4), np.float32)
    avail = np.ones((3, 2, 5), bool)
    avail[:, :, 0] = False
    act = policy.act(obs, np.zeros((3, 6), np.float32), avail, greedy=True, rng=np.random.default_rng(0))
    assert act.shape == (3, 2) and (act > 0).all()  # greedy over the available actions only


def test_icql_resumes_to_identical_weights(tmp_path):
    from logo_cli.stages.train_policy import partial_dir, run
    from tests.test_train_policy_resume import base_cfg, weights, write_data

    data = write_data(tmp_path / "toy_medium.h5")
    run(base_cfg(data, tmp_path / "full", algo="icql"))

    def interrupt(phase, done, total, info):
        if phase == "train" and done == 20:  # after the step-16 checkpoint
            raise KeyboardInterrupt

    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        run(base_cfg(data, out, algo="icql"), progress=interrupt)
    assert (partial_dir(out) / "checkpoint.pt").is_file()
    assert run(base_cfg(data, out, algo="icql")).resumed_from == 16
    wa, wb = weights(tmp_path / "full"), weights(out)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
