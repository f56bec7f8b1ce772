"""Pretrain: fit a world model (LOGO, global or ensemble) to an offline dataset (or, with the
`oracle` kind, record the real simulator as one: stages/pretrain_oracle.py).

Episode-wise held-out split, Adam on minibatches drawn with replacement, an evaluation every epoch
(ceil(train transitions / batch size) steps) with early stopping on the held-out loss, and the whole
trainer state in `checkpoint.pt` after every evaluation (and on Ctrl-C), so rerunning the same
command resumes. A finished run holds `model.pt` (best weights, world_model_payload format),
`metrics.jsonl` (a train line every `log_every` steps, an eval line per evaluation and a final line
of the best weights' metrics, each with its wall-clock time; a resumed run drops the lines after its
checkpoint step), any tracker's files
(`tb/`, `wandb/`) and `manifest.json`, written last: its presence is what marks the run finished.

The run directory is locked while a run works on it (a second run into it gets one line). A fresh
run trains in place (an interrupted one is resumable there); `--overwrite` of an existing run trains
in a hidden sibling and swaps it in only when finished, so the old run survives until then. A loss
or held-out score that turns NaN or inf stops training with one line; no checkpoint is ever written
with non-finite weights, so the last one on disk is the last good one.
"""

from __future__ import annotations

import json
import math
import shutil
import signal
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from logo_cli.artifacts import (
    MANIFEST,
    file_hash,
    load_checkpoint,
    make_manifest,
    save_checkpoint,
    write_json_atomic,
)
from logo_cli.data.transitions import Dims
from logo_cli.errors import LogoError
from logo_cli.stages.run_records import config_dict as _config_dict
from logo_cli.stages.run_records import metrics_up_to as _read_metrics

CHECKPOINT, MODEL, METRICS = "checkpoint.pt", "model.pt", "metrics.jsonl"
STATE_FORMAT = "logo-pretrain-state"
# Options that may change when a run is resumed (budget and placement); any other change is refused.
# Logging options are among them: how a run is watched does not change what it computes.
RESUMABLE = {
    "out", "max_epochs", "max_steps", "patience", "device", "resume", "overwrite", "logger", "log_every"
}  # fmt: skip

# progress(step, total_steps, info): after every few train steps and after each evaluation.
Progress = Callable[[int, int, dict], None]


@dataclass(frozen=True)
class PretrainConfig:
    data: Path  # offline dataset (.h5 file or folder of part_*.h5)
    out: Path  # run directory (checkpoint.pt while training; model.pt + manifest.json when done)
    model: str = "logo"  # world model kind: logo, global, ensemble or oracle (the simulator)
    holdout: float = 0.1  # fraction of episodes held out for early stopping and metrics
    batch_size: int = 256  # transitions per Adam step
    lr: float = 1e-3  # Adam learning rate
    max_epochs: int = 100  # epochs at most (an epoch = ceil(train transitions / batch size) steps)
    max_steps: int | None = None  # train steps at most (None: only max_epochs bounds training)
    patience: int = 10  # evaluations without held-out improvement before stopping
    hidden: int = 256  # hidden width of every network
    latent: int = 64  # LOGO latent size (local and deductive autoencoders)
    layers: int = 2  # hidden layers of encoders (LOGO) or of the whole MLP (global, ensemble)
    share_local: bool = False  # LOGO: one shared local network + agent id instead of one per agent
    local_action: str | None = None  # LOGO: "joint" or "own" action per local model (None: by action type)
    members: int = 7  # ensemble members
    elites: int = 5  # ensemble elites (best held-out members, used for prediction)
    eval_size: int = 20_000  # held-out transitions scored at each evaluation (all of them at the end)
    seed: int = 0  # model init, split and minibatches
    device: str = "cpu"  # resolved torch device
    resume: bool = True  # continue an unfinished run found in `out`
    overwrite: bool = False  # start `out` afresh even if it holds a run
    logger: str = "none"  # experiment tracker: none, tensorboard or wandb (see logo_cli.tracking)
    log_every: int = 100  # train steps between metrics.jsonl train lines (and tracker points)


@dataclass
class PretrainResult:
    out: Path
    kind: str
    metrics: dict
    steps: int
    best_step: int
    stopped_early: bool
    resumed_from: int | None  # the step a resumed run continued from


