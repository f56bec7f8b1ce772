"""Where the workspace is, the files it keeps, each stage's default folder, and paths as the user
would type them."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

ENV_VAR = "LOGO_WORKSPACE"
DEFAULT_ROOT = Path("runs")
INDEX = "index.json"
INDEX_FORMAT = "logo-workspace-index"
INDEX_VERSION = 1
MANIFEST = "manifest.json"
LOCK = ".index.lock"
MAX_ENTRIES = 1000  # the index keeps the newest this many artifacts
STAGES = ("collect", "pretrain", "rollout", "train-policy", "evaluate", "calibrate")
# Each stage's default folder under the workspace (collect's --out is always given).
SUBDIRS = {
    "pretrain": "pretrain",
    "rollout": "rollout",
    "train-policy": "policy",
    "evaluate": "evaluate",
    "calibrate": "calibrate",
}
# What to run to make a stage's artifact, for "nothing to chain from" messages.
MAKE = {
    "collect": "logo collect --quality medium --out DATA.h5",
    "pretrain": "logo pretrain --data DATA.h5",
    "rollout": "logo rollout",
    "train-policy": "logo train-policy",
    "evaluate": "logo evaluate",
    "calibrate": "logo calibrate",
}
WORKSPACE_HELP = (
    "Workspace: where default outputs go and where each stage records its newest artifact (default: ./runs)."
)
Say = Callable[[str], None]


def quiet(_: str) -> None:
    pass


def root_from(option: Path | None) -> Path:
    """--workspace, else $LOGO_WORKSPACE, else ./runs (Typer already maps the variable onto the option;
    this also serves callers outside the CLI)."""
    if option is not None:
        return Path(option)
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else DEFAULT_ROOT


def absolute(path: str | Path) -> Path:
    """Absolute and normalised, without resolving symbolic links."""
    return Path(os.path.normpath(os.path.abspath(path)))


def show(path: str | Path) -> str:
    """A path as the user would type it: relative to the current directory when under it."""
    p = absolute(path)
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(p)
