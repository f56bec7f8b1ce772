"""Calibration's one-step and open-loop multi-step evaluation on models with known errors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from logo_cli.data.layout import EpisodeArrays
from logo_cli.data.transitions import episodes_to_transitions
from logo_cli.stages.calibrate import episode_starts, multi_step, one_step

N, OBS, S, A = 2, 3, 4, 3
STD = np.array([1.0, 2.0, 4.0, 0.5])


@dataclass
class Pred:
    next_state: torch.Tensor
    next_obs: torch.Tensor
    reward: torch.Tensor
    terminated_prob: torch.Tensor
    next_avail: torch.Tensor
    uncertainty: torch.Tensor


class Norm:
    def __init__(self, std):
        self.std = torch.as_tensor(std, dtype=torch.float32)


class KnownDynamics:
    """True dynamics s' = s + sum(actions) (every state dim), plus a fixed `bias` per step.

    Its uncertainty is |s[0]| + 1, which the test makes proportional to the error by construction.
    """

    def __init__(self, bias: float = 0.0, unc_scale: float = 0.0):
        self.bias = bias
        self.unc_scale = unc_scale
        self.norm_state = Norm(STD)
        self.norm_obs = Norm(np.ones(OBS))

    def predict(self, state, obs, actions, *, sample=False, generator=None):
        step = actions.sum(-1, keepdim=True).float()
        nstate = state + step + self.bias
        b = state.shape[0]
        return Pred(
            next_state=nstate,
            next_obs=obs + step[:, :, None] * 0,
            reward=torch.zeros(b),
            terminated_prob=torch.zeros(b),
            next_avail=torch.ones(b, N, A, dtype=torch.bool),
            uncertainty=torch.full((b,), self.bias * self.unc_scale),
        )


def make_episodes(lengths: list[int], limit: int = 10, seed: int = 0) -> EpisodeArrays:
    """Episodes obeying s_{t+1} = s_t + sum(a_t) exactly."""
    rng = np.random.default_rng(seed)
    E, L = len(lengths), limit + 1
    state = np.zeros((E, L, S), np.float32)
    obs = np.zeros((E, L, N, OBS), np.float32)
    actions = np.zeros((E, L, N, 1), np.int64)
    filled = np.zeros((E, L, 1), np.int64)
    for e, n in enumerate(lengths):
        state[e, 0] = rng.normal(size=S)
        actions[e, :n, :, 0] = rng.integers(0, A, size=(n, N))
        for t in range(n):
            state[e, t + 1] = state[e, t] + actions[e, t].sum()
        filled[e, : n + 1] = 1
    return EpisodeArrays(
        state=state,
        obs=obs,
        actions=actions,
        avail_actions=np.ones((E, L, N, A), np.int32) * filled[..., None],
        probs=None,
        reward=np.zeros((E, L, 1), np.float32),
        terminated=np.zeros((E, L, 1), np.uint8),
        filled=filled,
    )


def _transitions(ep: EpisodeArrays):
    return episodes_to_transitions(
        ep.state, ep.obs, ep.actions, ep.avail_actions, ep.reward, ep.terminated, ep.filled
    )


def test_a_perfect_model_has_zero_error_at_every_depth():
    ep = make_episodes([5, 9, 2])
    starts = episode_starts(np.array([5, 9, 2]), 1000, np.random.default_rng(0))
    rows = multi_step(KnownDynamics(), ep, starts, horizon=6, batch_size=4, device="cpu")
    assert [r["horizon"] for r in rows] == list(range(1, 7))
    # starts with t + k inside the episode: lengths 5, 9, 2 -> for k: sum(max(0, n - k + 1))... n-k+1 starts
    assert [r["n"] for r in rows] == [sum(max(0, n - k + 1) for n in (5, 9, 2)) for k in range(1, 7)]
    assert all(r["error_mean"] == pytest.approx(0.0, abs=1e-6) for r in rows)
    # the no-change baseline, by brute force over the same starts
    e, t = starts
    for r in rows:
        k = r["horizon"]
        ok = t + k <= np.array([5, 9, 2])[e]
        d = (ep.state[e[ok], t[ok] + k] - ep.state[e[ok], t[ok]]) / STD
        assert r["no_change_error_mean"] == pytest.approx(np.sqrt((d**2).mean(-1)).mean(), rel=1e-5)


def test_a_biased_model_accumulates_its_bias_open_loop_in_state_std_units():
    bias = 0.3
    ep = make_episodes([12, 10, 11], limit=12)
    starts = episode_starts(np.array([12, 10, 11]), 1000, np.random.default_rng(0))
    pooled: dict = {}
    rows = multi_step(KnownDynamics(bias), ep, starts, horizon=8, batch_size=7, device="cpu", pooled=pooled)
    rms_inv_std = np.sqrt(np.mean(1.0 / STD**2))
    for r in rows:  # after k steps every state dim is off by k * bias
        assert r["error_mean"] == pytest.approx(r["horizon"] * bias * rms_inv_std, rel=1e-5)
        assert r["error_median"] == pytest.approx(r["error_mean"], rel=1e-5)
    # Pooled over depths the error is a function of depth alone, so depth ranks it perfectly.
    assert pooled["depth"] > 0.98
    assert set(pooled) == {"step", "cumulative", "depth"}


def test_one_step_error_and_summary():
    ep = make_episodes([6, 7])
    tr = _transitions(ep)
    res = one_step(KnownDynamics(0.5, unc_scale=2.0), tr, batch_size=3, device="cpu")
    expected = 0.5 * np.sqrt(np.mean(1.0 / STD**2))
    np.testing.assert_allclose(res["error"], expected, rtol=1e-5)
    s = res["summary"]
    assert s["n"] == 13 and s["error_mean"] == pytest.approx(expected, rel=1e-5)
    assert s["uncertainty_mean"] == pytest.approx(1.0)
    assert s["spearman"] is None  # constant uncertainty and error: no ranking to measure
    assert s["reward_rmse"] == 0.0 and s["termination_accuracy"] == 1.0
    assert sum(b["count"] for b in s["by_uncertainty_decile"]) == 13


def test_episode_starts_cover_every_step_or_a_seeded_subset():
    e, t = episode_starts(np.array([3, 0, 2]), 100, np.random.default_rng(0))
    assert list(zip(e.tolist(), t.tolist(), strict=True)) == [(0, 0), (0, 1), (0, 2), (2, 0), (2, 1)]
    e1, t1 = episode_starts(np.array([50, 50]), 10, np.random.default_rng(3))
    e2, t2 = episode_starts(np.array([50, 50]), 10, np.random.default_rng(3))
    assert len(e1) == 10 and (e1 == e2).all() and (t1 == t2).all()
    assert (t1 < 50).all()


def test_bootstrap_interval_of_the_mean():
    from logo_cli.stages.calibrate import bootstrap_mean_ci

    rng = np.random.default_rng(1)
    few, many = rng.normal(2.0, 1.0, 9), rng.normal(2.0, 1.0, 4000)
    lo9, hi9 = bootstrap_mean_ci(few)
    lo, hi = bootstrap_mean_ci(many)
    assert lo9 < few.mean() < hi9 and lo < many.mean() < hi
    # about ±1.96 sd/√n: wide with 9 states, narrow with 4000
    assert (hi9 - lo9) == pytest.approx(2 * 1.96 * few.std() / 3, rel=0.3)
    assert (hi - lo) == pytest.approx(2 * 1.96 * many.std() / np.sqrt(4000), rel=0.2)
    assert bootstrap_mean_ci(np.full(5, 0.7)) == pytest.approx([0.7, 0.7])
    assert bootstrap_mean_ci(few) == bootstrap_mean_ci(few)  # seeded


def test_multi_step_rows_carry_the_interval_of_their_mean():
    ep = make_episodes([12, 10, 11], limit=12)
    starts = episode_starts(np.array([12, 10, 11]), 1000, np.random.default_rng(0))
    rng = np.random.default_rng(0)

    class Noisy(KnownDynamics):
        def predict(self, state, obs, actions, **kw):
            p = super().predict(state, obs, actions, **kw)
            p.next_state = p.next_state + torch.as_tensor(
                rng.normal(0, 0.5, p.next_state.shape), dtype=torch.float32
            )
            return p

    rows = multi_step(Noisy(), ep, starts, horizon=12, batch_size=8, device="cpu")
    for r in rows:
        if r["n"]:
            lo, hi = r["error_mean_ci95"]
            assert lo <= r["error_mean"] <= hi
        else:
            assert r["error_mean_ci95"] is None
    deep = next(r for r in rows if 3 <= r["n"] < 10)
    shallow = rows[0]
    width = lambda r: r["error_mean_ci95"][1] - r["error_mean_ci95"][0]  # noqa: E731
    assert shallow["n"] > 10 and width(deep) > width(shallow)  # fewer states, wider band


def _model(label, steps, scale):
    rows = [{"horizon": k, "n": 50 - 3 * k, "error_mean": scale * k,
             "error_mean_ci95": [scale * k - 0.1, scale * k + 0.1], "error_median": scale * k,
             "uncertainty_mean": float(k), "no_change_error_mean": 1.0}
            for k in range(1, 16)]  # fmt: skip
    return {"label": label, "train_steps": steps, "multi_step": rows}


def test_horizon_figure_shares_depths_shows_bands_and_budgets():
    from matplotlib.collections import PolyCollection

    from logo_cli.stages.calibrate_plots import _pyplot, horizon_figure

    fig = horizon_figure([_model("global", 20, 0.2), _model("logo", 100, 0.1)])
    try:
        ax_e, ax_u = fig.axes[:2]
        assert ax_e.get_xlim() == ax_u.get_xlim() == (0.5, 15.5)
        bands = [c for c in ax_e.collections if isinstance(c, PolyCollection)]
        assert len(bands) == 2  # one 95% band per model
        labels = [t.get_text() for t in ax_e.get_legend().get_texts()]
        assert "global (20 steps) mean" in labels and "logo (100 steps) mean" in labels
        assert "logo (100 steps) mean, 95% CI" in labels
        assert any(t.get_text().startswith("global (20 steps)") for t in ax_u.get_legend().get_texts())
    finally:
        _pyplot().close(fig)