def model_hparams(cfg: PretrainConfig, noop_action: int) -> dict:
    """The build_world_model hparams this config means for its kind."""
    hp: dict = {"hidden": cfg.hidden, "layers": cfg.layers, "noop_action": noop_action}
    if cfg.model == "logo":
        hp.update(latent=cfg.latent, share_local=cfg.share_local)
        if cfg.local_action is not None:  # else the model's default for the dataset's action type
            hp.update(local_action=cfg.local_action)
    elif cfg.model == "ensemble":
        hp.update(members=cfg.members, elites=cfg.elites)
    return hp


def _check(cfg: PretrainConfig) -> None:
    from logo_cli.checks import MAX_LAYERS, MAX_MEMBERS, MAX_WIDTH, integer, number

    number("--lr", cfg.lr, lo=0.0, lo_open=True)
    number("--holdout", cfg.holdout, lo=0.0, hi=1.0, hi_open=True)
    for option, value, top in (
        ("--hidden", cfg.hidden, MAX_WIDTH),
        ("--latent", cfg.latent, MAX_WIDTH),
        ("--layers", cfg.layers, MAX_LAYERS),
        ("--members", cfg.members, MAX_MEMBERS),
    ):
        integer(option, value, hi=top)  # before anything is allocated  # fmt: skip
    if cfg.model not in ("logo", "global", "ensemble", "oracle"):
        raise LogoError(f"--kind {cfg.model}: expected logo, global, ensemble or oracle")
    if cfg.local_action not in (None, "joint", "own"):
        raise LogoError(f"--local-action {cfg.local_action}: expected joint or own")
    if not 0.0 <= cfg.holdout < 1.0:
        raise LogoError(f"--holdout {cfg.holdout}: must lie in [0, 1)")
    for name in (
        "batch_size",
        "max_epochs",
        "patience",
        "hidden",
        "latent",
        "layers",
        "members",
        "eval_size",
        "log_every",
    ):
        if getattr(cfg, name) < 1:
            raise LogoError(f"--{name.replace('_', '-')} {getattr(cfg, name)}: must be at least 1")
    if cfg.max_steps is not None and cfg.max_steps < 1:
        raise LogoError(f"--steps {cfg.max_steps}: must be at least 1")
    if not 1 <= cfg.elites <= cfg.members:
        raise LogoError(f"--elites {cfg.elites}: must lie in 1..--members ({cfg.members})")
    if cfg.lr <= 0:
        raise LogoError(f"--lr {cfg.lr}: must be positive")
    from logo_cli.tracking import check_logger

    check_logger(cfg.logger)


def _prepare_out(cfg: PretrainConfig) -> tuple[dict | None, Path]:
    """Decide fresh start, resume or replacement; returns (checkpoint to resume from or None, the
    directory to train in: `out` itself, or a hidden sibling when --overwrite replaces a run)."""
    from logo_cli.outputs import artifact_kind, check_target, staging_path

    out = cfg.out
    if out.is_symlink() and not out.exists():
        raise LogoError(f"--out {out}: a dangling symbolic link; remove it or choose another path")
    if out.exists() and not out.is_dir():
        raise LogoError(f"{out}: exists and is not a directory")
    is_run = out.is_dir() and ((out / CHECKPOINT).exists() or (out / MANIFEST).exists())
    if out.is_dir() and not is_run and _only_logs(out):
        _remove_logs(out)  # a run killed before its first checkpoint: nothing to resume
    if out.is_dir() and any(out.iterdir()) and not is_run:
        raise LogoError(f"{out}: not empty and not a pretrain run; refusing to write into it")
    if is_run and (out / MANIFEST).exists() and artifact_kind(out) != "pretrain":
        raise LogoError(
            f"{out}: not a pretrain run (its manifest names another stage); refusing to write into it"
        )
    if cfg.overwrite:
        if is_run:  # build the new run beside the old one, which survives until the swap
            check_target(out, "pretrain", overwrite=True)
            return None, staging_path(out, directory=True)
        return None, out
    if (out / MANIFEST).exists():
        raise LogoError(f"{out}: a finished pretrain run (pass --overwrite to train again)")
    if not (out / CHECKPOINT).exists():
        return None, out
    if not cfg.resume:
        raise LogoError(
            f"{out}: holds an unfinished run (pass --resume to continue or --overwrite to restart)"
        )
    state = load_checkpoint(out / CHECKPOINT)
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise LogoError(f"{out / CHECKPOINT}: not a pretrain checkpoint")
    from logo_cli.artifacts import check_format_version, format_version

    check_format_version(format_version(state, "version"), 1, "pretrain checkpoint", str(out / CHECKPOINT))
    return state, out


