"""CFCQL: the counterfactual term against a brute-force mixer loop, masking, the agent weights λ,
the α = 0 limit and a few learning steps."""

from __future__ import annotations

import math

import pytest
import torch

from logo_cli.algos.cfcql import (
    CfcqlConfig,
    CfcqlNets,
    agent_weights,
    cfcql_loss,
    cfcql_update,
    counterfactual_q_tot,
    counterfactual_term,
)
from logo_cli.algos.macql import MacqlConfig, macql_loss
from logo_cli.data.transitions import Dims
from logo_cli.models.mixer import QMixer

DIMS = Dims(n_agents=2, obs_dim=3, state_dim=4, n_actions=3)


def make_batch(b: int = 6, seed: int = 0, dims: Dims = DIMS) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    avail = torch.rand(b, dims.n_agents, dims.n_actions, generator=g) < 0.6
    avail[..., 0] = True
    acts = torch.where(avail, torch.rand(avail.shape, generator=g), -1.0).argmax(-1)  # available ones
    return {
        "obs": torch.randn(b, dims.n_agents, dims.obs_dim, generator=g),
        "state": torch.randn(b, dims.state_dim, generator=g),
        "actions": acts,
        "avail_actions": avail,
        "reward": torch.randn(b, generator=g),
        "terminated": torch.zeros(b, dtype=torch.bool),
        "next_obs": torch.randn(b, dims.n_agents, dims.obs_dim, generator=g),
        "next_state": torch.randn(b, dims.state_dim, generator=g),
        "next_avail_actions": torch.ones(b, dims.n_agents, dims.n_actions, dtype=torch.bool),
    }


def brute_force(q_agents, actions, allowed, state, mixer):
    """Per row and agent: [Q_tot(s, a_i=j, a_-i) for allowed j], one mixer call per (agent, action)."""
    b, n, _ = q_agents.shape
    out = []
    for r in range(b):
        per_agent = []
        for i in range(n):
            values = []
            for j in torch.nonzero(allowed[r, i]).flatten().tolist():
                joint = actions[r].clone()
                joint[i] = j
                q = q_agents[r, torch.arange(n), joint].unsqueeze(0)
                values.append(float(mixer(q, state[r : r + 1])))
            per_agent.append(values)
        out.append(per_agent)
    return out


def test_counterfactual_q_tot_equals_one_mixer_call_per_agent_and_action():
    torch.manual_seed(0)
    mixer = QMixer(n_agents=2, state_dim=4, embed=3, hypernet_embed=5).requires_grad_(False)
    q_agents = torch.tensor([[[1.0, -0.5, 2.0], [0.3, 0.7, -1.0]], [[0.0, 0.4, -0.2], [1.5, -2.0, 0.1]]])
    actions = torch.tensor([[1, 2], [0, 0]])
    state = torch.randn(2, 4)
    cf = counterfactual_q_tot(q_agents, actions, state, mixer)
    assert cf.shape == (2, 2, 3)
    every = torch.ones(2, 2, 3, dtype=torch.bool)
    expect = torch.tensor(brute_force(q_agents, actions, every, state, mixer))
    torch.testing.assert_close(cf, expect, atol=1e-5, rtol=1e-5)
    # At j = a_i every agent's counterfactual is the data joint action's Q_tot.
    data = mixer(q_agents.gather(-1, actions.unsqueeze(-1)).squeeze(-1), state)
    for i in range(2):
        torch.testing.assert_close(cf[:, i].gather(-1, actions[:, i : i + 1]).squeeze(-1), data)


