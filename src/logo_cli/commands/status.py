"""`logo status`: the workspace as a table: each stage's newest artifact, its inputs, whether it is
complete or interrupted, and whether it is stale (an input changed since it was made)."""

from __future__ import annotations

from pathlib import Path

import typer

from logo_cli.commands._common import open_workspace, out, print_json, user_errors, workspace_option

_INPUT_MARK = {"changed": " [yellow](changed)[/]", "missing": " [red](missing)[/]", "unknown": " (?)"}
_STATE = {"complete": "[green]complete[/]", "interrupted": "[yellow]interrupted[/]"}


@user_errors
def command(
    workspace: Path | None = workspace_option(),
    every: bool = typer.Option(
        False, "--all", help="List every recorded artifact (per stage, newest first), not only the newest."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the status as JSON on stdout."),
) -> None:
    """Show the workspace: per stage the newest artifact, its inputs, complete or interrupted, stale or not.

    An artifact is stale when an input is gone or its content changed since (sha256; a file whose size
    and modification time are unchanged is not hashed again), or when an input came from a stale
    artifact. The exit code is 0 either way; --json gives the same for scripts.
    """
    from rich.markup import escape
    from rich.table import Table

    ws, _ = open_workspace(workspace)
    st = ws.status(every)
    if as_json:
        print_json(st)
        return
    where = (
        f"index {st['index']}"
        if st["index"]
        else {"scan": "no index: scanned", "empty": "empty"}[st["source"]]
    )
    table = Table(title=f"workspace {st['workspace']} ({where})", title_justify="left")
    for col in ("stage", "artifact", "inputs", "state", "stale"):
        table.add_column(col, overflow="fold")
    for row in st["stages"]:
        if row["artifact"] is None:
            table.add_row(
                row["stage"], "[dim]-[/]", "", "[dim]none[/]", f"[dim]run `{escape(row['next'])}`[/]"
            )
            continue
        inputs = []
        for role, i in row["inputs"].items():
            where_from = ws.short(i["from"]["artifact"]) if i["from"] else ws.short(i["path"])
            inputs.append(f"{role}: {escape(where_from)}{_INPUT_MARK.get(i['state'], '')}")
        stale = "[yellow]yes: " + escape("; ".join(row["reasons"])) + "[/]" if row["stale"] else "no"
        state = _STATE.get(row["state"], row["state"])
        table.add_row(row["stage"], escape(ws.short(row["artifact"])), "\n".join(inputs), state, stale)
    out.print(table)
    if st["source"] == "empty":
        out.print(f"nothing recorded in {st['workspace']} yet: start with `logo pretrain --data DATA.h5`")