def _check_resume(state: dict, cfg: PretrainConfig, dims: Dims, data_hash: str) -> None:
    try:
        saved_dims = Dims.from_dict(state["dims"])
        if not isinstance(state["config"], dict):
            raise TypeError("config is not an object")
    except (KeyError, TypeError, ValueError) as e:
        raise LogoError(f"{cfg.out / CHECKPOINT}: garbled pretrain checkpoint ({e})") from None
    saved_dims.check_same(dims, f"--data {cfg.data} vs the run in {cfg.out}")
    if state.get("data_hash") != data_hash:
        raise LogoError(f"--data {cfg.data}: not the dataset the run in {cfg.out} was started on")
    old = state["config"]
    for f in fields(cfg):
        if f.name in RESUMABLE or f.name == "data":
            continue
        new = str(getattr(cfg, f.name))
        if str(old.get(f.name)) != new:
            raise LogoError(
                f"--{f.name.replace('_', '-')} {new}: the run in {cfg.out} used {old.get(f.name)} "
                "(use the same options, or --overwrite to restart)"
            )


def run(cfg: PretrainConfig, progress: Progress | None = None) -> PretrainResult:
    """Train (or resume) into cfg.out, holding its lock for the whole run."""
    from logo_cli.outputs import exclusive

    _check(cfg)
    if not cfg.data.exists():
        raise LogoError(f"--data {cfg.data}: no such file or folder")
    with exclusive(cfg.out):
        if cfg.model == "oracle":
            from logo_cli.stages.pretrain_oracle import run_oracle

            return run_oracle(cfg)
        return _run(cfg, progress)


def _run(cfg: PretrainConfig, progress: Progress | None) -> PretrainResult:
    from logo_cli.data.h5 import open_dataset, split_episodes
    from logo_cli.outputs import os_error_line, remove, swap_in

    started = time.perf_counter()
    with open_dataset(cfg.data) as ds:
        dims = ds.dims
        noop = int(ds.attrs.get("noop_action", 0) or 0) if dims.discrete else 0
        train_ep, hold_ep = split_episodes(ds.n_episodes, cfg.holdout, cfg.seed)
        train, hold = ds.transitions(train_ep), ds.transitions(hold_ep)
    if len(train) == 0:
        raise LogoError(f"--data {cfg.data}: no training transitions")
    if dims.discrete and not 0 <= noop < dims.n_actions:
        raise LogoError(
            f"--data {cfg.data}: attribute noop_action {noop} is not an action (0..{dims.n_actions - 1})"
        )
    data_hash = file_hash(cfg.data)
    state, work = _prepare_out(cfg)
    fresh_dir = not cfg.out.exists()
    try:
        result = _train(cfg, progress, state, work, started, dims, noop, train, hold, train_ep, hold_ep,
                        data_hash)  # fmt: skip
    except BaseException as e:
        if work != cfg.out:
            remove(work)  # a replacement that did not finish: the old run stays as it was
            if isinstance(e, OSError):
                raise LogoError(os_error_line(e, cfg.out, f"{cfg.out} is unchanged")) from None
        elif not (work / CHECKPOINT).exists():  # nothing worth resuming: leave no trace
            _remove_logs(work)
            if fresh_dir and work.is_dir() and not any(work.iterdir()):
                work.rmdir()
        raise
    if work != cfg.out:
        swap_in(work, cfg.out, "pretrain", overwrite=True)
    return result


def _remove_logs(work: Path) -> None:
    """What a run writes before its first checkpoint besides it: the metrics and tracker files."""
    from logo_cli.tracking import TRACKER_FILES

    (work / METRICS).unlink(missing_ok=True)
    for name in TRACKER_FILES:
        shutil.rmtree(work / name, ignore_errors=True)


def _only_logs(out: Path) -> bool:
    """The folder holds nothing but a run's metrics and tracker files (and hidden files)."""
    from logo_cli.tracking import TRACKER_FILES

    names = {p.name for p in out.iterdir() if not p.name.startswith(".")}
    return bool(names) and names <= {METRICS, *TRACKER_FILES}