def test_term_is_the_lambda_weighted_logsumexp_over_allowed_actions():
    torch.manual_seed(1)
    nets = CfcqlNets(DIMS, hidden=8, layers=1, mixer_embed=3, hypernet_embed=5)
    batch = make_batch(5, seed=2)
    batch["avail_actions"][0, 1, batch["actions"][0, 1]] = False  # a corrupt row: data action "unavailable"
    cfg = CfcqlConfig(temperature=2.0)
    q_agents = nets.agent(batch["obs"])
    state = nets.norm_state(batch["state"])
    q_tot, push_down, parts = counterfactual_term(nets, q_agents, state, batch, cfg)
    q_tot, push_down = q_tot.detach(), push_down.detach()

    allowed = batch["avail_actions"].clone()
    allowed[torch.arange(5)[:, None], torch.arange(2)[None], batch["actions"]] = True  # + data actions
    with torch.no_grad():
        per = brute_force(q_agents, batch["actions"], allowed, state, nets.mixer)
        beta = torch.softmax(nets.behaviour(batch["obs"]).masked_fill(~allowed, -math.inf), -1)
    for r in range(5):
        kls, lses = [], []
        for i in range(2):
            js = torch.nonzero(allowed[r, i]).flatten().tolist()
            values = torch.tensor(per[r][i])
            mu = torch.softmax(values, 0)
            kls.append(float((mu * (mu.log() - beta[r, i, js].log())).sum()))
            lses.append(float(torch.logsumexp(values, 0)))
        lam = torch.softmax(2.0 * torch.tensor(kls), 0)
        assert float(push_down[r]) == pytest.approx(float((lam * torch.tensor(lses)).sum()), abs=1e-5)
    assert (push_down - q_tot >= -1e-6).all()  # the data action is in every agent's logsumexp
    assert 0.5 <= float(parts["lambda_max"]) <= 1.0 and float(parts["behaviour_kl"]) >= 0.0


def test_unavailable_actions_are_left_out_of_the_logsumexp():
    torch.manual_seed(3)
    nets = CfcqlNets(DIMS, hidden=8, layers=1)
    batch = make_batch(4, seed=4)
    batch["avail_actions"][:] = True
    batch["avail_actions"][:, 0, 2] = False
    batch["actions"][:, 0] = 0
    cfg = CfcqlConfig(temperature=0.0)
    state = nets.norm_state(batch["state"])
    q_agents = nets.agent(batch["obs"]).detach()
    _, base, _ = counterfactual_term(nets, q_agents, state, batch, cfg)
    boosted = q_agents.clone()
    boosted[:, 0, 2] += 50.0  # a huge Q on agent 0's unavailable action changes nothing
    _, same, _ = counterfactual_term(nets, boosted, state, batch, cfg)
    torch.testing.assert_close(base, same)
    boosted[:, 0, 1] += 50.0  # on an available one it dominates
    _, more, _ = counterfactual_term(nets, boosted, state, batch, cfg)
    assert (more > base + 1.0).all()


def test_lambda_sums_to_one_and_favours_the_agent_farthest_from_behaviour():
    allowed = torch.ones(1, 3, 3, dtype=torch.bool)
    behaviour = torch.zeros(1, 3, 3)  # β uniform for every agent
    q_cf = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [4.0, 0.0, 0.0]]])  # μ_0 = β; μ_2 far
    lam, kl = agent_weights(q_cf, behaviour, allowed, temperature=5.0)
    assert float(lam.sum()) == pytest.approx(1.0)
    assert kl[0, 0] == pytest.approx(0.0, abs=1e-6) and kl[0, 0] < kl[0, 1] < kl[0, 2]
    assert lam[0, 0] < lam[0, 1] < lam[0, 2] and float(lam[0, 2]) > 0.9
    uniform, _ = agent_weights(q_cf, behaviour, allowed, temperature=0.0)
    torch.testing.assert_close(uniform, torch.full((1, 3), 1 / 3))
    # An action outside an agent's allowed set does not enter its KL, however β rates it.
    masked = allowed.clone()
    masked[0, 2, 1:] = False
    lam2, kl2 = agent_weights(q_cf, torch.tensor([[[0.0] * 3] * 2 + [[0.0, 30.0, -30.0]]]), masked, 5.0)
    assert kl2[0, 2] == pytest.approx(0.0, abs=1e-6) and float(lam2.sum()) == pytest.approx(1.0)


