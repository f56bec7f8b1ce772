"""`logo export`: a trained policy as TorchScript files loadable with plain torch.jit.load."""

from __future__ import annotations

from pathlib import Path

import typer

from logo_cli.commands._common import (
    err,
    open_workspace,
    out,
    print_json,
    say,
    user_errors,
    workspace_option,
)


@user_errors
def command(
    source: Path | None = typer.Argument(
        None,
        help="A train-policy run directory (its policy.pt is exported) or a policy .pt file. "
        "Default: the workspace's newest finished train-policy run.",
        show_default=False,
    ),
    out_dir: Path = typer.Option(
        ...,
        "--out",
        help="Directory to write: agent.pt, mixer.pt (discrete MACQL and CFCQL runs), export.json, "
        "manifest.json.",
        show_default=False,
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an existing --out (only an earlier export directory)."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print the summary as JSON on stdout (nothing else goes to stdout)."
    ),
    workspace: Path | None = workspace_option(),
) -> None:
    """Export a policy to TorchScript (agent network; for Q policies the mixer), loadable without logo-cli.

    The QMIX mixer carries its state standardisation; both are checked against the original networks
    before anything is written. See docs/export-convert.md for the signatures.
    """
    from logo_cli.stages.export import ExportConfig, run
    from logo_cli.workspace import export_defaults

    if source is None:
        ws, defaults = open_workspace(workspace)
        source = export_defaults(ws, defaults, source)
    with err.status(f"exporting {source}", spinner="dots"):
        summary = run(ExportConfig(source=source, out=out_dir, overwrite=overwrite))
    say(f"wrote {out_dir}")
    if as_json:
        print_json(summary)
        return
    from rich.table import Table

    table = Table(title=f"export {summary['policy']}", show_header=False)
    check = summary["round_trip"]
    rows = [
        ("files", ", ".join(summary["files"])),
        ("mode", f"{summary['mode']} ({summary['algo'] or 'unknown algo'})"),
        ("agents / obs dim / actions", "{n_agents} / {obs_dim} / {n_actions}".format(**summary)),
        ("mixer", f"yes (state dim {summary['state_dim']})" if summary["mixer"] else "no"),
        (
            "round trip",
            f"{check['rows']} random rows, greedy actions equal, max |diff| "
            f"{check['agent_max_abs_diff']:.2g}",
        ),
    ]
    for k, v in rows:
        table.add_row(k, v)
    out.print(table)
