"""Pretrain: fit a world model (LOGO, global or ensemble) to an offline dataset (or, with the
`oracle` kind, record the real simulator as one: stages/pretrain_oracle.py).

Episode-wise held-out split, Adam on minibatches drawn with replacement, an evaluation every epoch
(ceil(train transitions / batch size) steps) with early stopping on the held-out loss, and the whole
trainer state in `checkpoint.pt` after every evaluation (and on Ctrl-C), so rerunning the same
command resumes. The options and their checks: stages/pretrain_config.py; the training loop and its
hooks: stages/pretrain_fit.py. A finished run holds `model.pt` (best weights, world_model_payload format),
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

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from logo_cli.artifacts import (
    MANIFEST,
    file_hash,
    make_manifest,
    save_checkpoint,
    write_json_atomic,
)
from logo_cli.data.transitions import Dims
from logo_cli.errors import LogoError
from logo_cli.stages.pretrain_config import (
    CHECKPOINT,
    METRICS,
    MODEL,
    STATE_FORMAT,
    PretrainConfig,
    Progress,
    check,
    check_resume,
    model_hparams,
    prepare_out,
    remove_logs,
)
from logo_cli.stages.run_records import config_dict as _config_dict
from logo_cli.stages.run_records import metrics_up_to as _read_metrics

__all__ = [
    "CHECKPOINT",
    "METRICS",
    "MODEL",
    "PretrainConfig",
    "PretrainResult",
    "model_hparams",
    "run",
    "write_run",
]


@dataclass
class PretrainResult:
    out: Path
    kind: str
    metrics: dict
    steps: int
    best_step: int
    stopped_early: bool
    resumed_from: int | None  # the step a resumed run continued from


def run(cfg: PretrainConfig, progress: Progress | None = None) -> PretrainResult:
    """Train (or resume) into cfg.out, holding its lock for the whole run."""
    from logo_cli.outputs import exclusive

    check(cfg)
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
    state, work = prepare_out(cfg)
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
            remove_logs(work)
            if fresh_dir and work.is_dir() and not any(work.iterdir()):
                work.rmdir()
        raise
    if work != cfg.out:
        swap_in(work, cfg.out, "pretrain", overwrite=True)
    return result


def _train(cfg, progress, state, work, started, dims, noop, train, hold, train_ep, hold_ep, data_hash):
    from logo_cli.algos.world_model_train import heldout_metrics
    from logo_cli.models.ensemble_model import EnsembleModel
    from logo_cli.models.layers import param_count
    from logo_cli.models.world_model import build_world_model
    from logo_cli.stages.pretrain_fit import WorldModelRun, train_world_model
    from logo_cli.train.hooks import Records

    if state is not None:
        check_resume(state, cfg, dims, data_hash)

    dev = cfg.device
    tr, ho = train.to_torch(dev), hold.to_torch(dev)
    eval_idx = np.random.default_rng(cfg.seed).permutation(len(hold))[: cfg.eval_size]
    ho_eval = {k: v[torch.as_tensor(eval_idx, device=dev)] for k, v in ho.items()} if len(hold) else None
    hparams = model_hparams(cfg, noop)
    with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's RNG
        torch.manual_seed(cfg.seed)
        model = build_world_model(cfg.model, dims, **hparams)
    model.fit_normalizers(train.to_torch())
    model.to(dev)
    header = {"format": STATE_FORMAT, "format_version": 1, "version": 1, "config": _config_dict(cfg),
              "dims": dims.to_dict(), "data_hash": data_hash, "kind": cfg.model,
              "hparams": hparams}  # fmt: skip
    r = WorldModelRun(model, cfg.lr, cfg.seed, header)
    per_epoch = math.ceil(len(train) / cfg.batch_size)
    total = (
        per_epoch * cfg.max_epochs
        if cfg.max_steps is None
        else min(cfg.max_steps, per_epoch * cfg.max_epochs)
    )
    resumed_from = None
    if state is not None:
        r.restore(state, work / CHECKPOINT)
        resumed_from = int(r.t["step"])
    t, history = r.t, r.history
    kept = (
        f"{cfg.out} is unchanged"
        if work != cfg.out
        else f"the last good checkpoint stays in {work / CHECKPOINT}"
    )

    work.mkdir(parents=True, exist_ok=True)
    metrics_path = work / METRICS
    kept_lines = _read_metrics(metrics_path, t["step"])
    metrics_path.write_text("".join(line + "\n" for line in kept_lines))
    from logo_cli.tracking import open_tracker

    tracker = open_tracker(cfg.logger, work, cfg.out.name, "pretrain", _config_dict(cfg), resumed_from)
    finished = False
    with open(metrics_path, "a") as log:
        records = Records(log, tracker)
        try:
            ckpt = work / CHECKPOINT
            train_world_model(r, tr, ho_eval, cfg, total, per_epoch, ckpt, records, kept, progress)
            finished = True
        finally:
            log.flush()
            if not finished:  # a finished run closes its tracker after the final line below
                tracker.close()
    stopped_early = t["bad_evals"] >= cfg.patience
    best_state, history = r.best_state, r.history

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
        with open(metrics_path, "a") as log:
            Records(log, tracker).write("final", t["step"], final)
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
