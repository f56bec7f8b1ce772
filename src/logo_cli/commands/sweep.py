"""`logo sweep`: a reproduction grid run as a graph of stage tasks on Ray."""

from __future__ import annotations

import os
import time
from pathlib import Path

import typer

from logo_cli.commands._common import err, out, print_json, say, user_errors


@user_errors
def command(
    grid_file: Path = typer.Argument(
        ...,
        metavar="GRID",
        help="Grid file (TOML): env, qualities, methods, seeds and one table per stage.",
        show_default=False,
    ),
    root: Path | None = typer.Option(
        None,
        "--root",
        help="Folder of the sweep's artifacts, ROOT/<stage>/<key>/, and logs (ROOT/logs). On a cluster: "
        "storage every node sees at the same path. Default: runs/sweep/<grid file name without .toml>.",
        show_default=False,
    ),
    address: str | None = typer.Option(
        None,
        "--address",
        help="Ray cluster to run on: auto (the one `ray start` made on this machine), host:port (its head "
        "node) or ray://host:port (Ray Client). "
        "Default: a local Ray started for this sweep, sized by --num-cpus.",
        show_default=False,
    ),
    num_cpus: int | None = typer.Option(
        None,
        "--num-cpus",
        help="Without --address: CPUs of the local Ray (tasks side by side = this / --cpus-per-task). "
        "Default: every core of this machine.",
        show_default=False,
    ),
    cpus_per_task: int = typer.Option(
        1, "--cpus-per-task", help="CPUs each task reserves (also its torch threads)."
    ),
    max_retries: int = typer.Option(
        2,
        "--max-retries",
        help="Retries of a task whose worker died or that failed unexpectedly; a refused input "
        "(an exit-code-2 error) is not retried.",
    ),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Print the task graph (tasks per stage, how many are finished) and run nothing; with "
        "--report, report on the finished evaluations only.",
    ),
    report: bool = typer.Option(
        False,
        "--report",
        help="Then aggregate the finished evaluations into ROOT/results.json and the outputs the "
        "grid's \\[report] table names (markdown, figure, JSON).",
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print a machine-readable summary on stdout instead of the live table."
    ),
) -> None:
    """Run a grid of datasets x methods x seeds as a graph of stage tasks on Ray."""
    from logo_cli.errors import LogoError
    from logo_cli.sweep import execute, graph
    from logo_cli.sweep import grid as grid_module

    if address is not None and num_cpus is not None:
        raise LogoError(
            "--num-cpus sizes a local Ray; a cluster (--address) has the CPUs its nodes started with"
        )
    grid = grid_module.load(grid_file)
    t0 = time.perf_counter()
    tasks = graph.expand(grid)
    expand_s = time.perf_counter() - t0
    root = (root if root is not None else Path("runs") / "sweep" / grid_file.stem).resolve()
    if dry_run:
        counts = graph.counts(tasks, root)
        if report:
            _report(grid, tasks, root)
        if as_json:
            print_json({"root": str(root), "tasks": len(tasks), "stages": counts, "expand_s": expand_s})
            return
        _counts_table(counts, root)
        return

    ray_s = execute.start_ray(address, num_cpus or os.cpu_count())
    from logo_cli.sweep.progress import LiveTable

    started = time.perf_counter()
    try:
        with LiveTable(err) as live:
            state = execute.run_graph(
                tasks,
                root,
                cpus_per_task=cpus_per_task,
                max_retries=max_retries,
                on_update=None if as_json else live.update,
            )
    except KeyboardInterrupt:
        execute.log_session(root, time.perf_counter() - started, "stopped:130")
        raise
    result = execute.summary(state, root)
    execute.log_session(root, time.perf_counter() - started, "done" if result["complete"] else "failed")
    result["ray_start_s"] = ray_s
    from logo_cli.artifacts import write_json_atomic

    write_json_atomic(root / "sweep_summary.json", result)
    if report:
        _report(grid, tasks, root)
    if as_json:
        print_json(result)
    elif not err.is_terminal:  # a terminal keeps the live table with this line at its foot
        from logo_cli.sweep.progress import footer

        say(footer(state))
    for line in result["errors"]:
        say(f"failed: {line}")
    if result["failed"]:
        raise LogoError(
            f"{result['failed']} task(s) failed, {result['skipped']} skipped after them; "
            f"fix the cause and rerun to continue (summary: {root / 'sweep_summary.json'})"
        )


# Typer keeps a docstring's line breaks in --help, so the long help is assembled from paragraphs.
command.__doc__ = "\n\n".join(
    [
        "Run a grid of datasets x methods x seeds as a graph of stage tasks on Ray.",
        "Shared work runs once: a dataset per quality, a world model per dataset, kind and seed, a policy "
        "per quality, method and seed, an evaluation per policy. Every task's artifact lives under "
        "ROOT/<stage>/<key>/, the key a hash of its inputs and options: a rerun skips finished tasks, and "
        "changing an option reruns only the tasks it reaches.",
        "A task that keeps failing is reported with its log; the tasks after it are skipped and the rest "
        "goes on. Ctrl-C stops the running tasks (exit 130); rerun to continue. Needs Ray: "
        'pip install "logo-cli\\[cluster]". The grid file format: docs/scale-out.md.',
    ]
)


def _report(grid, tasks, root: Path) -> None:
    from logo_cli.sweep.report import sweep_report

    for env, result in sweep_report(grid, tasks, root).items():
        name = "results.json" if len(grid.envs) == 1 else f"results_{env.replace(':', '_')}.json"
        runs, missing = len(result["runs"]), len(result["missing"])
        say(f"report {env}: {root / name} ({runs} evaluations, {missing} missing)")


def _counts_table(counts: dict, root: Path) -> None:
    from rich.table import Table

    table = Table(title=f"task graph -> {root}")
    table.add_column("stage")
    table.add_column("tasks", justify="right")
    table.add_column("finished", justify="right")
    for stage, c in counts.items():
        table.add_row(stage, str(c["tasks"]), str(c["done"]))
    table.add_row(
        "total", str(sum(c["tasks"] for c in counts.values())), str(sum(c["done"] for c in counts.values()))
    )
    out.print(table)
