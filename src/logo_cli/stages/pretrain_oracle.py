"""`logo pretrain --kind oracle`: a run directory for the real simulator as a world model.

Nothing is trained. The run records the simulator and scenario (from the dataset's `env`
attribute), the normalisers fitted on the dataset (the units of corruption noise and of every error
metric), and a fidelity check on dataset rows: the oracle's one-step error against the recorded
next step, beside the error between two draws of the simulator itself (its own randomness: enemy
choices and weapon cooldowns). An oracle that rebuilds states correctly has the first about equal to
the second. The run is written like any pretrain run (model.pt, metrics.jsonl, manifest.json last),
so rollout, train-policy, calibrate and the workspace take it as they take a trained model.
"""

from __future__ import annotations

import json
import time

import numpy as np
import torch

from logo_cli.errors import LogoError

CHECK_ROWS = 2000  # dataset rows stepped for the fidelity check


def fidelity(model, data, seed: int, rows: int = CHECK_ROWS) -> dict:
    """One-step errors of the oracle on up to `rows` dataset rows, in the model's normalised units,
    against the data and against a second draw of the simulator."""
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.permutation(len(data))[: min(rows, len(data))])
    part = data.select(idx)
    state, obs = torch.as_tensor(part.state), torch.as_tensor(part.obs)
    actions = torch.as_tensor(part.actions)
    gen = torch.Generator().manual_seed(int(seed))
    a = model.predict(state, obs, actions, generator=gen)
    b = model.predict(state, obs, actions, generator=gen)

    def rmse(x: torch.Tensor, y: torch.Tensor, norm) -> float:
        return float((((x - y) / norm.std) ** 2).mean().sqrt())

    ns, no = torch.as_tensor(part.next_state), torch.as_tensor(part.next_obs)
    na = torch.as_tensor(part.next_avail_actions)
    return {
        "check_rows": len(idx),
        "state_rmse": rmse(a.next_state, ns, model.norm_state),
        "state_rmse_self": rmse(a.next_state, b.next_state, model.norm_state),
        "obs_rmse": rmse(a.next_obs, no, model.norm_obs),
        "obs_rmse_self": rmse(a.next_obs, b.next_obs, model.norm_obs),
        "avail_mismatch": float((a.next_avail != na).float().mean()),
        "avail_mismatch_self": float((a.next_avail != b.next_avail).float().mean()),
        "reward_mae": float((a.reward - torch.as_tensor(part.reward)).abs().mean()),
        "terminated_agreement": float(
            ((a.terminated_prob > 0.5) == torch.as_tensor(part.terminated)).float().mean()
        ),
    }


def run_oracle(cfg):
    """Write the oracle run for `cfg` (a PretrainConfig with model "oracle") into cfg.out."""
    from logo_cli.artifacts import MANIFEST, file_hash
    from logo_cli.data.h5 import open_dataset
    from logo_cli.models.world_model import build_world_model
    from logo_cli.outputs import remove, swap_in
    from logo_cli.stages.pretrain import METRICS, MODEL, PretrainResult, write_run
    from logo_cli.stages.pretrain_config import prepare_out

    started = time.perf_counter()
    with open_dataset(cfg.data) as ds:
        dims = ds.dims
        env = ds.attrs.get("env")
        noop = int(ds.attrs.get("noop_action", 0) or 0) if dims.discrete else 0
        data = ds.transitions()
    if not env:
        raise LogoError(f"--data {cfg.data}: no 'env' attribute; the oracle needs to know the simulator")
    if len(data) == 0:
        raise LogoError(f"--data {cfg.data}: no transitions")
    try:
        model = build_world_model("oracle", dims, env=str(env), noop_action=noop)
    except ValueError as e:
        raise LogoError(f"--kind oracle on {cfg.data}: {e}") from None
    model.stepper()  # refuses a scenario or dims it cannot rebuild, before anything is written
    model.fit_normalizers(data.to_torch())
    resume, work = prepare_out(cfg)
    if resume is not None:
        raise LogoError(f"{cfg.out}: holds an unfinished trained run; pass --overwrite to replace it")
    fresh = not work.exists()
    try:
        work.mkdir(parents=True, exist_ok=True)
        metrics = {"train_steps": 0, "parameters": 0, "n_train": len(data), **fidelity(model, data, cfg.seed)}
        with open(work / METRICS, "w") as log:
            log.write(json.dumps({"kind": "final", "step": 0, **metrics}) + "\n")
        extra = {"hparams": dict(model.hp), "env": str(env), "history": []}
        write_run(cfg, work, model, dims, file_hash(cfg.data), metrics, extra, started, (0, 0))
    except BaseException:
        if fresh:
            remove(work)
        else:  # a folder that was there before (empty, or a dead run's logs): only what was written
            for name in (METRICS, MODEL, MANIFEST):
                (work / name).unlink(missing_ok=True)
        raise
    if work != cfg.out:
        swap_in(work, cfg.out, "pretrain", overwrite=True)
    return PretrainResult(cfg.out, "oracle", metrics, 0, 0, False, None)