def test_alpha_zero_is_macql_td_loss_and_alpha_adds_the_gap():
    torch.manual_seed(5)
    nets = CfcqlNets(DIMS, hidden=8, layers=1)
    batch = make_batch(8, seed=6)
    loss, parts = cfcql_loss(nets, batch, CfcqlConfig(cql_alpha=0.0))
    ref, ref_parts = macql_loss(nets, batch, MacqlConfig(cql_alpha=0.0))
    assert torch.equal(loss, ref) and float(parts["td_loss"]) == float(ref_parts["td_loss"])
    assert "cql_gap" not in parts
    loss, parts = cfcql_loss(nets, batch, CfcqlConfig(cql_alpha=2.0))
    torch.testing.assert_close(loss.detach(), parts["td_loss"] + 2.0 * parts["cql_gap"])
    torch.testing.assert_close(parts["td_loss"], ref_parts["td_loss"])  # the same data-action Q_tot


def test_synthetic_rows_follow_the_cql_synthetic_option():
    torch.manual_seed(7)
    nets = CfcqlNets(DIMS, hidden=8, layers=1)
    batch = make_batch(8, seed=8)
    batch["synthetic"] = torch.tensor([False] * 4 + [True] * 4)
    q_agents = nets.agent(batch["obs"])
    state = nets.norm_state(batch["state"])
    q_tot, push_down, _ = counterfactual_term(nets, q_agents, state, batch, CfcqlConfig())
    row_gap = (push_down - q_tot).detach()
    none = cfcql_loss(nets, batch, CfcqlConfig(cql_synthetic="none"))[1]["cql_gap"]
    data = cfcql_loss(nets, batch, CfcqlConfig(cql_synthetic="data"))[1]["cql_gap"]
    assert float(none) == pytest.approx(float(row_gap[:4].mean()), abs=1e-5)
    assert float(data) == pytest.approx(float(row_gap.mean()), abs=1e-5)


def test_a_few_steps_lower_the_loss_and_push_down_out_of_data_actions():
    dims = Dims(n_agents=2, obs_dim=3, state_dim=4, n_actions=3)
    batch = make_batch(64, seed=9, dims=dims)
    batch["avail_actions"][:] = True
    batch["actions"][:] = 0
    batch["terminated"][:] = True  # one-step problem: Q_tot(data) -> reward
    batch["reward"][:] = 0.0
    torch.manual_seed(10)
    nets = CfcqlNets(dims, hidden=32, layers=2)
    opt = torch.optim.Adam(nets.online_parameters(), lr=3e-3)
    cfg = CfcqlConfig(cql_alpha=1.0)
    behaviour_before = {k: v.clone() for k, v in nets.behaviour.state_dict().items()}
    first = float(cfcql_loss(nets, batch, cfg)[0].detach())
    for step in range(1, 41):
        cfcql_update(nets, opt, batch, cfg, step)
    last = float(cfcql_loss(nets, batch, cfg)[0].detach())
    assert last < 0.5 * first, (first, last)
    with torch.no_grad():
        q = nets.agent(batch["obs"])
    assert float((q[..., 0:1] - q[..., 1:]).mean()) > 1.0  # data action 0 above the others
    # β is frozen: not among the optimised parameters and unchanged by the updates.
    assert all(torch.equal(v, nets.behaviour.state_dict()[k]) for k, v in behaviour_before.items())
    assert not any(p.requires_grad for p in nets.behaviour.parameters())


def test_behaviour_net_travels_with_the_state_dict():
    torch.manual_seed(11)
    nets = CfcqlNets(DIMS, hidden=8, layers=1)
    from logo_cli.models.agent_net import AgentNet

    bc = AgentNet(DIMS.obs_dim, DIMS.n_agents, DIMS.n_actions, hidden=8, layers=1)
    nets.set_behaviour(bc)
    other = CfcqlNets(DIMS, hidden=8, layers=1)
    other.load_state_dict(nets.state_dict())
    obs = torch.randn(4, 2, 3)
    torch.testing.assert_close(other.behaviour(obs), bc(obs))
    assert any(k.startswith("behaviour.") for k in nets.state_dict())
