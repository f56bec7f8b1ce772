"""Checks on a CLI result that many test files share."""

from __future__ import annotations


def ok(res):
    """The command succeeded; on failure the assertion shows its output."""
    assert res.exit_code == 0, res.output
    return res


def one_line_error(res, *needles: str) -> str:
    """The command was refused (exit 2) with one line that names every needle; returns that line."""
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, res.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]
