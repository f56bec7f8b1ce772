"""The real/synthetic sampler: exp(P_u) weights with truncation, ratios, penalty rewards, RNG state."""

from __future__ import annotations

import math

import numpy as np
import pytest

from logo_cli.data.sampler import (
    MixedSampler,
    default_c,
    effective_sample_size,
    priority_weights,
    temperature_for_ess,
)
from logo_cli.data.transitions import Transitions
from logo_cli.errors import LogoError


def make(n: int, tag: float, n_agents: int = 2, obs_dim: int = 3, state_dim: int = 4, n_actions: int = 5):
    """Transitions whose state[:, 0] says where a row came from and state[:, 1] which row it is."""
    state = np.zeros((n, state_dim), np.float32)
    state[:, 0] = tag
    state[:, 1] = np.arange(n)
    avail = np.ones((n, n_agents, n_actions), bool)
    return Transitions(
        state=state,
        obs=np.zeros((n, n_agents, obs_dim), np.float32),
        actions=np.zeros((n, n_agents), np.int64),
        avail_actions=avail,
        reward=np.full(n, 1.0, np.float32),
        terminated=np.zeros(n, bool),
        next_state=state,
        next_obs=np.zeros((n, n_agents, obs_dim), np.float32),
        next_avail_actions=avail,
    )


def test_priority_weights_follow_truncated_exp():
    u = np.array([0.0, 0.5, 1.0, 2.0, 30.0])
    w = priority_weights(u, c=1.0)
    expected = np.array([math.e, math.exp(0.5), 1.0, 1.0, 1.0])
    np.testing.assert_allclose(w, expected / expected.sum(), rtol=1e-12)
    assert np.isfinite(priority_weights(np.zeros(3), c=5000.0)).all()  # no overflow for a large C
    assert default_c(np.arange(101.0)) == pytest.approx(90.0)


def test_weight_mode_frequencies_and_ratio():
    real, syn = make(50, 0.0), make(6, 1.0)
    u = np.array([0.0, 0.2, 0.6, 1.2, 2.0, 5.0])
    s = MixedSampler(
        real, syn, u, mode="weight", synthetic_ratio=0.5, c=2.0, temperature=1.0, weight_by="step",
        rng=np.random.default_rng(0),
    )  # fmt: skip
    assert s.c == 2.0 and s.temperature == 1.0
    w = s.weights()
    expected = np.exp(np.clip(2.0 - u, 0, 2.0))
    np.testing.assert_allclose(w, expected / expected.sum())
    for _ in range(20):
        batch = s.sample(64)
        from_syn = batch["state"][:, 0].numpy() == 1.0
        assert from_syn.sum() == 32 and not from_syn[:32].any()  # real rows first, exactly half
    _, syn_idx = s.sample_indices(400_000)
    assert len(syn_idx) == 200_000
    freq = np.bincount(syn_idx, minlength=6) / len(syn_idx)
    np.testing.assert_allclose(freq, w, atol=0.004)  # ~4 standard errors
    # Truncation: the two most uncertain rows share the floor weight exp(0).
    assert abs(freq[4] - freq[5]) < 0.01


def test_counts_round_and_real_only():
    real, syn = make(10, 0.0), make(10, 1.0)
    u = np.zeros(10)
    s = MixedSampler(real, syn, u, mode="uniform", synthetic_ratio=0.3, rng=np.random.default_rng(0))
    assert s.counts(256) == (179, 77)  # round(76.8) = 77
    batch = s.sample(256)
    assert int((batch["state"][:, 0] == 1.0).sum()) == 77
    ro = MixedSampler(real, None, None, mode="real-only", rng=np.random.default_rng(0))
    assert ro.counts(256) == (256, 0) and ro.c is None and ro.weights().size == 0
    assert (ro.sample(32)["state"][:, 0] == 0.0).all()


def test_penalty_mode_rewards_and_uniform_draws():
    real, syn = make(20, 0.0), make(4, 1.0)
    u = np.array([0.0, 1.0, 2.0, 3.0])
    s = MixedSampler(real, syn, u, mode="penalty", penalty_lambda=0.5, rng=np.random.default_rng(1))
    np.testing.assert_allclose(s.weights(), np.full(4, 0.25))
    hits = np.zeros(4)
    for _ in range(300):
        batch = s.sample(40)
        st, r = batch["state"].numpy(), batch["reward"].numpy()
        syn_rows = st[:, 0] == 1.0
        np.testing.assert_allclose(r[~syn_rows], 1.0)
        idx = st[syn_rows, 1].astype(int)
        np.testing.assert_allclose(r[syn_rows], 1.0 - 0.5 * u[idx], rtol=1e-6)
        hits += np.bincount(idx, minlength=4)
    np.testing.assert_allclose(hits / hits.sum(), 0.25, atol=0.015)


def test_default_c_and_temperature_refit_on_refresh_and_state_restores():
    real, syn = make(30, 0.0), make(100, 1.0)
    u = np.linspace(0.0, 1.0, 100)
    s = MixedSampler(real, syn, u, weight_by="step", rng=np.random.default_rng(3))
    assert s.c == pytest.approx(np.quantile(u, 0.9))
    assert s.ess() == pytest.approx(0.5, abs=1e-3)  # the default target effective sample size
    s.set_synthetic(make(10, 1.0), np.full(10, 7.0))  # equal scores: C refits, weights are uniform
    assert s.c == pytest.approx(7.0) and s.ess() == pytest.approx(1.0)
    state = s.get_state()
    a = s.sample(16)
    s.set_state(state)
    b = s.sample(16)
    for k in a:
        assert (a[k] == b[k]).all()


