"""The one training loop: `fit` draws a batch, makes one gradient step, and hands the step to its hooks.

`fit` owns what every run needs and nothing else: the step count, the time spent in updates (batch
drawing included), the non-finite-loss guard, early stopping (a hook sets `loop.stop`) and Ctrl-C.
What happens around the steps (metrics lines, evaluations, rollout refreshes, checkpoints, held-out
scores) is a hook's job; hooks run in the order given, after every step.

Ctrl-C: the first SIGINT only sets a flag, checked between steps, so an interrupt never lands inside an
optimiser update or between two hooks of one step. At the next step boundary every hook's
`interrupted(loop, boundary=True)` runs (the checkpoint hook saves there: a resumed run continues from
that exact step) and KeyboardInterrupt is raised. A KeyboardInterrupt raised inside a step (by a
progress callback in a hook, or by the update before it changed anything) reaches the hooks with
`boundary=False`: `loop.step` counts the completed updates, but the step's later hooks did not run, so
only a run whose hooks leave a consistent state after every part of a step saves then (pretrain does;
train-policy keeps its last periodic checkpoint). A second Ctrl-C stops at once and reaches no hook.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from logo_cli.checks import LossGuard


class Learner(Protocol):
    def update(self, batch: Any, step: int) -> dict[str, Any]:
        """One gradient step on `batch`; `step` counts from 1 (target-network schedules read it).
        Returns the step's losses, "loss" among them (tensors or floats)."""
        ...


@dataclass
class Loop:
    """A run's position, shared by `fit` and its hooks."""

    step: int  # steps done (a resumed run starts at its checkpoint's)
    total: int  # train up to this step
    where: str  # the run, as the guard's message names it
    kept: str = "no checkpoint was written yet"  # what survives a stop (the checkpoint hook updates it)
    parts: dict[str, Any] = field(default_factory=dict)  # the last step's losses
    step_s: float = 0.0  # seconds of the last step (batch and update)
    update_s: float = 0.0  # seconds of all steps in this process
    stop: bool = False  # set by a hook to end training after this step (early stopping)
    guard: LossGuard = field(default_factory=LossGuard)

    def check_loss(self) -> None:
        """Raise one line when a loss since the last check was NaN or inf (syncs the device)."""
        self.guard.check(self.step, self.where, self.kept)


class Hook:
    """Something done around the steps; every method is a no-op unless overridden."""

    def after_step(self, loop: Loop) -> None:
        pass

    def interrupted(self, loop: Loop, boundary: bool) -> None:
        """A KeyboardInterrupt: at a step boundary (Ctrl-C; the last step's hooks have all run), or
        inside a step (`boundary` False)."""

    def finished(self, loop: Loop) -> None:
        """Training ended (its last step, or early stopping) and the losses were checked."""


def fit(learner: Learner, batches: Callable[[], Any], hooks: Sequence[Hook], loop: Loop) -> Loop:
    """Train from `loop.step` to `loop.total` (or until a hook sets `loop.stop`)."""
    boundary = False
    with deferred_sigint() as sigint:
        try:
            while loop.step < loop.total and not loop.stop:
                if sigint.requested:
                    boundary = True
                    raise KeyboardInterrupt
                t0 = time.perf_counter()
                batch = batches()
                loop.parts = learner.update(batch, loop.step + 1)
                loop.step_s = time.perf_counter() - t0
                loop.update_s += loop.step_s
                loop.step += 1  # after the update: an exception inside it leaves the step uncounted
                loop.guard.observe(loop.parts["loss"], loop.step)  # on the loss's device: no sync
                for hook in hooks:
                    hook.after_step(loop)
        except KeyboardInterrupt:
            if not sigint.forced:
                for hook in hooks:
                    hook.interrupted(loop, boundary)
            raise
    loop.check_loss()
    for hook in hooks:
        hook.finished(loop)
    return loop


class Sigint:
    requested = False  # first Ctrl-C: stop at the next step boundary
    forced = False  # second Ctrl-C: stop now, without saving a possibly half-updated state


@contextmanager
def deferred_sigint() -> Iterator[Sigint]:
    """Turn Ctrl-C into a flag checked between steps. Main thread only; elsewhere (a sweep's worker
    thread) a no-op, as signal handlers can only be set there."""
    flag = Sigint()
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
