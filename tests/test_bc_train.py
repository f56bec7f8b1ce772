"""Behaviour cloning: the masked loss, learning a tiny problem, never choosing unavailable actions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from logo_cli.algos.bc import bc_accuracy, bc_loss, train_bc
from logo_cli.data.transitions import Transitions
from logo_cli.errors import LogoError
from logo_cli.models.agent_net import AgentNet


def tiny_problem(n: int = 2000, n_agents: int = 2, obs_dim: int = 4, n_actions: int = 5, seed: int = 0):
    """The expert action is argmax of the first n_actions-1 obs features among available actions;
    the last action is never available."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, n_agents, obs_dim)).astype(np.float32)
    avail = rng.random((n, n_agents, n_actions)) < 0.7
    avail[..., -1] = False
    avail[..., 0] |= ~avail[..., : n_actions - 1].any(-1)  # at least one available action
    scores = np.concatenate([obs[..., : n_actions - 1], np.full((n, n_agents, 1), -9.0)], -1)
    scores = np.where(avail, scores, -np.inf)
    actions = scores.argmax(-1).astype(np.int64)
    state = rng.normal(size=(n, 3)).astype(np.float32)
    return Transitions(
        state=state,
        obs=obs,
        actions=actions,
        avail_actions=avail,
        reward=np.zeros(n, np.float32),
        terminated=np.zeros(n, bool),
        next_state=state,
        next_obs=obs,
        next_avail_actions=avail,
    )


def test_bc_loss_matches_hand_computation_and_ignores_unavailable():
    torch.manual_seed(0)
    net = AgentNet(obs_dim=1, n_agents=1, n_actions=3, hidden=4, layers=1)
    batch = {
        "obs": torch.zeros(1, 1, 1),
        "actions": torch.tensor([[1]]),
        "avail_actions": torch.tensor([[[True, True, False]]]),
    }
    logits = net(batch["obs"])[0, 0]
    expected = -(logits[1] - torch.logsumexp(logits[:2], 0))
    assert torch.allclose(bc_loss(net, batch), expected, atol=1e-6)
    # Making the unavailable action's logit huge must not change the loss.
    with torch.no_grad():
        net.net[-1].bias[2] += 100.0
    assert torch.allclose(bc_loss(net, batch), expected, atol=1e-6)


def test_bc_loss_skips_rows_whose_data_action_is_unavailable():
    net = AgentNet(obs_dim=1, n_agents=1, n_actions=2, hidden=4, layers=1)
    good = {
        "obs": torch.zeros(1, 1, 1),
        "actions": torch.tensor([[0]]),
        "avail_actions": torch.ones(1, 1, 2).bool(),
    }
    bad = {
        "obs": torch.zeros(2, 1, 1),
        "actions": torch.tensor([[0], [1]]),
        "avail_actions": torch.tensor([[[True, True]], [[True, False]]]),
    }
    loss = bc_loss(net, bad)
    assert math.isfinite(float(loss.detach()))
    assert torch.allclose(loss, bc_loss(net, good))


def test_bc_learns_tiny_problem_and_is_repeatable():
    data = tiny_problem()
    calls = []
    policy = train_bc(
        data, steps=400, batch_size=128, lr=3e-3, hidden=64, seed=1, progress=lambda *a: calls.append(a)
    )
    batch = data.to_torch()
    acc = bc_accuracy(policy.net, batch)
    assert acc > 0.9, acc
    assert calls and calls[-1][0] == 400 and calls[-1][1] == 400 and "bc_loss" in calls[-1][2]
    assert policy.mode == "logits" and policy.hparams == {"hidden": 64, "layers": 2}
    again = train_bc(data, steps=400, batch_size=128, lr=3e-3, hidden=64, seed=1)
    for a, b in zip(policy.net.state_dict().values(), again.net.state_dict().values(), strict=True):
        assert torch.equal(a, b)

    # Neither greedy nor sampled actions are ever unavailable.
    rng = np.random.default_rng(0)
    for greedy in (True, False):
        acts = policy.act(data.obs, data.state, data.avail_actions, greedy=greedy, rng=rng)
        assert np.take_along_axis(data.avail_actions, acts[..., None], -1).all()


def test_bc_refuses_continuous_data():
    data = tiny_problem(n=10)
    cont = Transitions(**{**data.__dict__, "actions": np.zeros((10, 2, 3), np.float32)})
    with pytest.raises(LogoError, match="discrete"):
        train_bc(cont, steps=1)
