"""The calibration plots (matplotlib, Agg backend: files only, no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

MAX_POINTS = 4000  # scatter points drawn per model; more hide the binned curve without adding anything
ERROR_LABEL = "true one-step error\n(RMS over state dims, units of state std)"
UNC_LABEL = "uncertainty u (model's own units)"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def _count(n: int) -> str:
    return f"{n / 1000:.1f}k" if n >= 1000 else str(n)


def _wants_log(arrays: list[np.ndarray]) -> bool:
    values = [a for a in arrays if len(a)]
    if not values or not all(np.all(a > 0) for a in values):
        return False
    return max(float(a.max()) for a in values) / min(float(a.min()) for a in values) > 20


def _log_axis(axis, set_scale) -> None:
    """Log scale with ticks at 1, 2 and 5 per decade, all labelled in plain numbers: the default
    labels only powers of ten, which leaves a narrow log axis with a single label."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    set_scale("log")
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def plot_calibration(
    models: list[tuple[str, np.ndarray, np.ndarray, dict]], path: Path, seed: int = 0
) -> Path:
    """One panel per model: uncertainty vs true error (a subsample) and the decile-binned mean error.

    models: (label, uncertainty [T], error [T], one-step summary with spearman/pearson/auroc/bins).
    """
    plt = _pyplot()
    # One scale for every panel (mixed log and linear panels invite wrong comparisons): log when all
    # values are positive and they span more than a factor of 20 pooled over the models.
    log_x = _wants_log([m[1] for m in models])
    log_y = _wants_log([m[2] for m in models])
    n = len(models)
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    # The error (y) is in the same units for every model: one y range for all panels. The uncertainty
    # (x) is each model's own quantity, so each panel keeps its own x range.
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.4 * rows), squeeze=False, sharey=True)
    rng = np.random.default_rng(seed)
    for ax, (label, unc, err, s) in zip(axes.flat, models, strict=False):
        idx = rng.choice(len(unc), MAX_POINTS, replace=False) if len(unc) > MAX_POINTS else slice(None)
        ax.scatter(
            unc[idx], err[idx], s=5, alpha=0.25, color="tab:blue", linewidths=0, label="held-out transition"
        )
        bins = s["by_uncertainty_decile"]
        ax.plot(
            [b["uncertainty_mean"] for b in bins],
            [b["error_mean"] for b in bins],
            "o-",
            color="tab:red",
            lw=2,
            ms=5,
            label="mean error per uncertainty decile",
        )
        if log_x:
            _log_axis(ax.xaxis, ax.set_xscale)
        if log_y:
            _log_axis(ax.yaxis, ax.set_yscale)
        ax.set_title(
            f"{label}\nSpearman {_fmt(s['spearman'])}, Pearson {_fmt(s['pearson'])}, "
            f"AUROC(worst 10%) {_fmt(s['auroc_worst10'])}",
            fontsize=10,
        )
        ax.set_xlabel(UNC_LABEL)
        ax.set_ylabel(ERROR_LABEL)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle("Does the uncertainty rank the real one-step errors?", fontsize=12)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def budget(m: dict) -> str:
    """A model's legend label with its training budget: 'logo (1,200 steps)'."""
    steps = m.get("train_steps")
    return m["label"] if steps is None else f"{m['label']} ({steps:,} steps)"


def plot_horizon(models: list[dict], path: Path) -> Path:
    """The open-loop error and uncertainty growth figure (horizon_figure), saved to `path`."""
    plt = _pyplot()
    fig = horizon_figure(models)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def horizon_figure(models: list[dict]):
    """Left: open-loop state error vs rollout depth, one line per model (mean solid with its 95%
    bootstrap band, median dashed), with the number of scored states per depth under the axis.
    Right: each model's mean uncertainty relative to its own depth-1 value, so models whose
    uncertainties have different units share an axis (the depth-1 values are in the legend). Both
    panels span the same depths; each model's label carries its training budget in steps."""
    plt = _pyplot()
    fig, (ax_e, ax_u) = plt.subplots(1, 2, figsize=(11.5, 4.8))
    depths: list[int] = []
    for i, m in enumerate(models):
        rows = [r for r in m["multi_step"] if r["n"]]
        k = [r["horizon"] for r in rows]
        depths += k
        color, name = f"C{i}", budget(m)
        ax_e.plot(k, [r["error_mean"] for r in rows], "o-", color=color, ms=4, label=f"{name} mean")
        bands = [(r["horizon"], *r["error_mean_ci95"]) for r in rows if r.get("error_mean_ci95")]
        if bands:
            kb, lo, hi = zip(*bands, strict=True)
            ax_e.fill_between(kb, lo, hi, color=color, alpha=0.18, linewidth=0, label=f"{name} mean, 95% CI")
        ax_e.plot(k, [r["error_median"] for r in rows], "--", color=color, alpha=0.8, label=f"{name} median")
        u = [r["uncertainty_mean"] for r in rows]
        if u and u[0] > 0:
            ax_u.plot(
                k, [v / u[0] for v in u], "o-", color=color, ms=4, label=f"{name} (u at k=1: {u[0]:.3g})"
            )
    if models:  # the models share the scored states; the first one's baseline and counts stand for all
        rows = [r for r in models[0]["multi_step"] if r["n"] and r.get("no_change_error_mean") is not None]
        ax_e.plot(
            [r["horizon"] for r in rows],
            [r["no_change_error_mean"] for r in rows],
            ":",
            color="grey",
            lw=2,
            label="no-change baseline (s_t+k = s_t)",
        )
        counted = [r for r in models[0]["multi_step"] if r["n"]]
        ticks = [r["horizon"] for r in counted]
        ax_e.set_xticks(ticks, [f"{r['horizon']}\n{_count(r['n'])}" for r in counted], fontsize=7)
        ax_u.set_xticks(ticks, [str(t) for t in ticks], fontsize=7)
    if depths:  # one depth range for both panels
        for ax in (ax_e, ax_u):
            ax.set_xlim(min(depths) - 0.5, max(depths) + 0.5)
    ax_e.set_title("Open-loop state error along recorded actions")
    ax_e.set_xlabel("rollout depth k (model steps)\nbelow each depth: scored states n")
    ax_e.set_ylabel("state error at depth k\n(RMS over state dims, units of state std)")
    ax_u.set_title("Growth of the mean uncertainty along the same rollouts")
    ax_u.set_xlabel("rollout depth k (model steps)")
    ax_u.set_ylabel("mean uncertainty at depth k / at depth 1")
    for ax in (ax_e, ax_u):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
