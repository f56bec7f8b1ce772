"""train/loop.fit: the step count, hooks, early stopping, the loss guard and Ctrl-C at a step boundary."""

from __future__ import annotations

import os
import signal

import pytest
import torch

from logo_cli.errors import LogoError
from logo_cli.train.loop import Hook, Loop, fit


class Counter:
    """A learner whose loss is the batch it is given."""

    def __init__(self):
        self.steps: list[int] = []

    def update(self, batch, step):
        self.steps.append(step)
        return {"loss": torch.tensor(batch)}


class Seen(Hook):
    def __init__(self):
        self.after, self.interrupts, self.finished_at = [], [], None

    def after_step(self, loop):
        self.after.append((loop.step, float(loop.parts["loss"])))

    def interrupted(self, loop, boundary):
        self.interrupts.append((loop.step, boundary))

    def finished(self, loop):
        self.finished_at = loop.step


def test_fit_steps_from_the_loop_position_and_runs_every_hook_after_each_step():
    learner, seen = Counter(), Seen()
    loop = fit(learner, lambda: 1.5, [seen], Loop(step=3, total=6, where="run"))
    assert learner.steps == [4, 5, 6] and seen.after == [(4, 1.5), (5, 1.5), (6, 1.5)]
    assert seen.finished_at == 6 and loop.update_s > 0 and seen.interrupts == []


def test_a_hook_stops_training_early():
    class Patience(Hook):
        def after_step(self, loop):
            loop.stop = loop.step == 2

    seen = Seen()
    loop = fit(Counter(), lambda: 0.0, [Patience(), seen], Loop(step=0, total=10, where="run"))
    assert loop.step == 2 and seen.finished_at == 2


def test_a_non_finite_loss_stops_with_one_line_naming_what_is_kept():
    losses = iter([1.0, float("nan"), 1.0])
    with pytest.raises(
        LogoError, match=r"run: the training loss became NaN or inf between steps 1 and 3.*kept"
    ):
        fit(Counter(), lambda: next(losses), [], Loop(step=0, total=3, where="run", kept="kept"))


def test_ctrl_c_reaches_the_hooks_only_at_the_next_step_boundary():
    class CtrlC(Hook):
        def after_step(self, loop):
            if loop.step == 2:
                os.kill(os.getpid(), signal.SIGINT)

    learner, seen, before = Counter(), Seen(), signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        fit(learner, lambda: 0.0, [CtrlC(), seen], Loop(step=0, total=5, where="run"))
    # the hooks after the one that got the signal still ran for step 2; step 3 never started
    assert learner.steps == [1, 2] and seen.after[-1][0] == 2 and seen.interrupts == [(2, True)]
    assert seen.finished_at is None and signal.getsignal(signal.SIGINT) is before


def test_an_interrupt_inside_an_update_reaches_the_hooks_uncounted_and_off_the_boundary():
    class Stops(Counter):
        def update(self, batch, step):
            if step == 3:
                raise KeyboardInterrupt
            return super().update(batch, step)

    seen = Seen()
    with pytest.raises(KeyboardInterrupt):
        fit(Stops(), lambda: 0.0, [seen], Loop(step=0, total=5, where="run"))
    assert seen.interrupts == [(2, False)] and seen.after[-1][0] == 2
