"""Build a world model by kind, and turn it into / back from a weights-only checkpoint payload.

Payload format (plain data for `torch.load(weights_only=True)`):
  {"format": "logo-world-model", "version": 1, "kind": "logo"|"global"|"ensemble"|"oracle",
   "dims": Dims.to_dict(), "hparams": {...}, "state_dict": {...}  (normaliser stats included as buffers),
   "normalizer": {name: {"mean": [...], "std": [...]}}  (a readable copy), "meta": {...}}
"""

from __future__ import annotations

from typing import Literal, get_args

import torch

from logo_cli.checks import MAX_LAYERS, MAX_MEMBERS
from logo_cli.checks import MAX_WIDTH as MAX_HIDDEN
from logo_cli.choices import WorldModelKind, values
from logo_cli.data.transitions import Dims
from logo_cli.errors import LogoError
from logo_cli.models.ensemble_model import EnsembleModel
from logo_cli.models.global_model import DirectModel
from logo_cli.models.layers import param_count
from logo_cli.models.logo_model import LogoWorldModel
from logo_cli.models.oracle_model import OracleModel
from logo_cli.models.wm_base import Prediction, WorldModelBase

WORLD_MODEL_FORMAT = "logo-world-model"
_BOUNDS = {"state_lo", "state_hi", "obs_lo", "obs_hi"}
WORLD_MODEL_VERSION = 1  # the checkpoint format version (also written as "format_version")
Kind = Literal["logo", "global", "ensemble", "oracle"]
KINDS: dict[str, type[WorldModelBase]] = {
    "logo": LogoWorldModel,
    "global": DirectModel,
    "ensemble": EnsembleModel,
    "oracle": OracleModel,  # the real simulator (SMAX), no weights
}
if set(KINDS) != set(values(WorldModelKind)) or set(get_args(Kind)) != set(KINDS):
    raise ImportError("models.world_model.KINDS disagrees with logo_cli.choices.WorldModelKind")

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
    latent, dec_layers, share_local, ded_delta, arch (concat | pooled), local_action, switch_gates,
    avail_from, nll_beta, uncertainty; ensemble also members, elites. Unknown names raise
    ValueError (logo, global) or TypeError."""
    if kind not in KINDS:
        raise ValueError(f"unknown world model kind {kind!r} (expected one of {', '.join(KINDS)})")
    return KINDS[kind](dims, **hparams)


def world_model_payload(model: WorldModelBase, meta: dict | None = None) -> dict:
    """Everything needed to rebuild `model` (weights on CPU)."""
    norms = {name: mod.stats() for name, mod in model.named_children() if name.startswith("norm_")}
    return {
        "format": WORLD_MODEL_FORMAT,
        "format_version": WORLD_MODEL_VERSION,
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
    is not a world-model checkpoint, declares another format version, holds non-finite weights, or
    its weights do not fit its declared kind/dims/hparams.

    Sizes are checked before anything is allocated: hparams are bounded, and the declared model is
    first built on the meta device (no memory) and compared with the file's tensor shapes, so the
    real model is exactly as large as the weights already in memory. A LOGO checkpoint written
    before `layers` became the depth of each encoder->decoder path (its encoders then had `layers`
    hidden layers) is converted: it loads with layers + dec_layers, recorded in meta."""
    from logo_cli.artifacts import check_format_version, format_version
    from logo_cli.checks import check_finite_weights

    if not isinstance(payload, dict) or payload.get("format") != WORLD_MODEL_FORMAT:
        raise LogoError(f"{source}: not a logo world-model checkpoint")
    check_format_version(
        format_version(payload, "version"), WORLD_MODEL_VERSION, "world-model checkpoint", source
    )
    try:
        dims = Dims.from_dict(payload["dims"])
        kind = payload["kind"]
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r} (expected one of {', '.join(KINDS)})")
        hparams = payload["hparams"]
        if not isinstance(hparams, dict):
            raise ValueError("hparams is not an object")
        _check_sizes(hparams)
        if kind == "logo" and "local_action" not in hparams:
            # written before `local_action` existed, when every local model saw the joint action
            hparams = {**hparams, "local_action": "joint"}
        state = payload["state_dict"]
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise ValueError("state_dict is not a mapping of tensors")
    except (KeyError, TypeError, ValueError) as e:
        raise LogoError(f"{source}: garbled world-model checkpoint ({_first(e)})") from None
    check_finite_weights(state, source, skip=_BOUNDS)
    _check_buffers(state, hparams, source)
    diff = _layout_diff(kind, dims, hparams, state, source)
    converted = None
    if diff and kind == "logo" and isinstance(hparams.get("layers"), int):
        legacy = {**hparams, "layers": hparams["layers"] + int(hparams.get("dec_layers", 1))}
        if not _layout_diff(kind, dims, legacy, state, source):
            hparams, diff, converted = (
                legacy,
                [],
                {"layers": [payload["hparams"]["layers"], legacy["layers"]]},
            )
    if diff:
        version = format_version(payload, "version")
        raise LogoError(
            f"{source}: world-model checkpoint does not fit the {kind} model it declares (format version "
            f"{version}; {'; '.join(diff)}); written by another version of logo-cli? retrain it with "
            "`logo pretrain --overwrite`"
        )
    try:
        model = build_world_model(kind, dims, **hparams)
        model.load_state_dict({**model.state_dict(), **state})
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise LogoError(f"{source}: world-model checkpoint does not load ({_first(e)})") from None
    if converted is not None:
        model.hp["converted_from_legacy_layers"] = converted["layers"]
    return model.eval()


