"""The help panels `logo COMMAND --help` groups each command's options under.

One table here rather than a `rich_help_panel=` on each option: the grouping of every command can be
read (and kept consistent) in one place. `assign_panels` sets them on the command's option
defaults before Typer builds the command; tests/test_cli_help.py checks that no option is left out.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

INPUTS, OUTPUT, RUNTIME = "Inputs", "Output", "Runtime"

# Options with the same name and role in several commands.
COMMON: dict[str, str] = {
    "data": INPUTS,
    "synthetic": INPUTS,
    "allow_incomplete": INPUTS,
    "policy": INPUTS,
    "models": INPUTS,
    "source": INPUTS,
    "out_dir": OUTPUT,
    "out_path": OUTPUT,
    "workspace": OUTPUT,
    "overwrite": OUTPUT,
    "as_json": OUTPUT,
    "json_output": OUTPUT,
    "logger": OUTPUT,
    "log_every": OUTPUT,
    "checkpoint_every": OUTPUT,
    "device": RUNTIME,
    "threads": RUNTIME,
    "seed": RUNTIME,
    "resume": RUNTIME,
    "config": RUNTIME,
}


def _group(panel: str, *names: str) -> dict[str, str]:
    return dict.fromkeys(names, panel)


# Each command's own options, in the order their panels should appear after Inputs.
BY_COMMAND: dict[str, dict[str, str]] = {
    "collect": {
        **_group("Dataset", "env", "quality", "episodes", "episode_limit", "num_envs"),
        **_group("Behaviour policy", "behaviour", "stochastic", "train_behaviour", "train_steps"),
    },
    "convert": {
        "kind": INPUTS,
        **_group("Dataset", "episode_limit", "quality", "env"),
    },
    "status": {"every": OUTPUT},
    "pretrain": {
        **_group(
            "Model",
            "model",
            "hidden",
            "latent",
            "layers",
            "share_local",
            "local_action",
            "switch_gates",
            "avail_from",
            "nll_beta",
            "uncertainty",
            "arch",
            "pool_rank",
        ),
        **_group("Model", "members", "elites"),
        **_group("Training", "holdout", "batch_size", "lr", "max_epochs", "max_steps", "patience"),
    },
    "rollout": {
        "model": INPUTS,
        **_group("Rollout policy", "policy", "uniform", "bc_steps"),
        **_group("Rollouts", "horizon", "n_starts", "transitions", "batch_size", "sample"),
        **_group("Rollouts", "termination", "clip_reward", "chunk_rows"),
    },
    "calibrate": _group("Calibration", "holdout", "horizon", "max_starts", "batch_size"),
    "train-policy": {
        "model": INPUTS,
        **_group("Learner", "algo", "steps", "batch_size", "lr", "actor_lr", "gamma", "n_step"),
        **_group("Learner", "cql_alpha", "cql_samples", "cql_include_data", "cql_greedy", "normalise_state"),
        **_group("Learner", "target_update_every", "target_tau"),
        **_group("Learner: CFCQL", "cfcql_temperature", "cfcql_bc_steps"),
        **_group("Learner: continuous actions", "entropy_alpha", "actor_bc_steps", "td3bc_alpha"),
        **_group("Learner: continuous actions", "policy_noise", "noise_clip", "policy_delay"),
        **_group("Synthetic data", "mode", "synthetic_ratio", "c", "temperature", "target_ess"),
        **_group("Synthetic data", "weight_by", "penalty_lambda", "cql_synthetic"),
        **_group("Agent network", "hidden", "layers", "agent", "td_lambda", "seq_batch"),
        **_group("Agent network", "rnn_hidden", "burn_in"),
        **_group("Rollouts (with --model)", "refresh_every", "horizon", "rollout_starts"),
        **_group("Rollouts (with --model)", "rollout_epsilon", "bc_steps", "termination"),
        **_group("Evaluation", "eval_env", "eval_every", "eval_episodes"),
    },
    "evaluate": {
        **_group("Episodes", "env", "episodes", "num_envs", "episode_limit", "greedy"),
        "reference_returns": "Episodes",
    },
    "sweep": {
        "grid_file": INPUTS,
        "root": OUTPUT,
        "dry_run": OUTPUT,
        "report": OUTPUT,
        **_group("Cluster", "address", "num_cpus", "cpus_per_task", "max_retries"),
    },
}


def panel_of(command: str, param: str) -> str | None:
    """The panel of a command's option (by its parameter name), or None if the tables lack it."""
    return BY_COMMAND.get(command, {}).get(param) or COMMON.get(param)


def assign_panels(command: str, fn: Callable) -> None:
    """Sets the help panel of each of `fn`'s options that names none itself."""
    for name, parameter in inspect.signature(fn).parameters.items():
        info = parameter.default
        if type(info).__name__ == "OptionInfo" and getattr(info, "rich_help_panel", None) is None:
            info.rich_help_panel = panel_of(command, name)
