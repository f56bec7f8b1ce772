"""The real/synthetic sampler: exp(P_u) weights with truncation, ratios, penalty rewards, RNG state."""

from __future__ import annotations

import math

import numpy as np
import pytest

from logo_cli.data.sampler import MixedSampler, default_c, priority_weights
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
    s = MixedSampler(real, syn, u, mode="weight", synthetic_ratio=0.5, c=2.0, rng=np.random.default_rng(0))
    assert s.c == 2.0
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


def test_default_c_is_kept_on_refresh_and_state_restores():
    real, syn = make(30, 0.0), make(100, 1.0)
    u = np.linspace(0.0, 1.0, 100)
    s = MixedSampler(real, syn, u, rng=np.random.default_rng(3))
    assert s.c == pytest.approx(np.quantile(u, 0.9))
    s.set_synthetic(make(10, 1.0), np.full(10, 7.0))
    assert s.c == pytest.approx(np.quantile(u, 0.9))
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
