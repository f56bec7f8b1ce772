"""An interrupted pretrain run resumed from its checkpoint ends with exactly the weights of an
uninterrupted run (same seed), whether it was stopped by an exception or by Ctrl-C (SIGINT)."""

from __future__ import annotations

import os
import signal

import pytest
import torch
from test_models_dynamics import NOOP, episodes

from logo_cli.artifacts import load_checkpoint
from logo_cli.data.h5 import write_dataset
from logo_cli.stages.pretrain import CHECKPOINT, MODEL, PretrainConfig, run


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("resume") / "toy_medium.h5"
    write_dataset(path, episodes(30, seed=2), {"noop_action": NOOP})
    return path


def config(data, out, kind: str) -> PretrainConfig:
    # patience 2 with several evaluations: early-stopping state must survive the interruption too
    return PretrainConfig(
        data=data,
        out=out,
        model=kind,
        hidden=24,
        latent=8,
        batch_size=32,
        max_steps=60,
        patience=2,
        members=3,
        elites=2,
        lr=3e-3,
        seed=1,
    )


def weights(run_dir) -> dict:
    return load_checkpoint(run_dir / MODEL)["state_dict"]


@pytest.mark.parametrize("kind", ["logo", "ensemble"])
@pytest.mark.parametrize("how", ["exception", "sigint"])
def test_resumed_run_equals_uninterrupted_run(data, tmp_path, kind, how):
    full = run(config(data, tmp_path / "full", kind))

    def interrupt(step, total, info):
        if step == 20:
            if how == "sigint":
                os.kill(os.getpid(), signal.SIGINT)  # deferred: honoured at the next step boundary
            else:
                raise KeyboardInterrupt

    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        run(config(data, cut, kind), progress=interrupt)
    state = load_checkpoint(cut / CHECKPOINT)
    assert state["trainer"]["step"] == 20 and not (cut / MODEL).exists()
    resumed = run(config(data, cut, kind))
    assert resumed.resumed_from == 20
    assert (resumed.steps, resumed.best_step, resumed.stopped_early) == (
        full.steps,
        full.best_step,
        full.stopped_early,
    )
    a, b = weights(tmp_path / "full"), weights(cut)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert resumed.metrics["next_state_rmse"] == full.metrics["next_state_rmse"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
