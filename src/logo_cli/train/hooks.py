"""The hooks every training run has: metrics lines (`LogLosses`, through `Records`) and checkpoints
(`Checkpoints`, which also saves on Ctrl-C). A stage adds its own (evaluations, rollout refreshes,
held-out scores) as further `Hook`s."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from logo_cli.train.loop import Hook, Loop

# progress(phase, done, total, info)
Progress = Callable[[str, int, int, dict], None]


class Records:
    """A run's metrics.jsonl lines and its tracker's points (`tracker`: logo_cli.tracking's)."""

    def __init__(self, log: IO[str], tracker: Any):
        self.log, self.tracker = log, tracker

    def write(self, kind: str, step: int, values: dict) -> None:
        self.log.write(json.dumps({"step": step, "kind": kind, "wall_time": time.time(), **values}) + "\n")
        self.tracker.log(step, {f"{kind}/{k}": v for k, v in values.items() if k != "step"})

    def flush(self) -> None:
        self.log.flush()


class LogLosses(Hook):
    """Every `every` steps and at the last one: check the losses, write a "train" line of this step's
    losses (not a window's mean: a resumed run logs the same numbers) with the steps per second since
    the previous line, and report progress."""

    def __init__(self, every: int, records: Records, progress: Progress | None):
        self.every, self.records, self.progress = every, records, progress
        self.final: dict = {}  # the last line's values
        self.window_s, self.window_steps = 0.0, 0

    def after_step(self, loop: Loop) -> None:
        self.window_s, self.window_steps = self.window_s + loop.step_s, self.window_steps + 1
        s = loop.step
        if s % self.every and s != loop.total:
            return
        loop.check_loss()
        values = {k: float(v) for k, v in loop.parts.items()}
        values["steps_per_s"] = self.window_steps / max(self.window_s, 1e-9)
        self.window_s, self.window_steps = 0.0, 0
        self.final = values
        self.records.write("train", s, values)
        if self.progress is not None:
            self.progress("train", s, loop.total, values)


class Checkpoints(Hook):
    """Every `every` steps before the last, and at a Ctrl-C's step boundary: check the losses and the
    weights, flush the metrics lines up to this step, and save `state(step)` to `path` (atomically).
    `kept` formats the message of a later stop ({step}, {path}); `check_weights(loop)` raises when a
    weight is NaN or inf, so a checkpoint never holds a diverged model."""

    def __init__(self, every: int, path: Path, state: Callable[[int], dict], records: Records,
                 check_weights: Callable[[Loop], None], kept: str):  # fmt: skip
        self.every, self.path, self.state, self.records = every, path, state, records
        self.check_weights, self.kept = check_weights, kept

    def after_step(self, loop: Loop) -> None:
        if loop.step % self.every == 0 and loop.step < loop.total:
            self.save(loop)

    def interrupted(self, loop: Loop, boundary: bool) -> None:
        if boundary:  # every hook of the step ran: a resumed run continues from this exact step
            self.save(loop)

    def save(self, loop: Loop) -> None:
        from logo_cli.artifacts import save_checkpoint

        loop.check_loss()
        self.check_weights(loop)
        self.records.flush()
        save_checkpoint(self.path, self.state(loop.step))
        loop.kept = self.kept.format(step=loop.step, path=self.path)