def _train(cfg, progress, state, work, started, dims, noop, train, hold, train_ep, hold_ep, data_hash):
    from logo_cli.algos.world_model_train import draw_batch, heldout_loss, heldout_metrics, train_step
    from logo_cli.checks import LossGuard, nonfinite_tensors
    from logo_cli.models.ensemble_model import EnsembleModel
    from logo_cli.models.layers import param_count
    from logo_cli.models.world_model import build_world_model

    if state is not None:
        _check_resume(state, cfg, dims, data_hash)

    dev = cfg.device
    tr, ho = train.to_torch(dev), hold.to_torch(dev)
    eval_idx = np.random.default_rng(cfg.seed).permutation(len(hold))[: cfg.eval_size]
    ho_eval = {k: v[torch.as_tensor(eval_idx, device=dev)] for k, v in ho.items()} if len(hold) else ho
    hparams = model_hparams(cfg, noop)
    with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's RNG
        torch.manual_seed(cfg.seed)
        model = build_world_model(cfg.model, dims, **hparams)
    model.fit_normalizers(train.to_torch())
    model.to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    per_epoch = math.ceil(len(train) / cfg.batch_size)
    total = (
        per_epoch * cfg.max_epochs
        if cfg.max_steps is None
        else min(cfg.max_steps, per_epoch * cfg.max_epochs)
    )
    t = {"step": 0, "best_score": math.inf, "best_step": 0, "bad_evals": 0, "train_seconds": 0.0}
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    history: list[dict] = []
    resumed_from = None
    if state is not None:
        try:
            model.load_state_dict(state["best_state"])  # loaded at the end: check it fits now
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            gen.set_state(state["generator"])
            t.update(state["trainer"])
            best_state = state["best_state"]
            history = list(state["history"])
            resumed_from = int(t["step"])
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            detail = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            raise LogoError(f"{work / CHECKPOINT}: garbled pretrain checkpoint ({detail})") from None
    guard = LossGuard()
    kept = (
        f"{cfg.out} is unchanged"
        if work != cfg.out
        else f"the last good checkpoint stays in {work / CHECKPOINT}"
    )

    def save_state() -> None:
        log.flush()  # the lines up to the checkpoint step are on disk before it
        bad = nonfinite_tensors(model.state_dict())
        if bad:  # never checkpoint a diverged model: the one on disk stays the last good one
            raise LogoError(f"{cfg.out}: weights became NaN or inf ({bad[0]}) at step {t['step']}; "
                            f"training stopped, {kept} (lower --lr)")  # fmt: skip
        save_checkpoint(
            work / CHECKPOINT,
            {
                "format": STATE_FORMAT,
                "format_version": 1,
                "version": 1,
                "config": _config_dict(cfg),
                "dims": dims.to_dict(),
                "data_hash": data_hash,
                "kind": cfg.model,
                "hparams": hparams,
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "generator": gen.get_state(),
                "trainer": dict(t),
                "best_state": best_state,
                "history": history,
            },
        )

    def evaluate(train_loss: float) -> None:
        nonlocal best_state
        if len(hold):
            score, member = heldout_loss(model, ho_eval)
            if member is not None and isinstance(model, EnsembleModel):
                model.set_elites(torch.tensor(member))
        else:  # nothing held out: keep the latest weights
            score, member = -float(t["step"]), None
        if not math.isfinite(score):
            raise LogoError(f"{cfg.out}: the held-out loss became NaN or inf at step {t['step']}; "
                            f"training stopped, {kept} (lower --lr)")  # fmt: skip
        history.append({"step": t["step"], "train_loss": train_loss, "heldout_loss": score})
        if score < t["best_score"] - 1e-4:
            t.update(best_score=score, best_step=t["step"], bad_evals=0)
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            t["bad_evals"] += 1
        if len(hold):
            best = t["best_score"]
            record("eval", {"train_loss": train_loss, "heldout_loss": score, "best_heldout_loss": best})
        save_state()

    work.mkdir(parents=True, exist_ok=True)
    metrics_path = work / METRICS
    kept_lines = _read_metrics(metrics_path, t["step"])
    metrics_path.write_text("".join(line + "\n" for line in kept_lines))
    from logo_cli.tracking import open_tracker

    tracker = open_tracker(cfg.logger, work, cfg.out.name, "pretrain", _config_dict(cfg), resumed_from)

    def record(kind: str, values: dict) -> None:
        line = {"step": t["step"], "kind": kind, "wall_time": time.time(), **values}
        log.write(json.dumps(line) + "\n")
        tracker.log(t["step"], {f"{kind}/{k}": v for k, v in values.items()})

    running, n_running, tick = 0.0, 0, time.perf_counter()
    log_n, log_tick = 0, time.perf_counter()
    finished = False
    with _deferred_sigint() as sigint, open(metrics_path, "a") as log:
        try:
            while t["step"] < total and t["bad_evals"] < cfg.patience:
                if sigint.requested:  # only between steps, so the saved state is a consistent one
                    raise KeyboardInterrupt
                parts = train_step(model, opt, draw_batch(tr, cfg.batch_size, gen))
                t["step"] += 1
                guard.observe(parts["loss"], t["step"])  # a float here: checked at once
                guard.check(t["step"], str(cfg.out), kept)
                running, n_running = running + parts["loss"], n_running + 1
                log_n += 1
                if t["step"] % cfg.log_every == 0 or t["step"] == total:
                    # this step's losses (not a window mean): a resumed run logs the same numbers
                    now = time.perf_counter()
                    values = {k: float(v) for k, v in parts.items()}
                    values["steps_per_s"] = log_n / max(now - log_tick, 1e-9)
                    record("train", values)
                    log_n, log_tick = 0, now
                if t["step"] % per_epoch == 0 or t["step"] == total:
                    t["train_seconds"] += time.perf_counter() - tick
                    evaluate(running / n_running)
                    running, n_running, tick = 0.0, 0, time.perf_counter()
                if progress is not None and (t["step"] % 10 == 0 or n_running == 0):
                    busy = t["train_seconds"] + time.perf_counter() - tick
                    info = {"loss": parts["loss"], "steps_per_s": t["step"] / max(busy, 1e-9)}
                    if history:
                        info.update(heldout=history[-1]["heldout_loss"], best=t["best_score"])
                    progress(t["step"], total, info)
            finished = True
        except KeyboardInterrupt:
            if not sigint.forced:
                if n_running:
                    t["train_seconds"] += time.perf_counter() - tick
                save_state()  # resume continues from this exact step
            raise
        finally:
            log.flush()
            if not finished:  # a finished run closes its tracker after the final line below
                tracker.close()
    stopped_early = t["bad_evals"] >= cfg.patience

    try:
        model.load_state_dict(best_state)
        metrics = heldout_metrics(model, ho if len(hold) else tr)
        metrics.update(
            {
                "metrics_on": "heldout" if len(hold) else "train",
                "heldout_loss": t["best_score"] if len(hold) else None,
                "parameters": param_count(model),
                "train_steps": t["step"],
                "best_step": t["best_step"],
                "train_steps_per_s": t["step"] / max(t["train_seconds"], 1e-9),
                "n_train": len(train),
                "stopped_early": stopped_early,
            }
        )
        if isinstance(model, EnsembleModel):
            metrics["elites"] = model.elite_idx.tolist()
        # the best weights' metrics (the manifest's), as the log's last line and the tracker's points
        final = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        with open(metrics_path, "a") as log:  # `record` writes to `log`
            record("final", final)
    finally:
        tracker.close()
    extra = {
        "hparams": hparams,
        "split": {"train_episodes": len(train_ep), "heldout_episodes": len(hold_ep)},
        "history": history,
    }
    write_run(cfg, work, model, dims, data_hash, metrics, extra, started, (t["step"], t["best_step"]))
    return PretrainResult(cfg.out, cfg.model, metrics, t["step"], t["best_step"], stopped_early, resumed_from)


