"""Finding artifacts under a folder without an index (a missing or unreadable index.json)."""

from __future__ import annotations

import os
from pathlib import Path

from logo_cli.workspace.artifact_files import (
    artifact_inputs,
    artifact_state,
    created_time,
    manifest_of,
    read_json,
    recorded_defaults,
    zarr_attrs,
)
from logo_cli.workspace.entry import Entry, resolve_recorded_input
from logo_cli.workspace.paths import INDEX, MANIFEST, STAGES, absolute


def scan(root: Path, max_depth: int = 4) -> list[Entry]:
    """Artifacts found under `root` (run directories, buffers, evaluation files), oldest first."""
    found: list[Entry] = []
    bases = [Path.cwd(), absolute(root).parent]

    def add(stage: str, path: Path, stamp: Path) -> None:
        if artifact_state(stage, path) == "missing":
            return
        try:
            tie = stamp.stat().st_mtime
        except OSError:
            tie = 0.0
        inputs = artifact_inputs(stage, path)
        for v in inputs.values():
            v["path"] = str(resolve_recorded_input(v["path"], bases))
        recorded = recorded_defaults(stage, path)
        found.append(Entry(stage, path, created_time(stage, path) or tie, inputs, recorded, tie=tie))

    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        depth = len(d.relative_to(root).parts)
        dirnames[:] = sorted(n for n in dirnames if not n.startswith(".") and not n.endswith(".tmp"))
        if d != root:
            if d.name.endswith(".partial") and (d / "checkpoint.pt").is_file():
                final = d.with_name(d.name.removesuffix(".partial"))
                if not (final / MANIFEST).is_file():
                    add("train-policy", final, d / "checkpoint.pt")
                dirnames[:] = []
                continue
            attrs = zarr_attrs(d)
            if attrs is not None:
                if attrs.get("stage") == "rollout":
                    add("rollout", d, d / "zarr.json")
                dirnames[:] = []
                continue
            if (d / MANIFEST).is_file():
                stage = (manifest_of(d) or {}).get("stage")
                if stage in STAGES:
                    add(str(stage), d, d / MANIFEST)
                dirnames[:] = []
                continue
            if (d / "checkpoint.pt").is_file():
                add("pretrain", d, d / "checkpoint.pt")
                dirnames[:] = []
                continue
        for name in filenames:
            if name.endswith(".json") and name not in (INDEX, MANIFEST, "metrics.json"):
                data = read_json(d / name, limit=16 << 20)
                if data is not None and data.get("stage") == "evaluate":
                    add("evaluate", d / name, d / name)
        if depth >= max_depth:
            dirnames[:] = []
    return sorted(found, key=lambda e: (e.time, e.tie))
