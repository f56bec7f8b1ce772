"""Training batches that mix real (dataset) and synthetic (world-model) transitions.

LOGO draws half of each batch from the dataset, uniformly, and half from the synthetic buffer with
probabilities proportional to exp(P_u / τ), P_u = clip(C − u, 0, C): a sample with score u ≥ C gets
weight exp(0) = 1, one with u = 0 gets exp(C / τ) (τ = 1 is the paper's formula). The other modes are
the paper's ablations:
  weight     synthetic rows ∝ exp(P_u / τ)                               (LOGO)
  penalty    synthetic rows uniform, reward r − λ·u (u the per-step uncertainty; MOPO-style)
  uniform    synthetic rows uniform, reward unchanged
  real-only  no synthetic rows (plain offline RL on the dataset)
The score u of the weight mode is, by default, the uncertainty accumulated along the row's branch up
to its step (`weight_by="cumulative"`): per-step u ranks one-step errors but hardly the errors of deep
steps, which grow with everything predicted before them. When C is not given it is the 0.9 quantile
of the score; when τ is not given it is solved for so that the weights' effective sample size
(Σw)²/Σw² is `target_ess` of the buffer. Both are fitted on each installed buffer (a refresh refits
them), and the latest values are reported.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import torch

from logo_cli.choices import SamplerMode as SamplerModeChoice
from logo_cli.choices import WeightBy as WeightByChoice
from logo_cli.choices import values
from logo_cli.data.nstep import branch_order, continuity_segments, cumulative_by_segment, nstep
from logo_cli.data.transitions import Transitions
from logo_cli.errors import LogoError

SamplerMode = Literal["weight", "penalty", "uniform", "real-only"]
SAMPLER_MODES: tuple[str, ...] = values(SamplerModeChoice)
WeightBy = Literal["cumulative", "step"]
WEIGHT_BY: tuple[str, ...] = values(WeightByChoice)
if set(get_args(SamplerMode)) != set(SAMPLER_MODES) or set(get_args(WeightBy)) != set(WEIGHT_BY):
    raise ImportError("data.sampler's mode types disagree with logo_cli.choices")  # one list each
DEFAULT_C_QUANTILE = 0.9
DEFAULT_TARGET_ESS = 0.5


def default_c(uncertainty: np.ndarray, quantile: float = DEFAULT_C_QUANTILE) -> float:
    """The default truncation constant C: a high quantile of the buffer's uncertainties."""
    return float(np.quantile(np.asarray(uncertainty, dtype=np.float64), quantile))


def priority_weights(uncertainty: np.ndarray, c: float, temperature: float = 1.0) -> np.ndarray:
    """Normalised exp(P_u / τ), P_u = clip(C − u, 0, C), in float64 (shifted by max: no overflow)."""
    p = np.clip(c - np.asarray(uncertainty, dtype=np.float64), 0.0, c) / temperature
    w = np.exp(p - p.max())
    return w / w.sum()


def effective_sample_size(probs: np.ndarray) -> float:
    """(Σw)²/Σw² of normalised weights, as a fraction of their number (1: uniform)."""
    probs = np.asarray(probs, dtype=np.float64)
    return float(1.0 / (np.square(probs).sum() * len(probs)))


def temperature_for_ess(score: np.ndarray, c: float, target: float) -> float:
    """The τ whose weights exp(clip(C − u, 0, C)/τ) have effective sample size `target` (a fraction).

    The ESS falls monotonically as τ falls (uniform at τ → ∞), so a bisection on log τ finds it. When
    even a tiny τ keeps the ESS above target (few distinct scores), the smallest τ tried is returned.
    """
    if c <= 0 or np.ptp(np.clip(c - np.asarray(score, dtype=np.float64), 0.0, c)) == 0:
        return 1.0  # all weights equal whatever τ is
    lo, hi = np.log(c) - 12.0, np.log(c) + 12.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if effective_sample_size(priority_weights(score, c, float(np.exp(mid)))) > target:
            hi = mid
        else:
            lo = mid
    return float(np.exp(0.5 * (lo + hi)))


