"""Progress on stderr: a compact live line in a terminal, plain lines in a log.

In a terminal each task is one line that reads at 80 columns: its name, a short bar, done/total,
the rate and the time left come first and keep their width; the task's info (losses, evaluations)
takes what is left and is cut with an ellipsis. Where stderr is not a terminal (a log file, a pipe,
a batch job) nothing is drawn: each task prints a plain start line, a plain line every
$LOGO_PROGRESS_EVERY seconds (30 by default; 0: at every report) and a plain final line.
"""

from __future__ import annotations

import os
import time

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn
from rich.table import Column
from rich.text import Text

PROGRESS_EVERY_ENV = "LOGO_PROGRESS_EVERY"
PROGRESS_EVERY_S = 30.0


def _progress_every() -> float:
    try:
        return max(0.0, float(os.environ.get(PROGRESS_EVERY_ENV, PROGRESS_EVERY_S)))
    except ValueError:
        return PROGRESS_EVERY_S


def clock(seconds: float | None) -> str:
    """h:mm:ss, or ? when unknown."""
    if seconds is None:
        return "?"
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def rate(per_s: float | None) -> str:
    """A rate at a width that stays short: 12,345/s, 152/s, 9.4/s, 0.12/s, ?/s."""
    if not per_s:
        return "?/s"
    return f"{per_s:,.0f}/s" if per_s >= 100 else f"{per_s:.3g}/s"


def _counts(task: Task) -> str:
    done = f"{task.completed:,.0f}"
    return f"{done}/{task.total:,.0f}" if task.total else done


class _Numbers(ProgressColumn):
    """done/total, rate, time left (or, once finished, the time taken): never cut."""

    def __init__(self) -> None:
        super().__init__(table_column=Column(no_wrap=True))

    def render(self, task: Task) -> Text:
        if task.finished:
            when = f"in {clock(task.finished_time)}"
        elif task.total:
            when = f"ETA {clock(task.time_remaining)}"
        else:
            when = clock(task.elapsed)
        return Text(f"{_counts(task)} {rate(task.speed)} {when}")


class _Info(ProgressColumn):
    """The task's info: the one column that gives way, cut with an ellipsis on one line."""

    def __init__(self) -> None:
        super().__init__(table_column=Column(no_wrap=False, overflow="ellipsis", min_width=0))

    def render(self, task: Task) -> Text:
        return Text(str(task.fields.get("info") or ""), no_wrap=True, overflow="ellipsis")


class LazyProgress(Progress):
    """A Progress that starts at its first task, so an input error raised before any progress is
    reported prints alone, and that vanishes when its block fails, so the error stays the one line
    shown. Where its console is not a terminal it draws nothing and prints plain lines instead."""

    _begun = False
    _ended = False
    _plain_every: float | None = None  # None: a terminal, the live line is enough
    _last_line: dict | None = None

    def __enter__(self) -> LazyProgress:
        return self

    def __exit__(self, exc_type, exc_val, exc_tb) -> None:
        self._end(failed=exc_type is not None)

    def start(self) -> None:
        if self._begun:
            return
        self._begun = True
        if self.console.is_terminal:
            super().start()
        else:
            self._plain_every, self._last_line = _progress_every(), {}

    def stop(self) -> None:
        self._end(failed=False)

    def _end(self, failed: bool) -> None:
        if not self._begun or self._ended:
            return
        self._ended = True
        if self._plain_every is None:
            if failed:
                self.live.transient = True
            super().stop()
        elif not failed:
            for task in self.tasks:
                self._plain_line(task, final=True)

    def add_task(self, *args, **kwargs):
        self.start()
        task_id = super().add_task(*args, **kwargs)
        if self._last_line is not None:
            self._last_line[task_id] = time.monotonic()  # the next line comes one interval in
            task = self._tasks[task_id]
            total = f", {task.total:,.0f} to do" if task.total else ""
            self._print(f"{task.description}: started{total}")
        return task_id

    def update(self, task_id, **kwargs) -> None:
        super().update(task_id, **kwargs)
        if self._plain_every is not None and self._last_line is not None:
            now = time.monotonic()
            if now - self._last_line.get(task_id, now) >= self._plain_every:
                self._last_line[task_id] = now
                self._plain_line(self._tasks[task_id])

    def _plain_line(self, task: Task, final: bool = False) -> None:
        done = _counts(task)
        if task.total:
            done += f" ({task.completed / task.total:.0%})"
        if final:
            elapsed = task.elapsed or 0.0
            parts = [f"{task.description}: {done}", rate(task.completed / elapsed if elapsed else None)]
            parts.append(f"done in {clock(elapsed)}")
        else:
            speed = task.speed
            parts = [f"{task.description}: {done}", f"{speed:,.1f}/s" if speed else "?/s"]
            if task.total:
                parts.append(f"ETA {clock(task.time_remaining)}")
        info = str(task.fields.get("info") or "").strip()
        self._print(", ".join(parts) + (f" | {info}" if info else ""))

    def _print(self, line: str) -> None:
        # printed as is: descriptions and infos may hold brackets rich would read as markup
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)


def progress_bar(console: Console) -> LazyProgress:
    """Progress on `console`: name, a short bar, done/total, rate, time left, then the info.

    Nothing is drawn until the first task is added: add it at the first progress report."""
    return LazyProgress(
        TextColumn("[bold]{task.description}", table_column=Column(no_wrap=True)),
        BarColumn(bar_width=10, table_column=Column(no_wrap=True)),
        _Numbers(),
        _Info(),
        console=console,
        transient=False,
    )
