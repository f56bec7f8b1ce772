"""The `logo` commands the sweep runs, handed down to it by the command line.

The sweep runs each stage's own command in-process (every check, default, manifest and atomic publish
of the command line) and reads a grid table's option names from it, yet it sits below the command
line and does not import it. `logo_cli.cli` hands over a loader of its click group when it is imported
(`provide`); the sweep asks for it with `loader()`, and every task's spec carries the loader to the Ray
worker (a module-level function travels by name, so the worker imports the command line itself).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_loader: Callable[[], Any] | None = None


def provide(loader: Callable[[], Any]) -> None:
    """Register the function that returns the `logo` click group."""
    global _loader
    _loader = loader


def loader() -> Callable[[], Any]:
    """The registered loader of the `logo` click group."""
    if _loader is None:
        raise RuntimeError("the sweep needs the `logo` commands: import logo_cli.cli first")
    return _loader


def stage_command(name: str) -> Any:
    """The click command behind `logo <name>`."""
    return loader()().commands[name]
