"""What the workspace reads from the artifacts on disk (manifests, buffer attributes, evaluation
JSON), torch-free: their state, recorded inputs, creation time and defaults; and the defaults a
command chose, added to an artifact afterwards."""

from __future__ import annotations

import calendar
import time
from pathlib import Path
from typing import Any

from logo_cli.artifact_kind import json_object, zarr_attributes
from logo_cli.workspace.paths import MANIFEST

READ_LIMIT = 64 << 20  # bytes: a larger JSON file is not an artifact's record


def partial_dir(out: Path) -> Path:
    """Where train-policy keeps an unfinished run (stages.train_policy.partial_dir; torch-free here)."""
    return out.with_name(out.name + ".partial")


def read_json(path: Path, limit: int = READ_LIMIT) -> dict | None:
    """A JSON object the workspace reads (manifests, evaluation results, the index), or None."""
    return json_object(path, limit)


def zarr_attrs(path: Path) -> dict | None:
    """A buffer's attributes, or None."""
    return zarr_attributes(path, READ_LIMIT)


def manifest_of(path: Path) -> dict | None:
    """A run directory's manifest, or None when absent or unreadable."""
    return read_json(path / MANIFEST)


def artifact_state(stage: str, path: Path) -> str:
    """'complete', 'interrupted' (resumable or partial) or 'missing'."""
    if stage in ("pretrain", "train-policy", "calibrate"):
        if (path / MANIFEST).is_file():
            return "complete"
        if stage == "pretrain" and (path / "checkpoint.pt").is_file():
            return "interrupted"
        if stage == "train-policy" and (partial_dir(path) / "checkpoint.pt").is_file():
            return "interrupted"
        return "missing"
    if stage == "rollout":
        attrs = zarr_attrs(path)
        if attrs is None:
            return "missing"
        return "complete" if attrs.get("complete") is True else "interrupted"
    return "complete" if path.is_file() else "missing"


def artifact_inputs(stage: str, path: Path) -> dict[str, dict]:
    """role -> {"path", "hash"} as the artifact recorded them: where the input is now when its
    artifact-relative or absolute path (in that order: a copied project reads its own files) finds it
    (logo_cli.provenance), else the path as given to the stage."""
    found: dict[str, dict] = {}
    if stage in ("pretrain", "train-policy", "calibrate"):
        m = manifest_of(path) or {}
        for role, v in (m.get("inputs") or {}).items():
            if isinstance(v, dict) and v.get("path"):
                found[role] = {"path": str(_where(v, path)), "hash": v.get("hash")}
    elif stage == "rollout" and isinstance((zarr_attrs(path) or {}).get("inputs"), dict):
        for role, v in zarr_attrs(path)["inputs"].items():
            if isinstance(v, dict) and v.get("path"):
                found[role] = {"path": str(_where(v, path)), "hash": v.get("hash")}
    elif stage == "rollout":  # buffers written before inputs were recorded like manifests
        a = zarr_attrs(path) or {}
        model, data, policy = a.get("model") or {}, a.get("source_data") or {}, a.get("policy") or {}
        if model.get("checkpoint"):
            found["model"] = {"path": str(model["checkpoint"]), "hash": model.get("hash")}
        if data.get("path"):
            found["data"] = {"path": str(data["path"]), "hash": data.get("hash")}
        if policy.get("kind") == "checkpoint" and policy.get("path"):
            found["policy"] = {"path": str(policy["path"]), "hash": policy.get("hash")}
    elif stage == "evaluate":
        d = read_json(path) or {}
        for role, v in (d.get("inputs") or {}).items():
            if isinstance(v, dict) and v.get("path"):
                found[role] = {"path": str(_where(v, path.parent)), "hash": v.get("hash")}
    return found


def _where(spec: dict, base: Path) -> Path:
    from logo_cli.provenance import resolve_input

    return resolve_input(spec, base, relative_first=True)


def created_time(stage: str, path: Path) -> float | None:
    """The creation time an artifact records (seconds since the epoch), if any."""
    if stage == "rollout":
        text = (zarr_attrs(path) or {}).get("created")
    elif stage == "evaluate":
        text = (read_json(path) or {}).get("created")
    else:
        text = (manifest_of(path) or {}).get("created")
    try:
        return float(calendar.timegm(time.strptime(str(text), "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return None


def recorded_meta(stage: str, path: Path) -> dict:
    """What a stage's artifact records about its run: a rollout buffer's attributes, an evaluation's
    result JSON, or any other stage's manifest ({} when unreadable)."""
    if stage == "rollout":
        meta = zarr_attrs(path)
    elif stage == "evaluate":
        meta = read_json(path)
    else:
        meta = manifest_of(path)
    return meta if isinstance(meta, dict) else {}


def recorded_defaults(stage: str, path: Path) -> dict:
    """The defaults a command recorded in the artifact (manifest, buffer attributes or JSON)."""
    found = recorded_meta(stage, path).get("defaults")
    return dict(found) if isinstance(found, dict) else {}


def signature(path: Path) -> list[int] | None:
    """[size, newest mtime_ns, files] of a file or a directory tree; None when missing."""
    try:
        if path.is_dir():
            size = newest = count = 0
            for p in path.rglob("*"):
                if p.is_file():
                    st = p.stat()
                    size, newest, count = size + st.st_size, max(newest, st.st_mtime_ns), count + 1
            return [size, newest, count]
        st = path.stat()
        return [st.st_size, st.st_mtime_ns, 1]
    except OSError:
        return None


def annotate(stage: str, path: Path, fields: dict[str, Any]) -> None:
    """Add fields (the defaults a command chose) to an artifact's manifest or buffer attributes."""
    from logo_cli.artifacts import write_json_atomic

    if stage in ("pretrain", "train-policy", "calibrate"):
        manifest = manifest_of(path)
        if manifest is not None:
            manifest.update(fields)
            write_json_atomic(path / MANIFEST, manifest)
    elif stage == "rollout":
        meta = read_json(path / "zarr.json")  # the group's metadata: its attributes live there
        if meta is not None and isinstance(meta.get("attributes"), dict):
            meta["attributes"].update(fields)
            write_json_atomic(path / "zarr.json", meta)
