"""`logo inspect PATH`: describe a dataset (and, as they are registered, other artifacts)."""

from __future__ import annotations

from pathlib import Path

import typer

from logo_cli.commands._common import err, out, print_json, user_errors


@user_errors
def command(
    path: Path = typer.Argument(
        ...,
        help="Artifact to describe: an .h5 dataset, a folder of part_*.h5 files, or another logo artifact.",
        show_default=False,
    ),
    json_output: bool = typer.Option(
        False, "--json", help="Print the description as JSON on stdout (nothing else goes to stdout)."
    ),
) -> None:
    """Describe an artifact: sizes, dims, episode lengths, returns, win rate, ends and attributes."""
    from logo_cli.stages.inspect import InspectConfig, render, run

    with err.status(f"reading {path}", spinner="dots"):
        description = run(InspectConfig(path=path))
    if json_output:
        print_json(description)
    else:
        out.print(render(description))
