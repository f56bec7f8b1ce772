"""Checks on a CLI result that many test files share."""

from __future__ import annotations

import re

# A redirected run announces each progress task in a plain line ("pretrain logo: started, 5 to do")
# before any error: not part of the error, which stays one line.
PROGRESS_START = re.compile(r"^[^:|]+: started(, [\d,]+ to do)?$")


def without_progress(lines: list[str]) -> list[str]:
    """The non-empty lines that are not progress start lines."""
    return [ln for ln in lines if ln.strip() and not PROGRESS_START.match(ln)]


def ok(res):
    """The command succeeded; on failure the assertion shows its output."""
    assert res.exit_code == 0, res.output
    return res


def one_line_error(res, *needles: str) -> str:
    """The command was refused (exit 2) with one line that names every needle; returns that line."""
    assert res.exit_code == 2, res.output
    lines = without_progress(res.output.strip().splitlines())
    assert len(lines) == 1, res.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]
