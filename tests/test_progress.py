"""Progress that reads at 80 columns in a terminal, and plain lines (start, every interval, final)
where stderr is not one."""

from __future__ import annotations

import io
import os
import re
import select
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from test_models_dynamics import NOOP, episodes

from logo_cli.commands.progress import PROGRESS_EVERY_ENV, progress_bar
from logo_cli.data.h5 import write_dataset

INFO = "loss 0.01234, held-out 0.02345 (best 0.02111) | eval win 43%, return 1.234 and more words"


def _terminal(width: int) -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=width, force_terminal=True, color_system=None), buf


def test_terminal_line_keeps_counts_rate_and_eta_at_80_columns():
    console, _ = _terminal(80)
    bar = progress_bar(console)
    task = bar.add_task("pretrain logo", total=5000, info="")
    for step in (0, 400, 800, 1200):
        bar.update(task, completed=step, info=INFO)
    bar.stop()
    check, buf = _terminal(80)
    check.print(bar.make_tasks_table(bar.tasks))
    lines = buf.getvalue().rstrip("\n").splitlines()
    assert len(lines) == 1, lines  # one line, nothing wrapped
    line = lines[0]
    assert len(line) <= 80
    assert line.startswith("pretrain logo ")
    assert re.search(r" 1,200/5,000 [\d.,]+/s ETA \d:\d\d:\d\d ", line), line
    assert "loss 0.01234" in line and line.endswith("…")  # the info gives way, cut at the edge


def test_terminal_line_shows_the_whole_info_when_it_fits():
    console, _ = _terminal(200)
    bar = progress_bar(console)
    task = bar.add_task("macql", total=100, info="")
    bar.update(task, completed=100, info=INFO)
    bar.stop()
    check, buf = _terminal(200)
    check.print(bar.make_tasks_table(bar.tasks))
    line = buf.getvalue().strip()
    assert line.endswith(INFO) and re.search(r" 100/100 \S+/s in \d:\d\d:\d\d ", line), line


def _plain(monkeypatch, every: str | None) -> tuple[Console, io.StringIO]:
    if every is None:
        monkeypatch.delenv(PROGRESS_EVERY_ENV, raising=False)
    else:
        monkeypatch.setenv(PROGRESS_EVERY_ENV, every)
    buf = io.StringIO()
    return Console(file=buf, width=80, force_terminal=False), buf


def test_redirected_run_prints_start_interval_and_final_lines(monkeypatch):
    console, buf = _plain(monkeypatch, "0")
    with progress_bar(console) as bar:
        task = bar.add_task("pretrain logo", total=300, info="")
        for step in (100, 200, 300):
            bar.update(task, completed=step, info=f"loss {1 / step:.4g}")
    lines = buf.getvalue().splitlines()
    assert lines[0] == "pretrain logo: started, 300 to do"
    assert [re.match(r"pretrain logo: (\d+)/300 \(\d+%\), \S+/s, ETA [\d:?]+ \| loss", x).group(1)
            for x in lines[1:4]] == ["100", "200", "300"]  # fmt: skip
    final = r"pretrain logo: 300/300 \(100%\), \S+/s, done in \d:\d\d:\d\d \| loss 0.003333"
    assert re.fullmatch(final, lines[4]), lines[4]
    assert len(lines) == 5 and "━" not in buf.getvalue()  # never a bar


def test_short_redirected_run_prints_a_start_and_a_final_line(monkeypatch):
    console, buf = _plain(monkeypatch, None)  # the default interval, 30 s: longer than this run
    with progress_bar(console) as bar:
        task = bar.add_task("macql", total=1000, info="")
        bar.update(task, completed=1000, info="loss 0.5 | eval win 40%, return 1.2")
    lines = buf.getvalue().splitlines()
    assert lines[0] == "macql: started, 1,000 to do"
    assert lines[1].startswith("macql: 1,000/1,000 (100%), ") and " done in " in lines[1]
    assert lines[1].endswith("| loss 0.5 | eval win 40%, return 1.2") and len(lines) == 2


def test_failed_redirected_run_prints_no_final_line(monkeypatch):
    console, buf = _plain(monkeypatch, None)
    with pytest.raises(RuntimeError), progress_bar(console) as bar:
        bar.add_task("macql", total=1000, info="")
        raise RuntimeError("boom")
    assert buf.getvalue().splitlines() == ["macql: started, 1,000 to do"]


def test_nothing_is_printed_before_the_first_task(monkeypatch):
    console, buf = _plain(monkeypatch, "0")
    with progress_bar(console):
        pass
    assert buf.getvalue() == ""


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pty")
def test_pretrain_in_an_80_column_terminal(tmp_path):
    """A real `logo pretrain` on a pseudo-terminal 80 columns wide: each redraw of the progress line
    holds the step count, the rate and the time left, and no line is wider than the terminal."""
    import pty

    data = tmp_path / "toy_medium.h5"
    write_dataset(data, episodes(40, seed=0), {"map_name": "toy", "noop_action": NOOP})
    env = {**os.environ, "COLUMNS": "80", "LINES": "24", "TERM": "xterm",
           "PYTHONPATH": str(Path(__file__).parents[1] / "src")}  # fmt: skip
    env.pop("NO_COLOR", None)
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "logo_cli", "pretrain", "--data", str(data), "--out", str(tmp_path / "run"),
         "--steps", "60", "--hidden", "32", "--latent", "8", "--batch-size", "64", "--device", "cpu",
         "--workspace", str(tmp_path / "ws")],
        stdin=child, stdout=subprocess.DEVNULL, stderr=child, env=env, close_fds=True,
    )  # fmt: skip
    os.close(child)
    chunks = []
    while True:
        ready, _, _ = select.select([main], [], [], 300)
        if not ready:
            break
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the child closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    assert proc.wait(timeout=60) == 0, b"".join(chunks).decode(errors="replace")
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07", "", b"".join(chunks).decode())
    frames = [x.strip("\r") for x in re.split(r"[\r\n]+", text) if "pretrain logo" in x]
    assert frames, text
    for frame in frames:
        assert len(frame) <= 80, frame
        assert re.search(r"pretrain logo .*\b\d+/60 \S+/s (ETA|in) (\d:\d\d:\d\d|\?)", frame), frame
    assert re.search(r"\b60/60 \S+/s in \d:\d\d:\d\d", frames[-1]), frames[-1]
