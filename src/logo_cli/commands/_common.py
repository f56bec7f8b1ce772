"""What every command shares: the consoles, one-line errors, progress, shared options and JSON output."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import typer
import typer.core
from rich.console import Console
from rich.markup import escape

from logo_cli.commands.progress import LazyProgress
from logo_cli.commands.progress import progress_bar as _progress_on
from logo_cli.errors import (
    DEBUG_ENV,
    EXIT_BUG,
    EXIT_INTERRUPTED,
    EXIT_USER,
    LogoError,
    debug_enabled,
    one_line,
)
from logo_cli.outputs import os_error_line
from logo_cli.train.registry import ALGOS

# Results go to stdout (so `--json` output pipes cleanly); progress and errors go to stderr.
out = Console()
err = Console(stderr=True)


class DeprecatingCommand(typer.core.TyperCommand):
    """A `logo` command: accepts the old spellings of its options and values, with a one-line note
    (logo_cli.deprecated), and refuses a value an enumerated option does not take in one line, as
    every other bad input (click's usage box stays for the other parse errors)."""

    def parse_args(self, ctx, args):  # type: ignore[override]
        from logo_cli.deprecated import rewrite

        args = rewrite(self.name or "", list(args))
        try:
            return super().parse_args(ctx, list(args))  # click consumes the list it parses
        except Exception as e:  # click's BadParameter (typer's copy of click, or click)
            choice = _choice_of(getattr(e, "param", None))
            if choice is None or type(e).__name__ != "BadParameter":
                raise
            option = e.param.opts[0]  # type: ignore[attr-defined]
            value = _given(args, e.param.opts)  # type: ignore[attr-defined]
            _error_line(f"{option} {value}: expected one of {', '.join(m.value for m in choice)}")
            raise typer.Exit(code=EXIT_USER) from None


def _choice_of(param: Any) -> Any:
    """The Enum an option takes (its annotation, or the Enum in `Enum | None`), else None."""
    import enum
    import typing

    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    for t in (annotation, *typing.get_args(annotation)):
        if isinstance(t, type) and issubclass(t, enum.Enum):
            return t
    return None


def _given(args: list[str], opts: list[str]) -> str:
    """The value given to an option on the command line (the last one wins), else ''."""
    value = ""
    for i, word in enumerate(args):
        for opt in opts:
            if word == opt and i + 1 < len(args):
                value = args[i + 1]
            elif word.startswith(opt + "="):
                value = word[len(opt) + 1 :]
    return value


def user_errors(fn: Callable) -> Callable:
    """The CLI's one exception boundary, around every command.

    Expected failures end in one line on stderr and exit code 2: a LogoError (bad input, a refused
    output, a numeric check), any OSError (named by its path: unwritable folder, disk full, ...) and
    running out of memory. Ctrl-C exits with 130. Anything else is a bug: one line saying how to see
    the traceback (`logo --debug ...` or LOGO_DEBUG=1, which re-raise it) and how to report it, exit 1.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, click.exceptions.ClickException):
            raise
        except LogoError as e:
            _error_line(str(e))
            raise typer.Exit(code=e.exit_code) from None
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/]")
            raise typer.Exit(code=EXIT_INTERRUPTED) from None
        except OSError as e:
            if debug_enabled():
                raise
            _error_line(os_error_line(e))
            raise typer.Exit(code=EXIT_USER) from None
        except MemoryError as e:
            if debug_enabled():
                raise
            _error_line(
                f"out of memory ({one_line(e) or 'MemoryError'}); try a smaller --batch-size or model"
            )
            raise typer.Exit(code=EXIT_USER) from None
        except Exception as e:
            if debug_enabled():
                raise
            if _is_torch_oom(e):
                _error_line(f"out of memory ({one_line(e, 160)}); try a smaller --batch-size or model")
                raise typer.Exit(code=EXIT_USER) from None
            _error_line(
                f"internal error ({type(e).__name__}: {one_line(e, 200)}); this is a bug in logo-cli: "
                f"rerun with `logo --debug ...` (or {DEBUG_ENV}=1) for the traceback and report it "
                "with the command line"
            )
            raise typer.Exit(code=EXIT_BUG) from None

    wrapper.logo_boundary = True  # type: ignore[attr-defined]
    return wrapper


def _error_line(text: str) -> None:
    # soft_wrap: one physical line whatever the terminal width; markup off: paths may hold brackets
    err.print(f"[bold red]error:[/] {escape(text)}", highlight=False, soft_wrap=True)


def _is_torch_oom(e: BaseException) -> bool:
    """True for torch's out-of-memory errors: the device's OutOfMemoryError, and the CPU allocator's
    RuntimeError "can't allocate memory" (torch is looked up only if it was imported)."""
    oom = getattr(sys.modules.get("torch"), "OutOfMemoryError", None)
    if oom is not None and isinstance(e, oom):
        return True
    return isinstance(e, RuntimeError) and "can't allocate memory" in str(e)


def progress_bar() -> LazyProgress:
    """The progress display on stderr (commands/progress.py): nothing is drawn until the first task
    is added, so add it at the first progress report."""
    return _progress_on(err)


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


def config_option():
    """The --config option every stage shares: options from a file (or a run's manifest), read
    before the others so that it only changes their defaults (logo_cli.config_file)."""
    from logo_cli.config_file import CONFIG_HELP

    def load(ctx: typer.Context, value: Path | None) -> Path | None:
        from logo_cli.config_file import apply
        from logo_cli.deprecated import VALUES, option_aliases

        try:
            name = ctx.command.name or ""
            apply(ctx, value, option_aliases(name), VALUES.get(name))
        except LogoError as e:  # parsing runs outside the command's boundary: the same one line
            _error_line(str(e))
            raise typer.Exit(code=e.exit_code) from None
        return value

    return typer.Option(
        None, "--config", help=CONFIG_HELP, callback=load, is_eager=True, show_default=False,
        dir_okay=True, exists=False,
    )  # fmt: skip


def threads_option():
    """The --threads option of every command that runs torch work (also $LOGO_THREADS). Its callback
    sets torch's thread count while the options are parsed, so before any of the command's work."""
    from logo_cli.threads import DEFAULT_THREADS, THREADS_ENV, THREADS_HELP

    def apply(ctx: typer.Context, value: int) -> int:
        from logo_cli.threads import apply_threads

        try:
            return apply_threads(value)
        except LogoError as e:  # parsing runs outside the command's boundary: the same one line
            _error_line(str(e))
            raise typer.Exit(code=e.exit_code) from None

    return typer.Option(
        DEFAULT_THREADS, "--threads", envvar=THREADS_ENV, help=THREADS_HELP, callback=apply,
        show_envvar=False,
    )  # fmt: skip


def rerun_out(ws, stage: str, config, out: Path, inputs: dict, *, out_given: bool, overwrite: bool):
    """Where this run writes (`out`, or a sibling named for what differs from the run there), or
    None when the artifact at `out` is up to date, said in one line (logo_cli.workspace.reruns)."""
    from logo_cli.artifacts import jsonable
    from logo_cli.workspace.reruns import decide

    given = {role: Path(p) for role, p in inputs.items() if p is not None}
    ctx = _current_context()
    names = {p.name: p.opts[0] for p in (ctx.command.params if ctx else []) if p.opts and p.name}
    return decide(
        ws,
        stage,
        out,
        jsonable(config),
        given,
        out_given=out_given,
        overwrite=overwrite,
        say=say,
        names=names,
    )


def _current_context():
    """The running command's context: the copy of click that typer ships keeps its own, else click's."""
    try:
        from typer._click.globals import get_current_context
    except ImportError:  # a typer that uses click itself
        get_current_context = click.get_current_context
    return get_current_context(silent=True)


def rerun_target(ws, stage: str, cfg, inputs: dict, out_given: bool):
    """rerun_out for a stage config that holds its `out` and `overwrite`: the config to run with, or
    None when up to date."""
    import dataclasses

    target = rerun_out(ws, stage, cfg, cfg.out, inputs, out_given=out_given, overwrite=cfg.overwrite)
    if target is None:
        return None
    return cfg if target == cfg.out else dataclasses.replace(cfg, out=target)


def open_workspace(root):
    """The workspace, its notes going to stderr."""
    from logo_cli.workspace import Defaults, Workspace

    ws = Workspace(root, say)
    return ws, Defaults(ws)


# --algo's values come from the learners' registry (torch-free), so `--help` lists them without
# importing the learners; the other enumerated options are Enum types from logo_cli/choices.py. The
# command checks the value itself, so a wrong one gets the usual one-line error.
CHOICES: dict[str, tuple[str, ...]] = {"algo": ALGOS}


def one_of(name: str) -> str:
    """The metavar of an enumerated option, e.g. `<macql|bc>`."""
    return "<" + "|".join(CHOICES[name]) + ">"