def test_bad_inputs_are_refused():
    real = make(5, 0.0)
    with pytest.raises(LogoError, match="needs synthetic data"):
        MixedSampler(real, None, None, mode="weight", rng=np.random.default_rng(0))
    with pytest.raises(LogoError, match="dims do not match"):
        MixedSampler(real, make(5, 1.0, obs_dim=7), np.zeros(5), rng=np.random.default_rng(0))
    with pytest.raises(LogoError, match="uncertainties"):
        MixedSampler(real, make(5, 1.0), np.zeros(4), rng=np.random.default_rng(0))
    with pytest.raises(LogoError, match="synthetic-ratio"):
        MixedSampler(real, make(5, 1.0), np.zeros(5), synthetic_ratio=1.5, rng=np.random.default_rng(0))
    with pytest.raises(LogoError, match="--mode"):
        MixedSampler(real, None, None, mode="bogus", rng=np.random.default_rng(0))  # type: ignore[arg-type]


def test_temperature_reaches_the_target_ess_and_sharpens_with_it():
    u = np.random.default_rng(0).gamma(2.0, 0.05, size=5000)  # small u, like LOGO's: exp(P_u) ~ uniform
    c = default_c(u)
    assert effective_sample_size(priority_weights(u, c, 1.0)) > 0.99  # the paper's τ = 1 barely weights
    for target in (0.2, 0.5, 0.8):
        tau = temperature_for_ess(u, c, target)
        assert effective_sample_size(priority_weights(u, c, tau)) == pytest.approx(target, abs=1e-3)
    assert temperature_for_ess(u, c, 0.2) < temperature_for_ess(u, c, 0.8)
    assert temperature_for_ess(np.ones(10), 1.0, 0.5) == 1.0  # nothing to weight: any τ is the same


def test_cumulative_score_ranks_deep_steps_of_uncertain_branches_lower():
    real = make(10, 0.0)
    syn = make(6, 1.0)
    # Two branches of three steps, rows interleaved as a rollout writes them.
    branch = np.array([0, 1, 0, 1, 0, 1])
    step = np.array([0, 0, 1, 1, 2, 2])
    u = np.array([0.1, 0.5, 0.1, 0.1, 0.1, 0.1])  # branch 1 started badly, then per-step u is equal
    s = MixedSampler(
        real, syn, u, branch=branch, step=step, c=1.0, temperature=1.0, rng=np.random.default_rng(0)
    )
    cum = np.array([0.1, 0.5, 0.2, 0.6, 0.3, 0.7])
    expected = np.exp(np.clip(1.0 - cum, 0, 1.0))
    np.testing.assert_allclose(s.weights(), expected / expected.sum())
    by_step = MixedSampler(
        real, syn, u, weight_by="step", c=1.0, temperature=1.0, rng=np.random.default_rng(0)
    )
    assert by_step.weights()[3] == pytest.approx(by_step.weights()[4])  # per-step u cannot tell them apart


def test_n_step_fields_follow_episodes_and_branches():
    # Real data: two episodes, 3 and 2 rows, chained through state/next_state like h5 transitions.
    real = make(5, 0.0)
    real.state[:, 1] = [0, 1, 2, 10, 11]
    real.next_state = real.state.copy()  # make() shares one array between the two
    real.next_state[:, 1] = [1, 2, 3, 11, 12]
    real.reward[:] = [1.0, 2.0, 3.0, 4.0, 5.0]
    real.terminated[:] = [False, False, True, False, False]
    s = MixedSampler(real, mode="real-only", gamma=0.5, n_step=2, rng=np.random.default_rng(0))
    b = s.sample(200)
    row = b["state"][:, 1].numpy().astype(int)
    reward_n = {0: 1 + 0.5 * 2, 1: 2 + 0.5 * 3, 2: 3.0, 10: 4 + 0.5 * 5, 11: 5.0}
    gamma_n = {0: 0.25, 1: 0.25, 2: 0.5, 10: 0.25, 11: 0.5}
    done_n = {0: False, 1: True, 2: True, 10: False, 11: False}
    boot = {0: 2, 1: 3, 2: 3, 10: 12, 11: 12}  # the bootstrap row's next state
    for i, r in enumerate(row):
        assert float(b["reward_n"][i]) == pytest.approx(reward_n[r])
        assert float(b["gamma_n"][i]) == pytest.approx(gamma_n[r])
        assert bool(b["done_n"][i]) == done_n[r]
        assert int(b["boot_state"][i, 1]) == boot[r]
    assert not b["synthetic"].any()


def test_penalty_rewards_enter_the_n_step_sum():
    real, syn = make(4, 0.0), make(2, 1.0)
    u = np.array([1.0, 2.0])
    s = MixedSampler(
        real, syn, u, branch=np.array([7, 7]), step=np.array([0, 1]), mode="penalty", synthetic_ratio=1.0,
        gamma=0.5, n_step=3, rng=np.random.default_rng(0),
    )  # fmt: skip
    b = s.sample(50)
    first = b["state"][:, 1] == 0
    assert b["synthetic"].all()
    np.testing.assert_allclose(b["reward_n"][first].numpy(), (1 - 1.0) + 0.5 * (1 - 2.0))
    np.testing.assert_allclose(b["gamma_n"][first].numpy(), 0.25)
