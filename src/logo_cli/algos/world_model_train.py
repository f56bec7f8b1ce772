"""Training and held-out evaluation of the world models, as functions of (model, tensors).

Minibatches are drawn with replacement by a dedicated torch.Generator whose state is checkpointed,
so a run resumed at any step draws exactly the batches the uninterrupted run would have drawn.
"""

from __future__ import annotations

import numpy as np
import torch

from logo_cli.models.ensemble_model import EnsembleModel
from logo_cli.models.global_model import DirectModel
from logo_cli.models.wm_base import WorldModelBase

Batch = dict[str, torch.Tensor]


def draw_batch(data: Batch, batch_size: int, generator: torch.Generator) -> Batch:
    n = data["state"].shape[0]
    idx = torch.randint(n, (batch_size,), generator=generator, device=generator.device)
    idx = idx.to(data["state"].device)
    return {k: v[idx] for k, v in data.items()}


def train_step(model: WorldModelBase, optimizer: torch.optim.Optimizer, batch: Batch) -> dict[str, float]:
    """One Adam step on the model's total loss; returns the loss parts and the total."""
    model.train()
    total, parts = model.loss(batch)
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    return {"loss": float(total.detach()), **parts}


def _chunks(data: Batch, chunk: int):
    n = data["state"].shape[0]
    for lo in range(0, n, chunk):
        yield {k: v[lo : lo + chunk] for k, v in data.items()}


@torch.no_grad()
def heldout_loss(model: WorldModelBase, data: Batch, chunk: int = 4096) -> tuple[float, list[float] | None]:
    """(early-stopping score, per-member losses or None).

    The score is the mean total loss; for the ensemble it is the mean over its K best members (its
    elites), as OfflineRL-Kit scores an ensemble, and the per-member losses choose those elites.
    """
    model.eval()
    n = data["state"].shape[0]
    if isinstance(model, DirectModel):
        member = torch.zeros(model.members, dtype=torch.float64)
        for part in _chunks(data, chunk):
            member += model.member_losses(part)[0].double().cpu() * part["state"].shape[0]
        member /= max(n, 1)
        if isinstance(model, EnsembleModel):
            k = model.elite_idx.shape[0]
            return float(member.sort().values[:k].mean()), member.tolist()
        return float(member.mean()), None
    total = 0.0
    for part in _chunks(data, chunk):
        total += float(model.loss(part)[0]) * part["state"].shape[0]
    return total / max(n, 1), None


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if a.size < 3 or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    return float(spearmanr(a, b).statistic)


@torch.no_grad()
def heldout_metrics(model: WorldModelBase, data: Batch, chunk: int = 4096) -> dict[str, float]:
    """One-step accuracy of `predict` (mean, no sampling) on held-out transitions.

    "_norm" errors divide by the training-data std of the state (obs) features, so they are unitless
    and comparable across scenarios; `uncertainty_spearman` ranks the model's uncertainty against
    the per-transition normalised next-state RMSE.
    """
    model.eval()
    sums = dict.fromkeys(["state", "state_n", "obs", "obs_n", "still_n", "still_obs_n", "rew"], 0.0)
    term_ok = avail_ok = avail_n = 0.0
    errs, uncs = [], []
    n = data["state"].shape[0]
    for part in _chunks(data, chunk):
        p = model.predict(part["state"], part["obs"], part["actions"])
        ds = p.next_state - part["next_state"]
        do = p.next_obs - part["next_obs"]
        ds_n = ds / model.norm_state.std
        sums["state"] += float(ds.pow(2).mean(-1).sum())
        sums["state_n"] += float(ds_n.pow(2).mean(-1).sum())
        sums["still_n"] += float(
            ((part["state"] - part["next_state"]) / model.norm_state.std).pow(2).mean(-1).sum()
        )
        sums["obs"] += float(do.pow(2).flatten(1).mean(-1).sum())
        sums["obs_n"] += float((do / model.norm_obs.std).pow(2).flatten(1).mean(-1).sum())
        still_obs = (part["obs"] - part["next_obs"]) / model.norm_obs.std
        sums["still_obs_n"] += float(still_obs.pow(2).flatten(1).mean(-1).sum())
        sums["rew"] += float((p.reward - part["reward"]).abs().sum())
        term_ok += float(((p.terminated_prob > 0.5) == part["terminated"].bool()).sum())
        if model.dims.discrete:
            avail_ok += float((p.next_avail == part["next_avail_actions"].bool()).sum())
            avail_n += p.next_avail.numel()
        errs.append(ds_n.pow(2).mean(-1).sqrt().cpu().numpy())
        uncs.append(p.uncertainty.cpu().numpy())
    n = max(n, 1)
    err, unc = (np.concatenate(errs), np.concatenate(uncs)) if errs else (np.zeros(0), np.zeros(0))
    return {
        "n_heldout": int(data["state"].shape[0]),
        "next_state_rmse": (sums["state"] / n) ** 0.5,
        "next_state_rmse_norm": (sums["state_n"] / n) ** 0.5,
        "no_change_state_rmse_norm": (sums["still_n"] / n) ** 0.5,
        "next_obs_rmse": (sums["obs"] / n) ** 0.5,
        "next_obs_rmse_norm": (sums["obs_n"] / n) ** 0.5,
        "no_change_obs_rmse_norm": (sums["still_obs_n"] / n) ** 0.5,
        "reward_mae": sums["rew"] / n,
        "termination_accuracy": term_ok / n,
        "avail_accuracy": avail_ok / avail_n if avail_n else float("nan"),
        "uncertainty_mean": float(unc.mean()) if unc.size else float("nan"),
        "uncertainty_spearman": _spearman(unc, err),
    }
