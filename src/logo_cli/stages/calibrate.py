"""Calibrate: does a world model's uncertainty rank its real errors, and how do errors grow with depth?

On held-out real episodes (the episodes every compared model's pretrain run held out, or all
episodes of a separate file):
- one step: true error = RMS over state dims of (predicted - true next state) / the model's own
  state std, against the model's uncertainty: Spearman, Pearson, AUROC of flagging the worst 10%
  errors, error by uncertainty decile;
- multi-step: from every held-out step t, the model follows the *recorded* actions open-loop for
  k = 1..H steps (only while t + k stays inside the episode; a predicted termination is ignored,
  since the real episode goes on); error and uncertainty at each depth.
Outputs metrics.json, two PNG plots and manifest.json in one run directory.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from logo_cli import metrics
from logo_cli.data.transitions import Transitions
from logo_cli.errors import LogoError

# progress(label, done, total): one tick per model and phase.
Progress = Callable[[str, int, int], None]
WORST_FRACTION = 0.1


@dataclass(frozen=True)
class CalibrateConfig:
    models: tuple[Path, ...]  # pretrain run directories, compared side by side
    data: Path  # dataset (.h5) holding the real transitions to score on
    out: Path  # run directory for metrics.json, plots and manifest.json
    horizon: int = 15  # deepest open-loop step of the multi-step evaluation
    holdout_from_manifest: bool | None = None  # True: the runs' held-out episodes; False: all; None: auto
    max_starts: int = 20_000  # multi-step start points at most (a seeded random subset beyond)
    batch_size: int = 4096  # rows per model call
    seed: int = 0  # seeds the start subset
    device: str = "cpu"  # resolved torch device
    overwrite: bool = False  # replace an existing --out directory


@dataclass
class CalibrateResult:
    out: Path
    metrics: dict
    plots: list[Path] = field(default_factory=list)


def _predict_chunks(model, state, obs, actions, batch_size: int, device: str):
    """model.predict over row chunks -> numpy dict (next_state, next_obs, reward, uncertainty)."""
    import torch

    keys = ("next_state", "next_obs", "reward", "terminated_prob", "uncertainty")
    out: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    with torch.no_grad():
        for lo in range(0, len(state), batch_size):
            p = model.predict(
                torch.as_tensor(state[lo : lo + batch_size], device=device),
                torch.as_tensor(obs[lo : lo + batch_size], device=device),
                torch.as_tensor(actions[lo : lo + batch_size], device=device),
            )
            for k in keys:
                out[k].append(getattr(p, k).float().cpu().numpy())
    return {k: np.concatenate(v) if v else np.zeros(0, np.float32) for k, v in out.items()}


def state_std(model) -> np.ndarray:
    """The model's own state normaliser scale: errors are measured in its units."""
    return model.norm_state.std.detach().cpu().numpy().astype(np.float64)


def one_step(model, tr: Transitions, batch_size: int, device: str) -> dict:
    """Per-transition error and uncertainty on real transitions, and their summary metrics."""
    p = _predict_chunks(model, tr.state, tr.obs, tr.actions, batch_size, device)
    err = metrics.state_rms_error(p["next_state"], tr.next_state, state_std(model))
    unc = p["uncertainty"].astype(np.float64)
    obs_std = model.norm_obs.std.detach().cpu().numpy().astype(np.float64)
    obs_err = metrics.state_rms_error(p["next_obs"], tr.next_obs, obs_std).mean(-1)
    summary = {
        "n": len(tr),
        "error_mean": float(err.mean()),
        "error_median": float(np.median(err)),
        "uncertainty_mean": float(unc.mean()),
        **metrics.correlations(unc, err),
        "auroc_worst10": metrics.flag_worst_auroc(unc, err, WORST_FRACTION),
        # the trivial "nothing changes" prediction, for scale: a model should beat it
        "no_change_error_mean": float(
            metrics.state_rms_error(tr.state, tr.next_state, state_std(model)).mean()
        ),
        "obs_error_mean": float(obs_err.mean()),
        "reward_rmse": float(np.sqrt(np.mean((p["reward"] - tr.reward) ** 2))),
        "termination_accuracy": float(((p["terminated_prob"] > 0.5) == tr.terminated).mean()),
        "by_uncertainty_decile": metrics.binned_by_uncertainty(unc, err, 10),
    }
    return {"summary": summary, "error": err, "uncertainty": unc}


