"""Corruption levels as plain data (no torch): the `Corruption` record, and `CorruptionLevels`, the
five flat config fields that the rollout and train-policy configs inherit. What they do is in
models/corruption.py."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from logo_cli.errors import LogoError


@dataclass(frozen=True)
class Corruption:
    obs_noise: float = 0.0
    state_noise: float = 0.0
    avail_flip: float = 0.0
    switch_flip: float = 0.0
    reward_noise: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if not np.isfinite(v) or v < 0:
                raise LogoError(f"--{f.name.replace('_', '-')} {v}: must be a finite number >= 0")
        for name in ("avail_flip", "switch_flip"):
            if getattr(self, name) > 1:
                raise LogoError(f"--{name.replace('_', '-')} {getattr(self, name)}: a probability, at most 1")

    @property
    def active(self) -> bool:
        return any(getattr(self, f.name) > 0 for f in fields(self))

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class CorruptionLevels:
    """The corruption levels as config fields (all 0: none), shared by the stages' configs."""

    obs_noise: float = 0.0
    state_noise: float = 0.0
    avail_flip: float = 0.0
    switch_flip: float = 0.0
    reward_noise: float = 0.0

    @property
    def corruption(self) -> Corruption:
        return Corruption(**{f.name: getattr(self, f.name) for f in fields(Corruption)})
