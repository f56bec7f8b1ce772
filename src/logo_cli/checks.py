"""Numeric checks shared by every stage: option values, weights and losses.

- `number()` validates a float option (finite, inside its range), `integer()` an integer option (in
  its range: network sizes are bounded), in one line naming the option.
- `check_finite_weights()` refuses a state dict holding NaN or inf before a model is used or saved.
- `LossGuard` watches the training loss without a device sync per step and stops training with one
  line when it turns non-finite, so the last checkpoint written stays the last good one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from logo_cli.errors import LogoError

# The largest network sizes an option or a file may ask for (checked before anything is allocated).
MAX_WIDTH, MAX_LAYERS, MAX_MEMBERS = 1 << 16, 64, 1024


def integer(option: str, value: int | None, *, lo: int = 1, hi: int | None = None) -> None:
    """Refuse an integer option outside lo..hi (one line naming the option)."""
    if value is None:
        return
    if value < lo or (hi is not None and value > hi):
        bound = f"in {lo}..{hi}" if hi is not None else f"at least {lo}"
        raise LogoError(f"{option} {value}: must be {bound}")


def number(
    option: str,
    value: float | None,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
    allow_none: bool = False,
) -> None:
    """Refuse a float option that is NaN, infinite or outside [lo, hi] (open ends when asked).

    `option` is the flag as the user typed it (e.g. "--lr"); the message names it and the range.
    """
    if value is None:
        if allow_none:
            return
        raise LogoError(f"{option}: a value is required")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise LogoError(f"{option} {value!r}: not a number") from None
    if not math.isfinite(x):
        raise LogoError(f"{option} {value}: must be a finite number{_range_text(lo, hi, lo_open, hi_open)}")
    if (lo is not None and (x < lo or (lo_open and x == lo))) or (
        hi is not None and (x > hi or (hi_open and x == hi))
    ):
        raise LogoError(f"{option} {value}: must be{_range_text(lo, hi, lo_open, hi_open)}")


def _range_text(lo, hi, lo_open: bool, hi_open: bool) -> str:
    if lo is not None and hi is not None:
        return f" in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    if lo is not None:
        return f" {'>' if lo_open else '>='} {lo:g}"
    if hi is not None:
        return f" {'<' if hi_open else '<='} {hi:g}"
    return ""


def nonfinite_tensors(tensors: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> list[str]:
    """Names of floating tensors holding NaN or inf (non-tensors and integer tensors are skipped)."""
    import torch

    items = tensors.items() if isinstance(tensors, Mapping) else tensors
    bad = []
    for name, t in items:
        if isinstance(t, torch.Tensor) and t.is_floating_point() and t.numel():
            if not bool(torch.isfinite(t).all()):
                bad.append(str(name))
    return bad


def check_finite_weights(state_dict: Mapping[str, Any], source: str, skip: Iterable[str] = ()) -> None:
    """One-line LogoError naming `source` when any weight is NaN or inf (names in `skip` may be inf,
    never NaN: e.g. ±inf clipping bounds of checkpoints written before the bounds existed)."""
    import torch

    skip = set(skip)
    bad = nonfinite_tensors((k, v) for k, v in state_dict.items() if k not in skip)
    bad += [
        k
        for k in skip
        if isinstance(state_dict.get(k), torch.Tensor)
        and state_dict[k].is_floating_point()
        and bool(torch.isnan(state_dict[k]).any())
    ]
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise LogoError(f"{source}: weights hold NaN or inf ({shown}); the file is unusable")


class LossGuard:
    """Accumulates "was any loss non-finite" on the loss's device (no sync per step); `check()`
    syncs once and raises a one-line LogoError when a non-finite loss was seen.

    Call `observe(loss)` after every step and `check(...)` wherever a sync is already cheap or
    required: at log steps and before every checkpoint, so a checkpoint never holds the weights of a
    diverged run. Floats (already synced losses) are checked at once.
    """

    def __init__(self) -> None:
        self._bad = None  # a bool tensor on the loss's device, or a python bool
        self.first_step: int | None = None

    def observe(self, loss: Any, step: int) -> None:
        import torch

        if isinstance(loss, torch.Tensor):
            flag = ~torch.isfinite(loss.detach()).all()
            self._bad = flag if self._bad is None else (self._bad | flag)
        elif not math.isfinite(float(loss)):
            self._bad = True
        if self.first_step is None:
            self.first_step = step

    def check(self, step: int, work: str, kept: str) -> None:
        """Raise when a non-finite loss was observed since the last check (`work`: the run, `kept`:
        what survives, both for the message)."""
        bad, since = self._bad, self.first_step
        self._bad, self.first_step = None, None
        if bad is None or not bool(bad):
            return
        raise LogoError(
            f"{work}: the training loss became NaN or inf between steps {since} and {step}; "
            f"training stopped, {kept} (lower --lr, or check the data for extreme values)"
        )


def check_state_shapes(
    expected: Mapping[str, Any], found: Mapping[str, Any], source: str, what: str, context: str = ""
) -> None:
    """One-line LogoError naming `source` when the tensors of `found` (a checkpoint's state dict) do not
    have the names and shapes of `expected` (the declared network's, e.g. built on the meta device):
    "`what` (`context`; first difference: NAME [file shape] in the file vs [declared shape])"."""
    shapes = {k: tuple(v.shape) for k, v in expected.items()}
    have = {k: tuple(v.shape) for k, v in found.items()}
    if shapes == have:
        return
    diff = sorted(set(shapes) ^ set(have)) or [k for k in shapes if shapes[k] != have[k]]
    lead = f"{context}; " if context else ""
    raise LogoError(
        f"{source}: {what} ({lead}first difference: {diff[0]} {list(have.get(diff[0], ()))} in the file "
        f"vs {list(shapes.get(diff[0], ()))})"
    )
