"""The sweep's live view: one table, grid cells x stages, with done/running/failed/skipped counts."""

from __future__ import annotations

import time

from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from logo_cli.sweep.execute import State
from logo_cli.sweep.graph import STAGES


def table(state: State) -> Group:
    """Rows: each quality's shared work (dataset, world models), then its quality x method cells."""
    cells: dict[tuple[str, str], dict[str, list[str]]] = {}
    for t in state.tasks:
        cells.setdefault(t.cell, {s: [] for s in STAGES})[t.stage].append(state.status[t.key])
    grid = Table(title="logo sweep", show_header=True, header_style="bold")
    grid.add_column("quality")
    grid.add_column("method")
    for s in STAGES:
        grid.add_column(s, justify="right")
    for (quality, method), by_stage in cells.items():
        shown = "(shared)" if method == "-" else method
        grid.add_row(quality, shown, *(_cell(by_stage[s]) for s in STAGES))
    return Group(grid, Text(footer(state)))


def _cell(statuses: list[str]) -> Text:
    if not statuses:
        return Text("")
    done = sum(s in ("cached", "ran") for s in statuses)
    text = Text(f"{done}/{len(statuses)}", style="green" if done == len(statuses) else "")
    for status, mark, style in (
        ("running", "run", "cyan"),
        ("failed", "failed", "red"),
        ("skipped", "skip", "yellow"),
    ):
        n = statuses.count(status)
        if n:
            text.append(f" {n} {mark}", style=style)
    return text


def eta(state: State) -> float | None:
    """Seconds left: each unfinished task at its stage's mean time so far (this run's tasks), spread
    over the cluster's slots; None until every stage still to run has a finished task."""
    means = {}
    for s in STAGES:
        times = [
            r["seconds"] for k, r in state.records.items() if state.status[k] == "ran" and r.get("stage") == s
        ]
        if times:
            means[s] = sum(times) / len(times)
    left = 0.0
    now = time.time()
    for t in state.tasks:
        status = state.status[t.key]
        if status not in ("pending", "running"):
            continue
        if t.stage not in means:
            return None
        spent = now - state.started[t.key] if status == "running" else 0.0
        left += max(0.0, means[t.stage] - spent)
    return left / state.slots


def footer(state: State) -> str:
    counts = {
        s: sum(1 for v in state.status.values() if v == s)
        for s in ("cached", "ran", "running", "failed", "skipped")
    }
    left = eta(state)
    clock = "?" if left is None else f"{int(left) // 3600}:{int(left) // 60 % 60:02d}:{int(left) % 60:02d}"
    elapsed = int(time.time() - state.t0)
    return (
        f"{len(state.tasks)} tasks: {counts['cached']} finished before, {counts['ran']} ran, "
        f"{counts['running']} running, {counts['failed']} failed, {counts['skipped']} skipped | "
        f"elapsed {elapsed // 60}:{elapsed % 60:02d}, ETA {clock}"
    )


class LiveTable:
    """A rich Live of `table`, refreshed at most once a second; on a non-terminal it prints the
    footer line when the counts change instead (a log file then reads as a list of events)."""

    def __init__(self, console) -> None:
        self.console = console
        self.live: Live | None = None
        self.last = ""

    def __enter__(self) -> LiveTable:
        return self

    def update(self, state: State) -> None:
        if self.console.is_terminal:
            if self.live is None:
                self.live = Live(table(state), console=self.console, refresh_per_second=1)
                self.live.start()
            else:
                self.live.update(table(state))
            return
        line = footer(state).split(" | ")[0]
        if line != self.last:
            self.last = line
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.stop()