class MixedSampler:
    """Batches of B rows: round(B·ratio) synthetic rows (0 in real-only mode), the rest real.

    Batches are dicts of torch tensors (the Transitions fields, plus `synthetic` [B] bool) on
    `device`, real rows first. With `n_step` > 1 they also carry the n-step target fields (data/nstep):
    `reward_n`, `gamma_n`, `done_n` and the bootstrap row's `boot_obs`, `boot_state`, `boot_avail`;
    real sequences are the dataset's episodes, synthetic ones the branches (`branch`, `step`).
    All randomness comes from `rng`, whose state `get_state`/`set_state` save and restore.
    """

    def __init__(
        self,
        real: Transitions,
        synthetic: Transitions | None = None,
        uncertainty: np.ndarray | None = None,
        *,
        branch: np.ndarray | None = None,
        step: np.ndarray | None = None,
        mode: SamplerMode = "weight",
        synthetic_ratio: float = 0.5,
        c: float | None = None,
        temperature: float | None = None,
        target_ess: float = DEFAULT_TARGET_ESS,
        weight_by: WeightBy = "cumulative",
        penalty_lambda: float = 1.0,
        gamma: float = 0.99,
        n_step: int = 1,
        rng: np.random.Generator,
        device: str = "cpu",
    ):
        if mode not in SAMPLER_MODES:
            raise LogoError(f"--mode {mode}: expected one of {', '.join(SAMPLER_MODES)}")
        if weight_by not in WEIGHT_BY:
            raise LogoError(f"--weight-by {weight_by}: expected one of {', '.join(WEIGHT_BY)}")
        if not 0.0 <= synthetic_ratio <= 1.0:
            raise LogoError(f"--synthetic-ratio {synthetic_ratio}: must lie in [0, 1]")
        if c is not None and not c >= 0.0:
            raise LogoError(f"C = {c}: the truncation constant must be >= 0")
        if temperature is not None and not temperature > 0.0:
            raise LogoError(f"--temperature {temperature}: must be > 0")
        if not 0.0 < target_ess <= 1.0:
            raise LogoError(f"--target-ess {target_ess}: must lie in (0, 1]")
        if n_step < 1:
            raise LogoError(f"--n-step {n_step}: must be at least 1")
        if len(real) == 0 and (mode == "real-only" or synthetic_ratio < 1.0):
            raise LogoError("real data: no transitions to sample")
        self.mode = mode
        self.ratio = 0.0 if mode == "real-only" else synthetic_ratio
        self.penalty_lambda = float(penalty_lambda)
        self.weight_by = weight_by
        self.target_ess = float(target_ess)
        self.gamma, self.n_step = float(gamma), int(n_step)
        self.rng = rng
        self.device = device
        self.dims = real.dims
        self._real = self._tensors(real, continuity_segments(real), np.arange(len(real)))
        self._n_real = len(real)
        self._c_given = None if c is None else float(c)
        self._t_given = None if temperature is None else float(temperature)
        self._c: float | None = None
        self._temperature: float | None = None
        self._syn: dict[str, torch.Tensor] | None = None
        self._cdf: np.ndarray | None = None
        self._probs: np.ndarray | None = None
        self._n_syn = 0
        if mode != "real-only":
            if synthetic is None or uncertainty is None:
                raise LogoError(f"--mode {mode}: needs synthetic data (--synthetic or --model)")
            self.set_synthetic(synthetic, uncertainty, branch, step)

    @property
    def c(self) -> float | None:
        """The truncation constant in use (None before any synthetic data, or in real-only mode)."""
        return self._c

    @property
    def temperature(self) -> float | None:
        """The weights' temperature τ in use (weight mode only)."""
        return self._temperature

    def _tensors(self, t: Transitions, segment: np.ndarray, order: np.ndarray) -> dict[str, torch.Tensor]:
        out = t.to_torch(self.device)
        if self.n_step > 1:
            ns = nstep(t.reward, t.terminated, segment, order, self.gamma, self.n_step)
            out["reward_n"] = torch.as_tensor(ns.reward, device=self.device)
            out["gamma_n"] = torch.as_tensor(ns.discount, device=self.device)
            out["done_n"] = torch.as_tensor(ns.done, device=self.device)
            out["boot"] = torch.as_tensor(ns.boot, device=self.device)
        return out

    def set_synthetic(
        self,
        synthetic: Transitions,
        uncertainty: np.ndarray,
        branch: np.ndarray | None = None,
        step: np.ndarray | None = None,
    ) -> None:
        """Install (or replace, on a rollout refresh) the synthetic buffer and fit its weights.

        `branch`/`step` give the branch structure (for n-step targets and the cumulative score);
        without them every row is a branch of its own.
        """
        if self.mode == "real-only":
            return
        uncertainty = np.asarray(uncertainty, dtype=np.float64).reshape(-1)
        self.dims.check_same(synthetic.dims, "synthetic data vs dataset")
        n = len(synthetic)
        if n == 0:
            raise LogoError("synthetic data: no transitions to sample")
        if uncertainty.shape[0] != n:
            raise LogoError(f"synthetic data: {uncertainty.shape[0]} uncertainties for {n} rows")
        if not np.isfinite(uncertainty).all():
            raise LogoError("synthetic data: uncertainty contains NaN or infinite values")
        if (branch is None) != (step is None) or (branch is not None and len(branch) != n):
            raise LogoError("synthetic data: branch and step must both be given, one per row")
        if branch is None:
            branch, step = np.arange(n), np.zeros(n, np.int64)
        order = branch_order(branch, step)
        if self.mode == "penalty":
            synthetic = synthetic.with_reward(synthetic.reward - self.penalty_lambda * uncertainty)
        self._syn = self._tensors(synthetic, np.asarray(branch), order)
        self._n_syn = n
        self._syn_branch, self._syn_step = np.asarray(branch), np.asarray(step)
        if self.mode == "weight":
            score = (
                uncertainty if self.weight_by == "step" else cumulative_by_segment(uncertainty, branch, order)
            )
            self._c = self._c_given if self._c_given is not None else default_c(score)
            if self._t_given is not None:
                self._temperature = self._t_given
            else:
                self._temperature = temperature_for_ess(score, self._c, self.target_ess)
            self._probs = priority_weights(score, self._c, self._temperature)
            self._cdf = np.cumsum(self._probs)
        else:
            self._c = self._c_given if self._c_given is not None else default_c(uncertainty)
            self._probs = np.full(n, 1.0 / n)
            self._cdf = None

    def synthetic_view(self) -> tuple[dict[str, torch.Tensor], np.ndarray, np.ndarray, np.ndarray] | None:
        """The installed synthetic rows as the sampler uses them (tensors, penalised reward in penalty
        mode), their sampling probabilities, branch ids and steps; None in real-only mode. For
        learners that sample whole branches (algos/recurrent.py)."""
        if self._syn is None or self._probs is None:
            return None
        return self._syn, self._probs, self._syn_branch, self._syn_step

    def weights(self) -> np.ndarray:
        """Sampling probability of each synthetic row (sums to 1); empty in real-only mode."""
        return np.zeros(0) if self._probs is None else self._probs.copy()

    def ess(self) -> float | None:
        """Effective sample size of the synthetic weights as a fraction of the buffer (1: uniform)."""
        return None if self._probs is None else effective_sample_size(self._probs)

    def counts(self, batch_size: int) -> tuple[int, int]:
        """(real rows, synthetic rows) in a batch of `batch_size`."""
        n_syn = int(np.floor(batch_size * self.ratio + 0.5))
        return batch_size - n_syn, n_syn

    def sample_indices(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        n_real, n_syn = self.counts(batch_size)
        real_idx = self.rng.integers(0, self._n_real, size=n_real)
        if n_syn == 0:
            return real_idx, np.zeros(0, dtype=np.int64)
        if self._cdf is not None:  # inverse-CDF draw: O(log n) per row, even for large buffers
            u = self.rng.random(n_syn) * self._cdf[-1]
            syn_idx = np.minimum(np.searchsorted(self._cdf, u, side="right"), self._n_syn - 1)
        else:
            syn_idx = self.rng.integers(0, self._n_syn, size=n_syn)
        return real_idx, syn_idx

    @staticmethod
    def _rows(src: dict[str, torch.Tensor], idx: torch.Tensor) -> dict[str, torch.Tensor]:
        # index_select rather than v[idx]: the same rows, copied about twice as fast on CPU for
        # large observations (27m_vs_30m: 27 x 738 numbers per row)
        rows = {k: v.index_select(0, idx) for k, v in src.items() if k != "boot"}
        if "boot" in src:  # the bootstrap row's next fields, looked up instead of stored per row
            b = src["boot"].index_select(0, idx)
            rows["boot_obs"] = src["next_obs"].index_select(0, b)
            rows["boot_state"] = src["next_state"].index_select(0, b)
            rows["boot_avail"] = src["next_avail_actions"].index_select(0, b)
        return rows

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        real_idx, syn_idx = self.sample_indices(batch_size)
        ri = torch.as_tensor(real_idx, device=self.device)
        real = self._rows(self._real, ri)
        if len(syn_idx) == 0:
            real["synthetic"] = torch.zeros(len(real_idx), dtype=torch.bool, device=self.device)
            return real
        assert self._syn is not None
        syn = self._rows(self._syn, torch.as_tensor(syn_idx, device=self.device))
        batch = {k: torch.cat([real[k], syn[k]]) for k in real}
        batch["synthetic"] = torch.cat(
            [torch.zeros(len(real_idx), dtype=torch.bool), torch.ones(len(syn_idx), dtype=torch.bool)]
        ).to(self.device)
        return batch

    def get_state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state