def _first(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__


def _check_sizes(hparams: dict) -> None:
    """Bound every size a checkpoint declares before any model (even a meta one) is built."""
    bounds = {
        "hidden": MAX_HIDDEN,
        "latent": MAX_HIDDEN,
        "pool_rank": MAX_HIDDEN,
        "layers": MAX_LAYERS,
        "dec_layers": MAX_LAYERS,
    }
    bounds.update(members=MAX_MEMBERS, elites=MAX_MEMBERS)
    for key, top in bounds.items():
        if key in hparams:
            v = hparams[key]
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= top:
                raise ValueError(f"hparams.{key} {v!r} is not an integer in 1..{top}")


def _layout_diff(kind: str, dims: Dims, hparams: dict, state: dict, source: str) -> list[str]:
    """What differs between the file's tensors and the model its kind/dims/hparams declare."""
    try:
        with torch.device("meta"):  # shapes only: nothing is allocated
            expected = {
                k: tuple(v.shape) for k, v in build_world_model(kind, dims, **hparams).state_dict().items()
            }
    except (TypeError, ValueError) as e:
        raise LogoError(f"{source}: garbled world-model checkpoint ({_first(e)})") from None
    missing = sorted(set(expected) - set(state) - _BOUNDS)  # older files: no bounds (loads unclipped)
    unexpected = sorted(set(state) - set(expected))
    shapes = [
        f"{k} {list(state[k].shape)} in the file vs {list(expected[k])}"
        for k in sorted(set(expected) & set(state))
        if tuple(state[k].shape) != expected[k]
    ]
    diff = []
    for label, names in (
        ("missing weights", missing),
        ("unexpected weights", unexpected),
        ("weights of another shape", shapes),
    ):
        if names:
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            diff.append(f"{len(names)} {label}: {shown}")
    return diff


def _check_buffers(state: dict, hparams: dict, source: str) -> None:
    """Normaliser scales must be positive, clipping bounds ordered, elite indices integers."""
    for key, value in state.items():
        if key.endswith(".std") and value.is_floating_point() and bool((value <= 0).any()):
            raise LogoError(f"{source}: normaliser scale {key} holds values <= 0; the file is unusable")
    for name in ("state", "obs"):
        lo, hi = state.get(f"{name}_lo"), state.get(f"{name}_hi")
        if lo is not None and hi is not None and lo.shape == hi.shape and bool((lo > hi).any()):
            raise LogoError(f"{source}: clipping bounds {name}_lo > {name}_hi; the file is unusable")
    elite = state.get("elite_idx")
    if elite is not None:
        members = hparams.get("members", 1)
        if elite.is_floating_point() or elite.is_complex() or (elite.numel() and (
            int(elite.min()) < 0 or int(elite.max()) >= members
        )):  # fmt: skip
            raise LogoError(
                f"{source}: elite_idx is not a list of members 0..{members - 1}; the file is unusable"
            )


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
