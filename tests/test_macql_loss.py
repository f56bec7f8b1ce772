"""MACQL: the QMIX mixer, the CQL term against hand computations, TD targets and target updates."""

from __future__ import annotations

import math

import pytest
import torch

from logo_cli.algos.macql import (
    MacqlConfig,
    MacqlNets,
    cql_gap,
    enumerate_joint_actions,
    joint_q_values,
    macql_loss,
    macql_update,
    sample_joint_actions,
    sampled_cql_term,
    td_target,
)
from logo_cli.data.transitions import Dims
from logo_cli.models.agent_net import AgentNet, masked_greedy
from logo_cli.models.mixer import QMixer

DIMS = Dims(n_agents=2, obs_dim=3, state_dim=4, n_actions=3)


def make_batch(b: int = 5, seed: int = 0, dims: Dims = DIMS) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    avail = torch.rand(b, dims.n_agents, dims.n_actions, generator=g) < 0.7
    avail[..., 0] = True
    next_avail = torch.rand(b, dims.n_agents, dims.n_actions, generator=g) < 0.7
    next_avail[..., 0] = True
    return {
        "obs": torch.randn(b, dims.n_agents, dims.obs_dim, generator=g),
        "state": torch.randn(b, dims.state_dim, generator=g),
        "actions": torch.zeros(b, dims.n_agents, dtype=torch.int64),
        "avail_actions": avail,
        "reward": torch.randn(b, generator=g),
        "terminated": torch.tensor([True, False] * (b // 2) + [False] * (b % 2)),
        "next_obs": torch.randn(b, dims.n_agents, dims.obs_dim, generator=g),
        "next_state": torch.randn(b, dims.state_dim, generator=g),
        "next_avail_actions": next_avail,
    }


def test_mixer_matches_formula_is_monotone_and_broadcasts():
    torch.manual_seed(0)
    mixer = QMixer(n_agents=3, state_dim=4, embed=5, hypernet_embed=7)
    state = torch.randn(6, 4)
    q = torch.randn(6, 3, requires_grad=True)
    out = mixer(q, state)
    # Hand formula from the hypernetwork outputs.
    w1 = mixer.hyper_w1(state).abs().view(6, 3, 5)
    hidden = torch.nn.functional.elu(torch.einsum("bn,bne->be", q, w1) + mixer.hyper_b1(state))
    expected = (hidden * mixer.hyper_w2(state).abs()).sum(-1) + mixer.hyper_v(state).squeeze(-1)
    assert torch.allclose(out, expected, atol=1e-5)
    # dQ_tot/dQ_i >= 0 everywhere, and raising one agent's Q never lowers Q_tot.
    (grad,) = torch.autograd.grad(out.sum(), q)
    assert (grad >= 0).all()
    for i in range(3):
        bumped = q.detach().clone()
        bumped[:, i] += torch.linspace(0.1, 3.0, 6)
        assert (mixer(bumped, state) >= out.detach() - 1e-6).all()
    # Leading sample dims share the state's hypernetwork outputs.
    qk = torch.randn(4, 6, 3)
    batched = mixer(qk, state)
    assert batched.shape == (4, 6)
    assert torch.allclose(batched[2], mixer(qk[2], state), atol=1e-6)


def test_cql_gap_equals_hand_computation_over_all_available_joint_actions():
    torch.manual_seed(1)
    mixer = QMixer(n_agents=2, state_dim=4, embed=3, hypernet_embed=5)
    q_agents = torch.tensor([[[1.0, -0.5, 2.0], [0.3, 0.7, -1.0]]])
    avail = torch.tensor([[[True, True, False], [True, False, True]]])
    state = torch.randn(1, 4)
    data = torch.tensor([[1, 2]])
    q_tot_data = mixer(q_agents[0, [0, 1], data[0]].unsqueeze(0), state)

    joint, valid = enumerate_joint_actions(avail)
    assert joint.shape == (9, 1, 2) and int(valid.sum()) == 4
    got = cql_gap(q_agents, state, q_tot_data, joint, mixer, valid).detach()
    mixer.requires_grad_(False)

    total = 0.0
    for a0 in (0, 1):  # agent 0: actions 0, 1 available
        for a1 in (0, 2):  # agent 1: actions 0, 2 available
            qq = torch.tensor([[q_agents[0, 0, a0], q_agents[0, 1, a1]]])
            total += math.exp(float(mixer(qq, state)))
    assert abs(float(got) - (math.log(total) - float(q_tot_data.detach()))) < 1e-5


def test_sampled_joint_actions_are_available_and_uniform():
    avail = torch.tensor([[[True, False, True, True], [False, True, False, False]]])
    joint = sample_joint_actions(avail, 30000, torch.Generator().manual_seed(0))
    assert joint.shape == (30000, 1, 2)
    assert avail[0, 0, joint[:, 0, 0]].all() and avail[0, 1, joint[:, 0, 1]].all()
    freq = torch.bincount(joint[:, 0, 0], minlength=4).float() / 30000
    assert torch.allclose(freq, torch.tensor([1 / 3, 0, 1 / 3, 1 / 3]), atol=0.015)
    # Sampled CQL: logsumexp over K draws − log K -> log of the uniform mean over valid joint actions.
    torch.manual_seed(2)
    mixer = QMixer(2, 4, embed=3, hypernet_embed=5)
    q_agents, state = torch.randn(1, 2, 4), torch.randn(1, 4)
    exact_joint, valid = enumerate_joint_actions(avail)
    exact = cql_gap(q_agents, state, torch.zeros(1), exact_joint, mixer, valid) - math.log(int(valid.sum()))
    sampled = cql_gap(q_agents, state, torch.zeros(1), joint, mixer) - math.log(30000)
    exact, sampled = exact.detach(), sampled.detach()
    assert abs(float(exact) - float(sampled)) < 0.02


def test_td_target_terminal_timeout_and_double_q():
    torch.manual_seed(3)
    nets = MacqlNets(DIMS, hidden=8, layers=1, mixer_embed=4, hypernet_embed=6)
    with torch.no_grad():  # make the target net differ from the online one
        for p in nets.target_agent.parameters():
            p.add_(0.5 * torch.randn_like(p))
    batch = make_batch(4)
    y = td_target(nets, batch, gamma=0.9)
    for i in range(4):
        q_on = nets.agent(batch["next_obs"][i : i + 1]).masked_fill(
            ~batch["next_avail_actions"][i : i + 1], -1e9
        )
        best = q_on.argmax(-1)  # online greedy among available actions
        assert batch["next_avail_actions"][i].gather(-1, best[0].unsqueeze(-1)).all()
        q_t = nets.target_agent(batch["next_obs"][i : i + 1]).gather(-1, best.unsqueeze(-1)).squeeze(-1)
        boot = nets.target_mixer(q_t, batch["next_state"][i : i + 1])
        expect = batch["reward"][i] + (0.0 if batch["terminated"][i] else 0.9 * float(boot))
        assert abs(float(y[i]) - float(expect)) < 1e-5


def test_cql_lowers_q_of_out_of_data_actions():
    dims = Dims(n_agents=2, obs_dim=3, state_dim=4, n_actions=3)
    batch = make_batch(64, seed=4, dims=dims)
    batch["avail_actions"][:] = True
    batch["terminated"][:] = True  # one-step problem: Q_tot(data) -> reward
    batch["reward"][:] = 0.0

    def ood_margin(alpha: float) -> float:
        torch.manual_seed(5)
        nets = MacqlNets(dims, hidden=32, layers=2)
        opt = torch.optim.Adam(nets.online_parameters(), lr=3e-3)
        cfg = MacqlConfig(cql_alpha=alpha, cql_samples=16)
        gen = torch.Generator().manual_seed(0)
        for step in range(1, 41):
            macql_update(nets, opt, batch, cfg, step, gen)
        with torch.no_grad():
            q = nets.agent(batch["obs"])
        return float((q[..., 0:1] - q[..., 1:]).mean())  # data action 0 minus the others

    with_cql, without = ood_margin(1.0), ood_margin(0.0)
    assert with_cql > 1.0, with_cql
    assert with_cql > without + 1.0, (with_cql, without)


def test_loss_parts_and_target_update_schedule():
    torch.manual_seed(6)
    nets = MacqlNets(DIMS, hidden=8, layers=1)
    opt = torch.optim.Adam(nets.online_parameters(), lr=1e-2)
    cfg = MacqlConfig(cql_alpha=2.0, cql_samples=4, target_update_every=2, target_tau=1.0)
    batch = make_batch(6)
    loss, parts = macql_loss(nets, batch, cfg, torch.Generator().manual_seed(0))
    assert torch.allclose(loss, parts["td_loss"] + 2.0 * parts["cql_gap"])
    before = [p.clone() for p in nets.target_agent.parameters()]
    macql_update(nets, opt, batch, cfg, step=1)
    assert all(torch.equal(a, b) for a, b in zip(before, nets.target_agent.parameters(), strict=True))
    macql_update(nets, opt, batch, cfg, step=2)
    for t, o in zip(nets.target_agent.parameters(), nets.agent.parameters(), strict=True):
        assert torch.equal(t, o)


def test_sampled_gap_with_the_data_action_is_never_negative():
    torch.manual_seed(7)
    nets = MacqlNets(DIMS, hidden=8, layers=1)
    with torch.no_grad():  # make the data action (0) far better than every other action
        nets.agent.net[-1].bias[:] = torch.tensor([20.0, 0.0, 0.0])
    batch = make_batch(32, seed=8)
    with_data = macql_loss(nets, batch, MacqlConfig(cql_samples=4), torch.Generator().manual_seed(0))[1]
    samples_only = MacqlConfig(cql_samples=4, cql_include_data=False)
    without = macql_loss(nets, batch, samples_only, torch.Generator().manual_seed(0))[1]
    assert float(with_data["cql_gap"]) >= 0.0
    assert float(without["cql_gap"]) < 0.0  # the unbounded-below case the default avoids


def test_greedy_joint_action_is_one_more_logsumexp_term():
    torch.manual_seed(3)
    nets = MacqlNets(DIMS, hidden=8, layers=1)
    with torch.no_grad():  # action 2, never the data action, is every agent's best where available
        nets.agent.net[-1].bias[:] = torch.tensor([0.0, 0.0, 5.0])
    batch = make_batch(16, seed=4)
    q = nets.agent(batch["obs"]).detach()
    state = nets.norm_state(batch["state"])
    cfg = MacqlConfig(cql_samples=4)
    q_data, lse, _ = sampled_cql_term(nets, q, state, batch, cfg, torch.Generator().manual_seed(0))
    greedy_cfg = MacqlConfig(cql_samples=4, cql_greedy=True)
    q_data_g, lse_g, _ = sampled_cql_term(nets, q, state, batch, greedy_cfg, torch.Generator().manual_seed(0))
    # by hand: the same K samples (the generator draws after the greedy choice), plus Q_tot(greedy)
    best = masked_greedy(q, batch["avail_actions"])
    q_best = nets.mixer(q.gather(-1, best.unsqueeze(-1)).squeeze(-1), state)
    torch.testing.assert_close(q_data_g, q_data)
    torch.testing.assert_close(lse_g, torch.logaddexp(lse, q_best))
    assert bool((best == 2).any()) and float((lse_g - lse).detach().min()) > 0.0
    # the greedy action's Q is pushed down harder than by the uniform samples alone
    def push_on_best(c: MacqlConfig) -> float:
        nets.zero_grad()
        macql_loss(nets, batch, c, torch.Generator().manual_seed(0))[0].backward()
        return float(nets.agent.net[-1].bias.grad[2])  # > 0: gradient descent lowers action 2's Q

    assert push_on_best(greedy_cfg) > push_on_best(cfg) + 0.05


def test_combo_and_none_treat_synthetic_rows_as_documented():
    lse = torch.tensor([1.0, 2.0, 3.0, 4.0])
    q = torch.tensor([0.5, 0.5, 1.0, 2.0])
    syn = torch.tensor([False, False, True, True])
    from logo_cli.algos.macql import _conservative_term

    assert float(_conservative_term(lse, q, syn, "data")) == pytest.approx(((lse - q).mean()).item())
    assert float(_conservative_term(lse, q, syn, "none")) == pytest.approx((0.5 + 1.5) / 2)
    # COMBO: down on all four rows' logsumexp, up only on the two real rows' data actions.
    assert float(_conservative_term(lse, q, syn, "combo")) == pytest.approx(2.5 - 0.5)
    assert float(_conservative_term(lse, q, None, "combo")) == pytest.approx(((lse - q).mean()).item())


def test_mixer_sees_the_standardised_state():
    torch.manual_seed(0)
    nets = MacqlNets(DIMS, hidden=8, layers=1)
    batch = make_batch(b=6)
    raw = torch.randn(200, DIMS.state_dim) * 20 + 5
    nets.set_state_stats(raw)
    assert torch.allclose(nets.norm_state(raw).mean(0), torch.zeros(DIMS.state_dim), atol=1e-4)
    assert torch.allclose(nets.norm_state(raw).std(0), torch.ones(DIMS.state_dim), atol=1e-4)
    cfg = MacqlConfig(cql_alpha=0.0)
    loss, parts = macql_loss(nets, batch, cfg)
    q_data = nets.agent(batch["obs"]).gather(-1, batch["actions"].unsqueeze(-1)).squeeze(-1)
    expected = nets.mixer(q_data, (batch["state"] - nets.state_mean) / nets.state_std).mean()
    assert float(parts["q_tot"]) == pytest.approx(float(expected), rel=1e-5)
    # The statistics travel with the networks' state_dict (and so with checkpoints).
    other = MacqlNets(DIMS, hidden=8, layers=1)
    other.load_state_dict(nets.state_dict())
    assert torch.equal(other.state_mean, nets.state_mean) and torch.equal(other.state_std, nets.state_std)


def test_agent_net_is_the_mlp_of_obs_with_one_hot_ids_appended():
    torch.manual_seed(0)
    net = AgentNet(obs_dim=5, n_agents=3, n_actions=4, hidden=8)
    obs = torch.randn(2, 7, 3, 5)  # leading dims beyond the batch, as the GRU-free callers use
    ids = torch.eye(3).expand(2, 7, 3, 3)
    expected = net.net(torch.cat([obs, ids], dim=-1))
    torch.testing.assert_close(net(obs), expected)


def test_joint_q_values_match_the_expanded_gather_in_value_and_gradient():
    torch.manual_seed(0)
    q = torch.randn(4, 3, 5, requires_grad=True)
    joint = torch.randint(0, 5, (6, 4, 3))
    got = joint_q_values(q, joint)
    ref = q.unsqueeze(0).expand(6, -1, -1, -1).gather(-1, joint.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(got, ref)
    w = torch.randn(6, 4, 3)
    (g_got,) = torch.autograd.grad((got * w).sum(), q)
    (g_ref,) = torch.autograd.grad((ref * w).sum(), q)
    torch.testing.assert_close(g_got, g_ref)
    assert g_got.abs().sum() > 0
