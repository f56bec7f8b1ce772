"""Experiment trackers for the training stages: none, TensorBoard or Weights & Biases (offline).

A tracker writes inside the run's working directory (`tb/` or `wandb/`), which is the directory that
becomes the finished run, so its files are moved with the run and never left beside it. The
metrics.jsonl each training stage writes is the record of truth; a tracker is a view of the same
numbers for the tools people already use.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Protocol

from logo_cli.choices import Logger, values
from logo_cli.errors import LogoError

LOGGERS = values(Logger)
TB_DIR, WANDB_DIR = "tb", "wandb"
# Names a tracker may create inside a run's working directory (the stages accept them there).
TRACKER_FILES = (TB_DIR, WANDB_DIR)
LOGGER_HELP = (
    "Also send metrics.jsonl's numbers to: none, tensorboard (<run>/tb/) or wandb (offline unless "
    "WANDB_MODE is set; <run>/wandb/). Needs the `tracking` extra."
)


class Tracker(Protocol):
    def log(self, step: int, scalars: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class _Null:
    def log(self, step: int, scalars: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


def _numbers(scalars: dict[str, Any]) -> dict[str, float]:
    """The finite numeric entries (bools and texts are not scalars to plot)."""
    keep = {}
    for k, v in scalars.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if math.isfinite(v):
            keep[k] = float(v)
    return keep


class _TensorBoard:
    def __init__(self, run_dir: Path, resumed_from: int | None):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise LogoError(_missing("tensorboard")) from None
        # purge_step: on resume, events after the checkpoint step (written by the interrupted session
        # and trained again now) are hidden, as metrics.jsonl drops its lines after that step.
        purge = resumed_from + 1 if resumed_from else None
        self.writer = SummaryWriter(log_dir=str(run_dir / TB_DIR), purge_step=purge, flush_secs=30)

    def log(self, step: int, scalars: dict[str, Any]) -> None:
        for k, v in _numbers(scalars).items():
            self.writer.add_scalar(k, v, global_step=step)

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()


class _Wandb:
    def __init__(self, run_dir: Path, name: str, stage: str, config: dict, resumed_from: int | None):
        try:
            import wandb
        except ImportError:
            raise LogoError(_missing("wandb")) from None
        # Offline unless the user chose a mode: a training run never needs network access or a login;
        # `wandb sync <run>/wandb/offline-run-*` uploads it later.
        os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.setdefault("WANDB_SILENT", "true")
        (run_dir / WANDB_DIR).mkdir(parents=True, exist_ok=True)
        try:
            self.run = self._init(wandb, run_dir, name, stage, config, resumed_from)
        except Exception as e:  # W&B's own errors (a bad WANDB_* setting, its service not starting)
            detail = " ".join(str(e).split())[:160] or type(e).__name__
            raise LogoError(f"--logger wandb: could not start a W&B run ({detail})") from None

    @staticmethod
    def _init(wandb, run_dir: Path, name: str, stage: str, config: dict, resumed_from: int | None):
        return wandb.init(
            dir=str(run_dir),
            project=os.environ.get("WANDB_PROJECT", "logo-cli"),
            name=name,
            job_type=stage,
            config=config,
            # A resumed session is a new W&B run whose steps start after the checkpoint step.
            notes=f"resumed from step {resumed_from}" if resumed_from else None,
            reinit="create_new",
        )

    def log(self, step: int, scalars: dict[str, Any]) -> None:
        self.run.log(_numbers(scalars), step=step)

    def close(self) -> None:
        self.run.finish()


def _missing(package: str) -> str:
    return f"--logger {package}: the {package} package is not installed (pip install 'logo-cli[tracking]')"


def check_logger(kind: str) -> None:
    """Refuse an unknown tracker or a missing package before any work is done."""
    if kind not in LOGGERS:
        raise LogoError(f"--logger {kind}: expected one of {', '.join(LOGGERS)}")
    import importlib.util

    module = {"tensorboard": "tensorboard", "wandb": "wandb"}.get(kind)
    if module is not None and importlib.util.find_spec(module) is None:
        raise LogoError(_missing(kind))


def open_tracker(
    kind: str, run_dir: Path, name: str, stage: str, config: dict[str, Any], resumed_from: int | None = None
) -> Tracker:
    """The tracker `kind` writing into run_dir (the run's working directory); `name` is the
    finished run's (the working directory may be a staging name)."""
    check_logger(kind)
    if kind == "tensorboard":
        return _TensorBoard(run_dir, resumed_from)
    if kind == "wandb":
        return _Wandb(run_dir, name, stage, config, resumed_from)
    return _Null()
