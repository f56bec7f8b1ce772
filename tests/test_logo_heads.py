"""LOGO's switching gates and observation-read available actions: groups found from data, presence
per group, one draw per group, exact zeros for an absent group, and a head that learns a rule."""

from __future__ import annotations

import numpy as np
import torch

from logo_cli.data.transitions import Dims, Transitions
from logo_cli.models.logo_heads import ObsAvailHead, SwitchGates, beta_nll
from logo_cli.models.world_model import build_world_model, world_model_from_checkpoint, world_model_payload


def _unit_obs(rows: int, seed: int = 0) -> np.ndarray:
    """[rows, 6]: an always-present own feature (col 0, never zero), a unit block (cols 1-3: all
    zero when the unit is absent), another unit block (cols 4-5)."""
    rng = np.random.default_rng(seed)
    obs = rng.uniform(0.1, 1.0, (rows, 6)).astype(np.float32)
    obs[rng.random(rows) < 0.3, 1:4] = 0.0
    obs[rng.random(rows) < 0.5, 4:6] = 0.0
    return obs


def test_groups_presence_and_group_logits():
    gates = SwitchGates(6)
    gates.fit(torch.as_tensor(_unit_obs(2000)))
    assert gates.feature_group.tolist() == [-1, 0, 0, 0, 1, 1]
    x = torch.tensor([[0.5, 0.0, 0.0, 0.0, 0.0, 0.2], [0.0, 0.3, 0.0, 0.0, 0.0, 0.0]])
    # a group is present when any of its features is non-zero; a feature in no group always is
    assert gates.presence(x).tolist() == [[1, 0, 0, 0, 1, 1], [1, 1, 1, 1, 0, 0]]
    logits = torch.tensor([[7.0, 1.0, 2.0, 3.0, -4.0, 0.0]])
    assert gates.group_logits(logits).tolist() == [[7.0, 2.0, 2.0, 2.0, -2.0, -2.0]]
    assert gates.draw(logits, sample=False, generator=None).tolist() == [
        [True, True, True, True, False, False]
    ]


def test_sampled_switches_are_one_draw_per_group_at_the_predicted_rate():
    gates = SwitchGates(6)
    gates.fit(torch.as_tensor(_unit_obs(2000)))
    logits = torch.tensor([0.0, 0.0, 0.0, 0.0, 1.3862944, 1.3862944]).expand(20000, 6)  # p = 0.5, 0.8
    present = gates.draw(logits, sample=True, generator=torch.Generator().manual_seed(0))
    assert present[:, 0].all()  # no group: always present
    assert (present[:, 1:4] == present[:, 1:2]).all() and (present[:, 4:6] == present[:, 4:5]).all()
    assert abs(present[:, 1].float().mean() - 0.5) < 0.02 and abs(present[:, 4].float().mean() - 0.8) < 0.02


def test_masked_nll_ignores_masked_elements():
    mean, logvar = torch.zeros(2, 3), torch.zeros(2, 3)
    target = torch.tensor([[1.0, 100.0, 1.0], [1.0, 1.0, 100.0]])
    mask = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    assert beta_nll(mean, logvar, target, mask).item() == 0.5


def _switching_transitions(rows: int, seed: int) -> Transitions:
    """2 agents, obs [own x, unit block (2 features)]; the unit shows next step iff the action is 1.
    Agent i's action 2 is available next iff its own x > 0.5."""
    rng = np.random.default_rng(seed)
    n, a = 2, 3
    obs = _unit_obs(rows * n, seed)[:, :3].reshape(rows, n, 3)
    act = rng.integers(0, a, (rows, n))
    nobs = obs.copy()
    nobs[..., 0] = rng.uniform(0.1, 1.0, (rows, n))
    show = act == 1
    nobs[..., 1:3] = np.where(show[..., None], rng.uniform(0.5, 1.0, (rows, n, 2)), 0.0)
    state, nstate = obs.reshape(rows, -1), nobs.reshape(rows, -1)
    avail = np.ones((rows, n, a), bool)
    navail = np.ones((rows, n, a), bool)
    navail[..., 2] = nobs[..., 0] > 0.5
    zeros = np.zeros(rows, np.float32)
    return Transitions(
        state, obs, act, avail, zeros, zeros.astype(bool), nstate, nobs.astype(np.float32), navail
    )


def test_logo_with_switches_predicts_exact_absences_and_consistent_avail(tmp_path):
    data = _switching_transitions(3000, 0)
    dims = Dims(2, 3, 6, 3)
    torch.manual_seed(0)
    model = build_world_model(
        "logo", dims, hidden=64, latent=16, noop_action=0, switch_gates=True, avail_from="obs"
    )
    batch = data.to_torch()
    model.fit_normalizers(batch)
    assert model.gates.feature_group.tolist() == [-1, 0, 0]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(800):
        idx = torch.randint(0, len(data), (128,), generator=gen)
        loss, _ = model.loss({k: v[idx] for k, v in batch.items()})
        opt.zero_grad()
        loss.backward()
        opt.step()
    test = _switching_transitions(500, 1).to_torch()
    p = model.eval().predict(test["state"], test["obs"], test["actions"])
    shown = test["actions"] == 1
    # the unit block is exactly zero where it is predicted absent, and absence follows the action
    assert (p.next_obs[~shown][:, 1:] == 0).float().mean() > 0.97
    assert (p.next_obs[shown][:, 1:] != 0).all(-1).float().mean() > 0.97
    # available actions read from the predicted observation agree with it
    x = p.next_obs[..., 0]
    agree = p.next_avail[..., 2] == (x > 0.5)
    assert agree[(x - 0.5).abs() > 0.05].float().mean() > 0.97
    again = world_model_from_checkpoint(world_model_payload(model), "test")
    q = again.predict(test["state"], test["obs"], test["actions"])
    assert torch.equal(q.next_obs, p.next_obs) and torch.equal(q.next_avail, p.next_avail)


def test_obs_avail_head_shapes():
    head = ObsAvailHead(3, 5, 4, hidden=8, layers=1)
    assert head(torch.zeros(7, 3, 5)).shape == (7, 3, 4)


def test_beta_nll_gives_the_mean_a_squared_errors_gradient_whatever_the_variance():
    target = torch.tensor([1.0, -2.0, 0.5])
    for logvar_value in (-3.0, 0.0, 1.0):
        mean = torch.zeros(3, requires_grad=True)
        logvar = torch.full((3,), logvar_value)
        beta_nll(mean, logvar, target, beta=1.0).backward()
        torch.testing.assert_close(mean.grad, (mean.detach() - target) / 3)
    mean, logvar = torch.zeros(3), torch.tensor([0.5, -1.0, 0.2])
    plain = (0.5 * ((target - mean) ** 2 * torch.exp(-logvar) + logvar)).mean()
    torch.testing.assert_close(beta_nll(mean, logvar, target), plain)
