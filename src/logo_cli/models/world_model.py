"""Build a world model by kind, and turn it into / back from a weights-only checkpoint payload.

Payload format (plain data for `torch.load(weights_only=True)`):
  {"format": "logo-world-model", "version": 1, "kind": "logo"|"global"|"ensemble",
   "dims": Dims.to_dict(), "hparams": {...}, "state_dict": {...}  (normaliser stats included as buffers),
   "normalizer": {name: {"mean": [...], "std": [...]}}  (a readable copy), "meta": {...}}
"""

from __future__ import annotations

from typing import Literal

import torch

from logo_cli.data.transitions import Dims
from logo_cli.errors import LogoError
from logo_cli.models.ensemble_model import EnsembleModel
from logo_cli.models.global_model import DirectModel
from logo_cli.models.layers import param_count
from logo_cli.models.logo_model import LogoWorldModel
from logo_cli.models.wm_base import Prediction, WorldModelBase

WORLD_MODEL_FORMAT = "logo-world-model"
_BOUNDS = {"state_lo", "state_hi", "obs_lo", "obs_hi"}
WORLD_MODEL_VERSION = 1
Kind = Literal["logo", "global", "ensemble"]
KINDS: dict[str, type[WorldModelBase]] = {
    "logo": LogoWorldModel,
    "global": DirectModel,
    "ensemble": EnsembleModel,
}

__all__ = [
    "KINDS",
    "Kind",
    "Prediction",
    "WorldModelBase",
    "build_world_model",
    "hidden_for_param_count",
    "param_count",
    "world_model_from_checkpoint",
    "world_model_payload",
]


def build_world_model(kind: Kind, dims: Dims, **hparams) -> WorldModelBase:
    """A fresh model. hparams: hidden, layers, noop_action, clip and loss weights w_*; logo also
    latent, dec_layers, share_local, ded_delta; ensemble also members, elites. Unknown names raise
    ValueError (logo, global) or TypeError."""
    if kind not in KINDS:
        raise ValueError(f"unknown world model kind {kind!r} (expected one of {', '.join(KINDS)})")
    return KINDS[kind](dims, **hparams)


def world_model_payload(model: WorldModelBase, meta: dict | None = None) -> dict:
    """Everything needed to rebuild `model` (weights on CPU)."""
    norms = {name: mod.stats() for name, mod in model.named_children() if name.startswith("norm_")}
    return {
        "format": WORLD_MODEL_FORMAT,
        "version": WORLD_MODEL_VERSION,
        "kind": model.kind,
        "dims": model.dims.to_dict(),
        "hparams": dict(model.hp),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "normalizer": norms,
        "meta": meta or {},
    }


def world_model_from_checkpoint(payload: dict, source: str = "world model") -> WorldModelBase:
    """Rebuild a model from `world_model_payload` output; one-line LogoError naming `source` if it
    is not a world-model checkpoint or its weights do not fit its declared kind/dims/hparams."""
    if not isinstance(payload, dict) or payload.get("format") != WORLD_MODEL_FORMAT:
        raise LogoError(f"{source}: not a logo world-model checkpoint")
    if payload.get("version") != WORLD_MODEL_VERSION:
        raise LogoError(f"{source}: world-model format version {payload.get('version')} is not 1")
    try:
        dims = Dims.from_dict(payload["dims"])
        model = build_world_model(payload["kind"], dims, **payload["hparams"])
        # Checkpoints written before the data bounds existed load without clipping (bounds ±inf).
        missing = set(model.state_dict()) - set(payload["state_dict"]) - _BOUNDS
        if missing:
            raise ValueError(f"missing weights {sorted(missing)[:3]}")
        model.load_state_dict({**model.state_dict(), **payload["state_dict"]})
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise LogoError(
            f"{source}: world-model checkpoint does not fit its declared model ({first})"
        ) from None
    return model.eval()


def hidden_for_param_count(kind: Kind, dims: Dims, target: int, **hparams) -> int:
    """The hidden width (multiple of 8) whose parameter count is closest to `target`, other hparams
    fixed: how a baseline "of similar size" to a LOGO model is built."""

    def count(h: int) -> int:
        with torch.device("meta"):  # no memory, no init cost
            return param_count(build_world_model(kind, dims, **{**hparams, "hidden": h}))

    lo, hi = 8, 8
    while count(hi) < target and hi < 1 << 16:
        lo, hi = hi, hi * 2
    while hi - lo > 8:
        mid = (lo + hi) // 2 // 8 * 8
        lo, hi = (mid, hi) if count(mid) < target else (lo, mid)
    return min((lo, hi), key=lambda h: abs(count(h) - target))
