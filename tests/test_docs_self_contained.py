"""The docs and the code stand alone: no path outside the repository, no design notes kept elsewhere."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Absolute paths of a development machine, and the notes that live beside the repository.
OUTSIDE = re.compile(r"/work/|/home/\w|/root/|shared/design|\.\./shared|logo-method\.md|data-formats\.md")


def _texts():
    files = [
        ROOT / "README.md",
        *sorted((ROOT / "docs").rglob("*.md")),
        *sorted((ROOT / "docs").rglob("*.json")),
    ]
    files += sorted((ROOT / "src").rglob("*.py"))
    for path in files:
        yield path, path.read_text(encoding="utf-8")


def test_the_scan_sees_the_docs_and_the_code():
    names = {p.name for p, _ in _texts()}
    assert {"README.md", "method.md", "smax_3m.json", "cli.py"} <= names


def test_no_path_outside_the_repository():
    hits = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path, text in _texts()
        for n, line in enumerate(text.splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert not hits, "\n".join(hits)


def test_the_pattern_catches_what_it_is_for():
    for bad in ("see /work/shared/design/x.md", "(logo-method.md decision 4)", "../shared/notes"):
        assert OUTSIDE.search(bad)
    assert not OUTSIDE.search("docs/method.md decision 4, ../repro worktree")
