"""The corruption options shared by `logo rollout` and `logo train-policy` (models/corruption.py):
known errors added to a world model's predictions, to measure the error synthetic data can carry."""

from __future__ import annotations

import typer

PANEL = "Corruption (error-budget experiments)"
HELP = {
    "obs_noise": "Gaussian noise on predicted next observations, in observation standard deviations "
    "(present features only).",
    "state_noise": "Gaussian noise on the predicted next state, in state standard deviations "
    "(non-zero features only).",
    "avail_flip": "Probability of flipping each predicted next available action (never the no-op).",
    "switch_flip": "Probability of flipping each switching group of a next observation (a unit "
    "leaving or entering view, dying).",
    "reward_noise": "Gaussian noise on predicted rewards, in reward standard deviations.",
}


def corruption_option(name: str) -> float:
    """The Typer option of one corruption level, default 0 (none)."""
    return typer.Option(0.0, f"--{name.replace('_', '-')}", help=HELP[name], rich_help_panel=PANEL)


def corruption_levels(**levels: float):
    """The Corruption these option values make (one-line errors for bad values)."""
    from logo_cli.models.corruption_levels import Corruption

    return Corruption(**levels)


def corruption_text(levels: dict) -> str:
    """`obs_noise 0.5, avail_flip 0.05` for the levels that are set."""
    return ", ".join(f"{k} {v:g}" for k, v in levels.items() if v) or "none"
