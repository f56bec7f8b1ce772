"""Pure metric functions for world-model calibration and buffer summaries (numpy in, floats out).

No I/O, no torch: calibrate, inspect and the benchmark share them, and tests check them on
constructed cases. Undefined values (a correlation of a constant, an AUROC with one class) come back
as None, so they serialise to JSON null instead of NaN.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def _finite_or_none(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def state_rms_error(pred: np.ndarray, true: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Per row: RMS over state dims of (pred - true) / std -> [B]. std: the model's state scale."""
    z = (np.asarray(pred, np.float64) - np.asarray(true, np.float64)) / np.asarray(std, np.float64)
    return np.sqrt(np.mean(z**2, axis=-1))


def correlations(uncertainty: np.ndarray, error: np.ndarray) -> dict[str, float | None]:
    """Spearman (rank) and Pearson (linear) correlation of uncertainty with the true error."""
    u, e = np.asarray(uncertainty, np.float64), np.asarray(error, np.float64)
    if len(u) < 3 or np.ptp(u) == 0 or np.ptp(e) == 0:
        return {"spearman": None, "pearson": None}
    return {
        "spearman": _finite_or_none(stats.spearmanr(u, e).statistic),
        "pearson": _finite_or_none(stats.pearsonr(u, e).statistic),
    }


def rank_auroc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Area under the ROC curve of `scores` for boolean `labels`, from ranks (Mann-Whitney U).

    Ties between a positive and a negative count one half, which average ranks give exactly.
    None when either class is empty.
    """
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels, bool)
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = stats.rankdata(scores)  # average ranks, 1-based
    u = ranks[labels].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def worst_fraction_labels(error: np.ndarray, fraction: float = 0.1) -> np.ndarray:
    """Boolean mask of the ceil(fraction * n) largest errors (ties broken by position, stable)."""
    error = np.asarray(error)
    k = max(1, math.ceil(fraction * len(error)))
    order = np.argsort(-error, kind="stable")
    labels = np.zeros(len(error), bool)
    labels[order[:k]] = True
    return labels


def flag_worst_auroc(uncertainty: np.ndarray, error: np.ndarray, fraction: float = 0.1) -> float | None:
    """How well uncertainty flags the worst `fraction` of errors: 1 perfect, 0.5 chance, 0 reversed."""
    if len(error) < 2:
        return None
    return rank_auroc(uncertainty, worst_fraction_labels(error, fraction))


def binned_by_uncertainty(uncertainty: np.ndarray, error: np.ndarray, n_bins: int = 10) -> list[dict]:
    """Error by uncertainty bin: rows sorted by uncertainty, split into `n_bins` equal-count bins.

    Equal counts (not equal widths) keep every bin populated however skewed the uncertainty is.
    """
    u, e = np.asarray(uncertainty, np.float64), np.asarray(error, np.float64)
    order = np.argsort(u, kind="stable")
    out = []
    for i, idx in enumerate(np.array_split(order, min(n_bins, len(u)))):
        out.append(
            {
                "bin": i,
                "count": len(idx),
                "uncertainty_lo": float(u[idx].min()),
                "uncertainty_hi": float(u[idx].max()),
                "uncertainty_mean": float(u[idx].mean()),
                "error_mean": float(e[idx].mean()),
                "error_median": float(np.median(e[idx])),
            }
        )
    return out


def quantiles(x: np.ndarray, qs: tuple[float, ...] = QUANTILES) -> dict[str, float | None]:
    """{"p5": ..., "p50": ...}; None for an empty array."""
    x = np.asarray(x, np.float64)
    keys = [f"p{round(q * 100)}" for q in qs]
    if x.size == 0:
        return dict.fromkeys(keys)
    return {k: float(v) for k, v in zip(keys, np.quantile(x, qs), strict=True)}


def summary(x: np.ndarray) -> dict[str, float | int | None]:
    """count, mean, sd, min, max of a 1-D array (None where empty)."""
    x = np.asarray(x, np.float64)
    if x.size == 0:
        return {"count": 0, "mean": None, "sd": None, "min": None, "max": None}
    return {
        "count": int(x.size),
        "mean": float(x.mean()),
        "sd": float(x.std()),
        "min": float(x.min()),
        "max": float(x.max()),
    }


def group_sums(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Sum of `values` per distinct key (e.g. the return of each rollout branch)."""
    _, inverse = np.unique(np.asarray(keys), return_inverse=True)
    return np.bincount(inverse, weights=np.asarray(values, np.float64))
