"""`logo convert`: OMIGA files and OG-MARL vaults -> the canonical h5 layout."""

from __future__ import annotations

from pathlib import Path

import typer

from logo_cli.choices import ConvertSource
from logo_cli.commands._common import err, out, print_json, say, user_errors


@user_errors
def command(
    source: Path = typer.Argument(
        ...,
        help="The dataset to convert: an OMIGA .hdf5 file, or an OG-MARL vault's uid folder "
        "(e.g. vaults/smac_v1/3m.vlt/Good).",
        show_default=False,
    ),
    kind: ConvertSource = typer.Option(
        ...,
        "--from",
        help="Source format: omiga (OMIGA MaMuJoCo .hdf5) or ogmarl (OG-MARL flashbax vault; needs "
        "flashbax, installed by the package's ogmarl extra).",
        show_default=False,
    ),
    out_path: Path = typer.Option(
        ..., "--out", help="The .h5 file to write (canonical layout).", show_default=False
    ),
    episode_limit: int | None = typer.Option(
        None,
        "--episode-limit",
        help="Episode limit of the written file (rows per episode - 1). Default: the longest episode "
        "in the source. OMIGA: episodes reaching it count as time-outs.",
        show_default=False,
    ),
    quality: str | None = typer.Option(
        None,
        "--quality",
        help="Quality attribute to record. Default: from the source's name (OMIGA medium-replay -> "
        "medium_replay; OG-MARL Good -> expert, Medium -> medium, Poor -> poor, Replay -> medium_replay).",
        show_default=False,
    ),
    env: str | None = typer.Option(
        None,
        "--env",
        help="Simulator to record as the dataset's env attribute (family:scenario, e.g. smax:3m); "
        "`logo evaluate` defaults to it. Default: none for OG-MARL, mamujoco:<task> for OMIGA.",
        show_default=False,
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an existing --out (only an .h5 dataset)."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print the summary as JSON on stdout (nothing else goes to stdout)."
    ),
) -> None:
    """Convert an OMIGA file or OG-MARL vault to the canonical h5 layout (validated before writing).

    See docs/export-convert.md for the mapping of each source.
    """
    from logo_cli.stages.convert import ConvertConfig, run

    cfg = ConvertConfig(
        source=source,
        kind=kind.value,
        out=out_path,
        episode_limit=episode_limit,
        quality=quality,
        env=env,
        overwrite=overwrite,
    )
    with err.status(f"converting {source}", spinner="dots"):
        summary = run(cfg)
    say(f"wrote {out_path} (check it with `logo inspect {out_path}`)")
    if as_json:
        print_json(summary)
        return
    from rich.table import Table

    table = Table(title=f"convert {source} ({kind})", show_header=False)
    keys = ("map_name", "quality", "episodes", "transitions", "terminated", "episode_limit", "n_agents",
            "obs_dim", "state_dim", "n_actions", "discrete")  # fmt: skip
    for k in keys:
        table.add_row(k, str(summary[k]))
    out.print(table)
