"""pretrain's training: the world model's Adam steps on train/loop.fit, and its hooks.

Per step, in this order: the loss is checked (a float: at once) and a "train" line written every
`log_every` steps (`TrainLines`: this step's losses, not a window mean, so a resumed run logs the same
numbers, and the steps per second of wall-clock time since the previous line); at the end of every
epoch and of the run the held-out evaluation (`HeldOut`: the held-out loss, by which the ensemble also
picks its elites; the best weights so far; early stopping after `patience` evaluations without
improvement; an "eval" line; a checkpoint); then the progress report (`Report`). Every hook leaves a
consistent state after each part of a step, so any KeyboardInterrupt but a second Ctrl-C saves a
checkpoint of the steps done, and rerunning the command resumes exactly.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from logo_cli.errors import LogoError
from logo_cli.train.hooks import Records
from logo_cli.train.loop import Hook, Loop, fit


class WorldModelRun:
    """What a pretrain run changes as it trains (weights, optimiser, minibatch generator, the counters
    `t`, the best weights, the evaluations), with its checkpoint round trip. `header`: the
    checkpoint's fixed fields (format, config, dims, data hash, kind, hparams)."""

    def __init__(self, model, lr: float, seed: int, header: dict):
        self.model, self.header = model, header
        self.opt = torch.optim.Adam(model.parameters(), lr=lr)
        self.gen = torch.Generator().manual_seed(seed)
        self.t = {"step": 0, "best_score": math.inf, "best_step": 0, "bad_evals": 0, "train_seconds": 0.0}
        self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.history: list[dict] = []

    def update(self, batch: dict, step: int) -> dict[str, float]:
        from logo_cli.algos.world_model_train import train_step  # looked up per call: tests stub it

        return train_step(self.model, self.opt, batch)

    def state(self) -> dict:
        return {
            **self.header,
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "generator": self.gen.get_state(),
            "trainer": dict(self.t),
            "best_state": self.best_state,
            "history": self.history,
        }

    def restore(self, state: dict, source: Path) -> None:
        try:
            self.model.load_state_dict(state["best_state"])  # loaded at the end: check it fits now
            self.model.load_state_dict(state["model"])
            self.opt.load_state_dict(state["optimizer"])
            self.gen.set_state(state["generator"])
            self.t.update(state["trainer"])
            self.best_state = state["best_state"]
            self.history = list(state["history"])
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            detail = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            raise LogoError(f"{source}: garbled pretrain checkpoint ({detail})") from None


class TrainLines(Hook):
    def __init__(self, every: int, records: Records):
        self.every, self.records = every, records
        self.n, self.tick = 0, time.perf_counter()

    def after_step(self, loop: Loop) -> None:
        loop.check_loss()
        self.n += 1
        if loop.step % self.every == 0 or loop.step == loop.total:
            now = time.perf_counter()
            values = {k: float(v) for k, v in loop.parts.items()}
            values["steps_per_s"] = self.n / max(now - self.tick, 1e-9)
            self.records.write("train", loop.step, values)
            self.n, self.tick = 0, now


class HeldOut(Hook):
    def __init__(self, run: WorldModelRun, held: dict | None, per_epoch: int, patience: int, save,
                 records: Records):  # fmt: skip
        self.run, self.held, self.per_epoch, self.patience, self.save = run, held, per_epoch, patience, save
        self.records = records
        self.running, self.n_running, self.tick = 0.0, 0, time.perf_counter()

    def after_step(self, loop: Loop) -> None:
        t = self.run.t
        t["step"] = loop.step
        self.running, self.n_running = self.running + loop.parts["loss"], self.n_running + 1
        if loop.step % self.per_epoch == 0 or loop.step == loop.total:
            t["train_seconds"] += time.perf_counter() - self.tick
            self.evaluate(self.running / self.n_running, loop)
            self.running, self.n_running, self.tick = 0.0, 0, time.perf_counter()
            loop.stop = t["bad_evals"] >= self.patience

    def evaluate(self, train_loss: float, loop: Loop) -> None:
        from logo_cli.algos.world_model_train import heldout_loss
        from logo_cli.models.ensemble_model import EnsembleModel

        r, t = self.run, self.run.t
        if self.held is not None:
            score, member = heldout_loss(r.model, self.held)
            if member is not None and isinstance(r.model, EnsembleModel):
                r.model.set_elites(torch.tensor(member))
        else:  # nothing held out: keep the latest weights
            score = -float(t["step"])
        if not math.isfinite(score):
            raise LogoError(f"{loop.where}: the held-out loss became NaN or inf at step {t['step']}; "
                            f"training stopped, {loop.kept} (lower --lr)")  # fmt: skip
        r.history.append({"step": t["step"], "train_loss": train_loss, "heldout_loss": score})
        if score < t["best_score"] - 1e-4:
            t.update(best_score=score, best_step=t["step"], bad_evals=0)
            r.best_state = {k: v.detach().clone() for k, v in r.model.state_dict().items()}
        else:
            t["bad_evals"] += 1
        if self.held is not None:
            values = {"train_loss": train_loss, "heldout_loss": score, "best_heldout_loss": t["best_score"]}
            self.records.write("eval", t["step"], values)
        self.save(loop)

    def interrupted(self, loop: Loop, boundary: bool) -> None:
        if self.n_running:
            self.run.t["train_seconds"] += time.perf_counter() - self.tick
        self.save(loop)  # resume continues from this exact step


class Report(Hook):
    def __init__(self, progress, held: HeldOut):
        self.progress, self.held = progress, held

    def after_step(self, loop: Loop) -> None:
        held, t = self.held, self.held.run.t
        if loop.step % 10 == 0 or held.n_running == 0:  # and right after an evaluation
            busy = t["train_seconds"] + time.perf_counter() - held.tick
            info = {"loss": loop.parts["loss"], "steps_per_s": t["step"] / max(busy, 1e-9)}
            if held.run.history:
                info.update(heldout=held.run.history[-1]["heldout_loss"], best=t["best_score"])
            self.progress(loop.step, loop.total, info)


def train_world_model(r: WorldModelRun, tr: dict, held: dict | None, cfg, total: int, per_epoch: int,
                      checkpoint: Path, records: Records, kept: str, progress) -> Loop:  # fmt: skip
    """Train `r` from its step to `total` (or early stopping), checkpointing into `checkpoint`."""
    from logo_cli.algos.world_model_train import draw_batch
    from logo_cli.artifacts import save_checkpoint
    from logo_cli.checks import nonfinite_tensors

    def save(loop: Loop) -> None:
        records.flush()  # the lines up to the checkpoint step are on disk before it
        r.t["step"] = loop.step
        bad = nonfinite_tensors(r.model.state_dict())
        if bad:  # never checkpoint a diverged model: the one on disk stays the last good one
            raise LogoError(f"{cfg.out}: weights became NaN or inf ({bad[0]}) at step {loop.step}; "
                            f"training stopped, {kept} (lower --lr)")  # fmt: skip
        save_checkpoint(checkpoint, r.state())

    loop = Loop(step=int(r.t["step"]), total=total, where=str(cfg.out), kept=kept)
    loop.stop = r.t["bad_evals"] >= cfg.patience
    held_out = HeldOut(r, held, per_epoch, cfg.patience, save, records)
    hooks: list[Hook] = [TrainLines(cfg.log_every, records), held_out]
    if progress is not None:
        hooks.append(Report(progress, held_out))
    batch_size = cfg.batch_size
    fit(r, lambda: draw_batch(tr, batch_size, r.gen), hooks, loop)
    return loop
