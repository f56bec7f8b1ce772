"""The `logo` command: one thin command per pipeline stage.

Command modules import heavy libraries (torch, jax, h5py) inside their functions, so `logo --help`
stays fast.
"""

from __future__ import annotations

import functools

import typer

from logo_cli import __version__
from logo_cli.errors import DEBUG_ENV, set_debug


def _install_help_layout() -> None:
    """Options panels of two columns, names never cut (logo_cli/help_layout.py)."""
    from logo_cli.help_layout import install

    install()


def _flag_type_hidden() -> None:
    """Typer's help shows every option's type, so a flag reads `--json <bool>` as if it took a value.
    Flags get no type column; every other option keeps Typer's rendering."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich

    def display_type_rich(self, ctx):
        return None if self.is_flag else shown(self, ctx)

    TyperOption.display_type_rich = display_type_rich


_flag_type_hidden()
_install_help_layout()

app = typer.Typer(
    name="logo",
    help=(
        "LOGO: a local-to-global world model for offline multi-agent RL. "
        "Stages: collect -> inspect -> pretrain -> rollout -> train-policy -> evaluate / calibrate; "
        "each reads and writes artifacts on disk, records them in the workspace (./runs) and, for inputs "
        "left out, takes the newest ones there. `logo status` shows the workspace."
    ),
    no_args_is_help=True,
    epilog="Every expected failure ends in one line naming the file and the problem (exit code 2).",
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    context_settings={"help_option_names": ["-h", "--help"]},  # inherited by every command
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"logo-cli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(
        False,
        "--debug",
        help=f"Show the full traceback of an unexpected error (a bug) instead of one line; "
        f"also {DEBUG_ENV}=1.",
    ),
) -> None:
    """LOGO offline multi-agent RL pipeline."""
    set_debug(debug)


def _register() -> None:
    # Each command module exposes `command`; the order here is the order in `logo --help`.
    from logo_cli.commands import COMMANDS
    from logo_cli.commands._common import DeprecatingCommand, user_errors
    from logo_cli.commands.panels import assign_panels

    for name, module_name in COMMANDS:
        module = __import__(f"logo_cli.commands.{module_name}", fromlist=["command"])
        command = module.command
        assign_panels(name, command)  # the help panels its options are grouped under
        # Every command runs inside the one exception boundary (one line per expected failure).
        app.command(name, cls=DeprecatingCommand)(
            command if getattr(command, "logo_boundary", False) else user_errors(command)
        )


_register()


@functools.cache
def click_group():
    """The `logo` click group, built once per process: the sweep's tasks run its stage commands."""
    import typer.main

    return typer.main.get_command(app)


def _hand_commands_to_the_sweep() -> None:
    from logo_cli.sweep.stage_commands import provide

    provide(click_group)


_hand_commands_to_the_sweep()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