def write_run(cfg, work: Path, model, dims: Dims, data_hash: str, metrics: dict, extra: dict,
              started: float, steps: tuple[int, int]) -> None:  # fmt: skip
    """A finished run's model.pt, then its manifest.json (written last: it marks the run finished).
    `steps` is (steps trained, step of the kept weights); `extra` joins the manifest's kind and dims."""
    from logo_cli.models.world_model import world_model_payload

    meta = {"data": str(cfg.data), "data_hash": data_hash, "step": steps[0], "best_step": steps[1]}
    save_checkpoint(work / MODEL, world_model_payload(model, meta))
    manifest = make_manifest(
        "pretrain",
        cfg,
        inputs={"data": cfg.data},
        seed=cfg.seed,
        metrics=metrics,
        extra={"kind": cfg.model, "dims": dims.to_dict(), **extra},
        wall_time_s=time.perf_counter() - started,
        artifact=cfg.out,
    )
    write_json_atomic(work / MANIFEST, manifest)


class _Sigint:
    requested = False  # first Ctrl-C: stop at the next step boundary
    forced = False  # second Ctrl-C: stop now, without saving a possibly half-updated state


@contextmanager
def _deferred_sigint():
    """Turn Ctrl-C into a flag checked between train steps, so an interrupt never lands inside an
    optimiser update (which would checkpoint half-updated weights). Main thread only; elsewhere a
    no-op."""
    flag = _Sigint()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame) -> None:
        if flag.requested:
            flag.forced = True
            raise KeyboardInterrupt
        flag.requested = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)
