"""The train-policy learners by (algo, action kind, agent kind): `--algo`, the dataset's actions
("discrete" or "continuous") and `--agent` ("mlp" or "gru").

Torch-free on purpose: the command line reads the algorithm names from here for `--help` without
importing torch; a learner's module is imported only when a run builds it.
"""

from __future__ import annotations

import importlib
from typing import Any

Key = tuple[str, str, str]  # (algo, action kind, agent kind)

# key -> "module in train/learners:class"
LEARNERS: dict[Key, str] = {
    ("macql", "discrete", "mlp"): "macql:MacqlLearner",
    ("macql", "continuous", "mlp"): "actor_critic:ContinuousCqlLearner",
    ("macql", "discrete", "gru"): "recurrent:RecurrentMacqlLearner",
    ("cfcql", "discrete", "mlp"): "cfcql:CfcqlLearner",
    ("cfcql", "discrete", "gru"): "recurrent:RecurrentCfcqlLearner",
    ("bc", "discrete", "mlp"): "bc:BcLearner",
    ("bc", "continuous", "mlp"): "bc:GaussianBcLearner",
    ("td3bc", "continuous", "mlp"): "actor_critic:Td3bcLearner",
    ("icql", "discrete", "mlp"): "icql:IcqlLearner",
}

ALGOS: tuple[str, ...] = tuple(dict.fromkeys(algo for algo, _, _ in LEARNERS))  # in the order above
AGENTS: tuple[str, ...] = ("mlp", "gru")


def key(algo: str, discrete: bool, agent: str) -> Key:
    return (algo, "discrete" if discrete else "continuous", agent)


def algos_for(action_kind: str | None = None, agent: str | None = None) -> tuple[str, ...]:
    """The algorithms with a learner for this action kind and / or agent kind."""
    keys = [k for k in LEARNERS if action_kind in (None, k[1]) and agent in (None, k[2])]
    return tuple(dict.fromkeys(k[0] for k in keys))


def learner_class(k: Key) -> Any:
    """The learner class of a key (a KeyError for one without a learner: the stage's checks refuse
    those first, in one line)."""
    module, name = LEARNERS[k].split(":")
    return getattr(importlib.import_module(f"logo_cli.train.learners.{module}"), name)
