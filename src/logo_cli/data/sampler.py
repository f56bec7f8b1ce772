"""Training batches that mix real (dataset) and synthetic (world-model) transitions.

LOGO draws half of each batch from the dataset, uniformly, and half from the synthetic buffer with
probabilities proportional to exp(P_u), P_u = clip(C − u, 0, C): a sample with uncertainty u ≥ C gets
weight exp(0) = 1, one with u = 0 gets exp(C). The other modes are the paper's ablations:
  weight     synthetic rows ∝ exp(P_u)                                   (LOGO)
  penalty    synthetic rows uniform, reward r − λ·u                      (MOPO-style)
  uniform    synthetic rows uniform, reward unchanged
  real-only  no synthetic rows (plain offline RL on the dataset)
When C is not given it is the 0.9 quantile of u on the first synthetic buffer (so about the 10% most
uncertain samples share the floor weight exp(0)), and it stays fixed when the buffer is refreshed,
so one C is recorded per run.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import torch

from logo_cli.data.transitions import Transitions
from logo_cli.errors import LogoError

SamplerMode = Literal["weight", "penalty", "uniform", "real-only"]
SAMPLER_MODES: tuple[str, ...] = get_args(SamplerMode)
DEFAULT_C_QUANTILE = 0.9


def default_c(uncertainty: np.ndarray, quantile: float = DEFAULT_C_QUANTILE) -> float:
    """The default truncation constant C: a high quantile of the buffer's uncertainties."""
    return float(np.quantile(np.asarray(uncertainty, dtype=np.float64), quantile))


def priority_weights(uncertainty: np.ndarray, c: float) -> np.ndarray:
    """Normalised exp(P_u), P_u = clip(C − u, 0, C), in float64 (shifted by max P_u: no overflow)."""
    p = np.clip(c - np.asarray(uncertainty, dtype=np.float64), 0.0, c)
    w = np.exp(p - p.max())
    return w / w.sum()


class MixedSampler:
    """Batches of B rows: round(B·ratio) synthetic rows (0 in real-only mode), the rest real.

    Batches are dicts of torch tensors (the Transitions fields) on `device`, real rows first.
    All randomness comes from `rng`, whose state `get_state`/`set_state` save and restore.
    """

    def __init__(
        self,
        real: Transitions,
        synthetic: Transitions | None = None,
        uncertainty: np.ndarray | None = None,
        *,
        mode: SamplerMode = "weight",
        synthetic_ratio: float = 0.5,
        c: float | None = None,
        penalty_lambda: float = 1.0,
        rng: np.random.Generator,
        device: str = "cpu",
    ):
        if mode not in SAMPLER_MODES:
            raise LogoError(f"--mode {mode}: expected one of {', '.join(SAMPLER_MODES)}")
        if not 0.0 <= synthetic_ratio <= 1.0:
            raise LogoError(f"--synthetic-ratio {synthetic_ratio}: must lie in [0, 1]")
        if c is not None and not c >= 0.0:
            raise LogoError(f"C = {c}: the truncation constant must be >= 0")
        if len(real) == 0 and (mode == "real-only" or synthetic_ratio < 1.0):
            raise LogoError("real data: no transitions to sample")
        self.mode = mode
        self.ratio = 0.0 if mode == "real-only" else synthetic_ratio
        self.penalty_lambda = float(penalty_lambda)
        self.rng = rng
        self.device = device
        self.dims = real.dims
        self._real = real.to_torch(device)
        self._n_real = len(real)
        self._c = None if c is None else float(c)
        self._syn: dict[str, torch.Tensor] | None = None
        self._cdf: np.ndarray | None = None
        self._probs: np.ndarray | None = None
        self._n_syn = 0
        if mode != "real-only":
            if synthetic is None or uncertainty is None:
                raise LogoError(f"--mode {mode}: needs synthetic data (--synthetic or --model)")
            self.set_synthetic(synthetic, uncertainty)

    @property
    def c(self) -> float | None:
        """The truncation constant in use (None before any synthetic data, or in real-only mode)."""
        return self._c

    def set_synthetic(self, synthetic: Transitions, uncertainty: np.ndarray) -> None:
        """Install (or replace, on a rollout refresh) the synthetic buffer; C stays fixed once set."""
        if self.mode == "real-only":
            return
        uncertainty = np.asarray(uncertainty, dtype=np.float64).reshape(-1)
        self.dims.check_same(synthetic.dims, "synthetic data vs dataset")
        if len(synthetic) == 0:
            raise LogoError("synthetic data: no transitions to sample")
        if uncertainty.shape[0] != len(synthetic):
            raise LogoError(f"synthetic data: {uncertainty.shape[0]} uncertainties for {len(synthetic)} rows")
        if not np.isfinite(uncertainty).all():
            raise LogoError("synthetic data: uncertainty contains NaN or infinite values")
        if self._c is None:
            self._c = default_c(uncertainty)
        self._syn = synthetic.to_torch(self.device)
        if self.mode == "penalty":
            pen = torch.as_tensor(self.penalty_lambda * uncertainty, dtype=torch.float32, device=self.device)
            self._syn["reward"] = self._syn["reward"] - pen
        self._n_syn = len(synthetic)
        if self.mode == "weight":
            self._probs = priority_weights(uncertainty, self._c)
            self._cdf = np.cumsum(self._probs)
        else:
            self._probs = np.full(self._n_syn, 1.0 / self._n_syn)
            self._cdf = None

    def weights(self) -> np.ndarray:
        """Sampling probability of each synthetic row (sums to 1); empty in real-only mode."""
        return np.zeros(0) if self._probs is None else self._probs.copy()

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

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        real_idx, syn_idx = self.sample_indices(batch_size)
        ri = torch.as_tensor(real_idx, device=self.device)
        if len(syn_idx) == 0:
            return {k: v[ri] for k, v in self._real.items()}
        assert self._syn is not None
        si = torch.as_tensor(syn_idx, device=self.device)
        return {k: torch.cat([self._real[k][ri], self._syn[k][si]]) for k in self._real}

    def get_state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state
