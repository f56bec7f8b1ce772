"""The values of every enumerated option, as Enum types: the commands declare their options with
them (so click validates a value and shell completion offers the values), and the stages and models
that define these choices take their lists from here.

Spelling: choice values are lower case, words joined by `-` (`real-only`); dataset qualities keep
their `_` (`medium_replay`), since they are data names (file names, the `quality` attribute of a
dataset). Old spellings of a value are accepted with a note (logo_cli/deprecated.py).
"""

from __future__ import annotations

from enum import Enum


class Choice(str, Enum):
    """An option's value: compares equal to its text and prints as it (`f"{mode}"` is `weight`)."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


def values(choice: type[Choice]) -> tuple[str, ...]:
    """The values of a choice, in their order."""
    return tuple(member.value for member in choice)


class Quality(Choice):
    expert = "expert"
    medium = "medium"
    medium_replay = "medium_replay"
    mixed = "mixed"
    random = "random"


class WorldModelKind(Choice):
    logo = "logo"
    global_ = "global"
    ensemble = "ensemble"
    oracle = "oracle"


class Termination(Choice):
    sample = "sample"
    threshold = "threshold"


class SamplerMode(Choice):
    weight = "weight"
    penalty = "penalty"
    uniform = "uniform"
    real_only = "real-only"


class WeightBy(Choice):
    cumulative = "cumulative"
    step = "step"


class CqlSynthetic(Choice):
    data = "data"
    combo = "combo"
    none = "none"


class ConvertSource(Choice):
    omiga = "omiga"
    ogmarl = "ogmarl"


class LocalAction(Choice):
    joint = "joint"
    own = "own"


class AvailFrom(Choice):
    state = "state"
    obs = "obs"


class Uncertainty(Choice):
    disagreement = "disagreement"
    total = "total"


class LogoArch(Choice):
    concat = "concat"
    pooled = "pooled"


class Agent(Choice):
    mlp = "mlp"
    gru = "gru"


class Logger(Choice):
    none = "none"
    tensorboard = "tensorboard"
    wandb = "wandb"
