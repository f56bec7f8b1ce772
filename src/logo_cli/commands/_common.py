"""What every command shares: the consoles, one-line errors, progress bars and JSON output."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from logo_cli.errors import LogoError

# Results go to stdout (so `--json` output pipes cleanly); progress and errors go to stderr.
out = Console()
err = Console(stderr=True)


def user_errors(fn: Callable) -> Callable:
    """Turn a LogoError (bad input) into one line on stderr and exit code 2, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except LogoError as e:
            err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=e.exit_code) from None
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/]")
            raise typer.Exit(code=130) from None

    return wrapper


class _LazyProgress(Progress):
    """A Progress that starts drawing at its first task, so an input error raised before any
    progress is reported prints alone (no empty bar, no blank line before it)."""

    _begun = False

    def __enter__(self) -> _LazyProgress:
        return self

    def __exit__(self, *exc) -> None:
        if self._begun:
            self.stop()

    def add_task(self, *args, **kwargs):
        if not self._begun:
            self._begun = True
            self.start()
        return super().add_task(*args, **kwargs)


def progress_bar(*extra_columns) -> Progress:
    """A rich progress bar on stderr: description, bar, done/total, elapsed, remaining, extras.

    Nothing is drawn until the first task is added: add it at the first progress report."""
    return _LazyProgress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        *extra_columns,
        console=err,
        transient=False,
    )


def print_json(data: Any) -> None:
    """Machine-readable output on stdout, nothing else on it."""
    sys.stdout.write(json.dumps(data, indent=2, default=_default) + "\n")
    sys.stdout.flush()


def _default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


DEVICE_HELP = "Torch device: auto (CUDA when present, else CPU), cpu, or cuda[:N]."


def say(line: str) -> None:
    """A one-line note on stderr, printed as is (paths may hold brackets rich would read as markup)."""
    err.print(line, markup=False, highlight=False, soft_wrap=True)


def workspace_option():
    """The --workspace option every stage shares (also read from $LOGO_WORKSPACE)."""
    from logo_cli.workspace import ENV_VAR, WORKSPACE_HELP

    return typer.Option(None, "--workspace", envvar=ENV_VAR, help=WORKSPACE_HELP, show_default=False)


def open_workspace(root):
    """The workspace, its notes going to stderr."""
    from logo_cli.workspace import Defaults, Workspace

    ws = Workspace(root, say)
    return ws, Defaults(ws)