def episode_starts(
    lengths: np.ndarray, max_starts: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(episode, t) of every step with a successor inside its episode; a random subset beyond max."""
    e = np.repeat(np.arange(len(lengths)), lengths)
    t = np.concatenate([np.arange(n) for n in lengths]) if len(lengths) else np.zeros(0, np.int64)
    if len(e) > max_starts:
        keep = np.sort(rng.choice(len(e), max_starts, replace=False))
        e, t = e[keep], t[keep]
    return e.astype(np.int64), t.astype(np.int64)


BOOTSTRAP_RESAMPLES = 1000


def bootstrap_mean_ci(x: np.ndarray, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES) -> list[float]:
    """95% percentile-bootstrap interval of the mean of `x` (the states scored at one depth)."""
    x = np.asarray(x, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    chunk = max(1, 2_000_000 // max(len(x), 1))  # bounded memory: resamples drawn in chunks
    for lo in range(0, resamples, chunk):
        hi = min(resamples, lo + chunk)
        means[lo:hi] = x[rng.integers(0, len(x), size=(hi - lo, len(x)))].mean(axis=1)
    lo_q, hi_q = np.percentile(means, [2.5, 97.5])
    return [float(lo_q), float(hi_q)]


def multi_step(
    model,
    episodes,
    starts: tuple[np.ndarray, np.ndarray],
    horizon: int,
    batch_size: int,
    device: str,
    pooled: dict | None = None,
):
    """Open-loop rollouts along the recorded actions; per depth k = 1..horizon: error and uncertainty.

    episodes: EpisodeArrays (state [E,L,S], obs [E,L,N,O], actions [E,L,N,1] int or [E,L,N,Ad]
    float, filled [E,L,1]).
    When `pooled` is a dict it receives the Spearman correlation with the error over all depths
    together of three scores a sampler could weight synthetic rows by: the step's own uncertainty
    ("step"), the uncertainty summed along the rollout up to that step ("cumulative") and the depth
    itself ("depth").
    """
    lengths = episodes.filled.reshape(episodes.filled.shape[0], -1).sum(1).astype(np.int64) - 1
    e, t = starts
    state = episodes.state[e, t].astype(np.float32)
    obs = episodes.obs[e, t].astype(np.float32)
    std = state_std(model)
    rows = []
    cum = np.zeros(len(e))
    seen: dict[str, list[np.ndarray]] = {"error": [], "step": [], "cumulative": [], "depth": []}
    for k in range(1, horizon + 1):
        alive = t + k <= lengths[e]  # the real episode still has step t+k
        e, t, state, obs, cum = e[alive], t[alive], state[alive], obs[alive], cum[alive]
        if len(e) == 0:
            rows.append({"horizon": k, "n": 0, "error_mean": None, "error_mean_ci95": None,
                         "error_median": None, "uncertainty_mean": None, "uncertainty_median": None,
                         "spearman": None, "no_change_error_mean": None})  # fmt: skip
            continue
        act = episodes.actions[e, t + k - 1]
        # discrete: [n,N,1] int -> [n,N]; continuous: the [n,N,Ad] float vectors as recorded
        actions = (
            act[..., 0].astype(np.int64) if np.issubdtype(act.dtype, np.integer) else act.astype(np.float32)
        )
        p = _predict_chunks(model, state, obs, actions, batch_size, device)
        err = metrics.state_rms_error(p["next_state"], episodes.state[e, t + k], std)
        unc = p["uncertainty"].astype(np.float64)
        cum = cum + unc
        for key, value in (("error", err), ("step", unc), ("cumulative", cum), ("depth", np.full(len(e), k))):
            seen[key].append(np.asarray(value, dtype=np.float64))
        rows.append(
            {
                "horizon": k,
                "n": len(e),
                "error_mean": float(err.mean()),
                "error_mean_ci95": bootstrap_mean_ci(err, seed=k),
                "error_median": float(np.median(err)),
                "uncertainty_mean": float(unc.mean()),
                "uncertainty_median": float(np.median(unc)),
                "spearman": metrics.correlations(unc, err)["spearman"],
                "no_change_error_mean": float(
                    metrics.state_rms_error(episodes.state[e, t], episodes.state[e, t + k], std).mean()
                ),
            }
        )
        state, obs = p["next_state"], p["next_obs"]
    if pooled is not None and seen["error"]:
        err_all = np.concatenate(seen["error"])
        for key in ("step", "cumulative", "depth"):
            pooled[key] = metrics.correlations(np.concatenate(seen[key]), err_all)["spearman"]
    return rows


def _train_steps(manifest: dict) -> int | None:
    """The training budget a pretrain run spent (gradient steps), as its manifest records it."""
    steps = (manifest.get("metrics") or {}).get("train_steps")
    return int(steps) if isinstance(steps, (int, float)) else None


def _labels(runs) -> list[str]:
    labels = [r.kind if r.name == r.kind else f"{r.kind} ({r.name})" for r in runs]
    if len(set(labels)) < len(labels):
        labels = [f"{lab} #{i + 1}" for i, lab in enumerate(labels)]
    return labels


def _episodes(cfg: CalibrateConfig, runs, ds, data_hash: str) -> tuple[np.ndarray, str]:
    """The episode indices to score on, and how they were chosen."""
    from logo_cli.data.h5 import split_episodes

    same = [r.manifest.get("inputs", {}).get("data", {}).get("hash") == data_hash for r in runs]
    use_holdout = all(same) if cfg.holdout_from_manifest is None else cfg.holdout_from_manifest
    if not use_holdout:
        return np.arange(ds.n_episodes), "all episodes of the file"
    if not all(same):
        bad = runs[same.index(False)]
        raise LogoError(
            f"--holdout-from-manifest: {cfg.data} is not the dataset {bad.name} was trained on, so its "
            "held-out split does not apply (pass --all-episodes)"
        )
    held = None
    for r in runs:
        c = r.manifest.get("config", {})
        try:
            _, hold = split_episodes(ds.n_episodes, float(c["holdout"]), int(c["seed"]))
        except (KeyError, TypeError, ValueError):
            raise LogoError(
                f"{r.name}: its manifest records no held-out split (config holdout/seed)"
            ) from None
        held = hold if held is None else np.intersect1d(held, hold)
    if held is None or len(held) == 0:
        raise LogoError(f"{cfg.data}: the runs hold out no common episode (pass --all-episodes)")
    return held, "episodes held out by every run"


def run(cfg: CalibrateConfig, progress: Progress | None = None) -> CalibrateResult:
    """Score the models; the output's lock is held throughout, the run directory is built beside it
    and swapped in at the end (--overwrite replaces only a calibrate run)."""
    from logo_cli.outputs import check_target, exclusive

    if not cfg.models:
        raise LogoError("--model: give at least one pretrain run")
    if cfg.horizon < 1 or cfg.max_starts < 1 or cfg.batch_size < 1:
        raise LogoError("--horizon / --max-starts / --batch-size: must be at least 1")
    check_target(cfg.out, "calibrate", cfg.overwrite)  # refuse early, before any scoring
    with exclusive(cfg.out):
        return _run(cfg, progress)


def _run(cfg: CalibrateConfig, progress: Progress | None) -> CalibrateResult:
    from logo_cli.artifacts import file_hash, make_manifest, write_json_atomic
    from logo_cli.data.h5 import open_dataset
    from logo_cli.models.world_model import param_count
    from logo_cli.outputs import check_target, os_error_line, remove, staging_path, swap_in
    from logo_cli.stages.calibrate_plots import budget, plot_calibration, plot_horizon
    from logo_cli.stages.rollout import load_model_run

    check_target(cfg.out, "calibrate", cfg.overwrite)
    started = time.perf_counter()
    runs = [load_model_run(m, cfg.device) for m in cfg.models]
    data_hash = file_hash(cfg.data)
    with open_dataset(cfg.data) as ds:
        for r, path in zip(runs, cfg.models, strict=True):
            r.model.dims.check_same(ds.dims, f"{cfg.data} vs model {path}")
        chosen, how = _episodes(cfg, runs, ds, data_hash)
        tr = ds.transitions(chosen)
        episodes = ds.episode_arrays(chosen)
    if len(tr) == 0:
        raise LogoError(f"{cfg.data}: no transitions in the chosen episodes")
    lengths = episodes.filled.reshape(len(chosen), -1).sum(1).astype(np.int64) - 1
    starts = episode_starts(lengths, cfg.max_starts, np.random.default_rng(cfg.seed))

    labels = _labels(runs)
    per_model, scatter = [], []
    total = 2 * len(runs)
    for i, (r, label) in enumerate(zip(runs, labels, strict=True)):
        if progress:
            progress(f"{label}: one step", 2 * i, total)
        one = one_step(r.model, tr, cfg.batch_size, cfg.device)
        if progress:
            progress(f"{label}: {cfg.horizon} steps", 2 * i + 1, total)
        pooled: dict = {}
        multi = multi_step(r.model, episodes, starts, cfg.horizon, cfg.batch_size, cfg.device, pooled)
        per_model.append(
            {
                "label": label,
                "run": str(r.path.parent),
                "kind": r.kind,
                "model_hash": r.hash,
                "parameters": param_count(r.model),
                "train_steps": _train_steps(r.manifest),
                "one_step": one["summary"],
                "multi_step": multi,
                "pooled_spearman": pooled,
            }
        )
        scatter.append((budget(per_model[-1]), one["uncertainty"], one["error"], one["summary"]))
    if progress:
        progress("plots", total, total)

    result_metrics = {
        "data": {"path": str(cfg.data), "hash": data_hash, "episodes": how, "n_episodes": len(chosen)},
        "n_transitions": len(tr),
        "n_starts": len(starts[0]),
        "horizon": cfg.horizon,
        "error_units": "RMS over state dims of (predicted - true next state) / the model's state std",
        "worst_fraction": WORST_FRACTION,
        "models": per_model,
    }
    _check_finite_metrics(per_model)
    tmp = staging_path(cfg.out, directory=True)
    try:
        write_json_atomic(tmp / "metrics.json", result_metrics)
        plots = [plot_calibration(scatter, tmp / "uncertainty_vs_error.png", seed=cfg.seed)]
        plots.append(plot_horizon(per_model, tmp / "error_vs_horizon.png"))
        inputs = {"data": cfg.data, **{f"model_{i}": r.path for i, r in enumerate(runs)}}
        headline = {m["label"]: _headline(m) for m in per_model}
        manifest = make_manifest(
            "calibrate",
            cfg,
            inputs,
            seed=cfg.seed,
            metrics=headline,
            wall_time_s=time.perf_counter() - started,
            artifact=cfg.out,
        )
        write_json_atomic(tmp / "manifest.json", manifest)
        swap_in(tmp, cfg.out, "calibrate", cfg.overwrite)  # checked again just before
    except OSError as e:
        remove(tmp)
        kept = f"{cfg.out} is unchanged" if cfg.out.exists() else "nothing was written"
        raise LogoError(os_error_line(e, cfg.out, kept)) from None
    except BaseException:
        remove(tmp)
        raise
    return CalibrateResult(cfg.out, result_metrics, [cfg.out / p.name for p in plots])


def _check_finite_metrics(per_model: list[dict]) -> None:
    """A model whose predictions are NaN or inf is refused, never written as NaN metrics."""
    for m in per_model:
        values = [m["one_step"]["error_mean"], m["one_step"]["uncertainty_mean"]]
        values += [r["error_mean"] for r in m["multi_step"] if r["n"]]
        values += [r["uncertainty_mean"] for r in m["multi_step"] if r["n"]]
        if not all(np.isfinite(v) for v in values):
            raise LogoError(
                f"{m['run']}: the model predicts NaN or inf on this data (its errors or uncertainties are "
                "not finite); nothing was written"
            )


def _headline(m: dict) -> dict:
    one, deep = m["one_step"], [r for r in m["multi_step"] if r["n"]]
    return {
        "one_step_error": one["error_mean"],
        "spearman": one["spearman"],
        "pearson": one["pearson"],
        "auroc_worst10": one["auroc_worst10"],
        "deepest_horizon": deep[-1]["horizon"] if deep else None,
        "deepest_error": deep[-1]["error_mean"] if deep else None,
        "pooled_spearman": m.get("pooled_spearman"),
    }
