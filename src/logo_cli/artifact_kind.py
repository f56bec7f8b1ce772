"""What is at a path: the one detector of logo artifact kinds (`artifact_kind`), and the small tests
it is built from, for the callers that ask one of them alone.

A run directory names its stage in manifest.json; a synthetic buffer is a zarr group whose attributes
say format "logo-synthetic"; an unfinished run holds a checkpoint.pt whose `format` names its stage; a
dataset is an HDF5 file; an evaluation result is a JSON file of format "logo-evaluate". outputs.py
refuses to replace anything but an artifact of the same kind with it. The workspace
(workspace/scan.py) asks another question, torch-free: which stage recorded an artifact, read from
the `stage` field every artifact it indexes carries.
"""

from __future__ import annotations

import json
from pathlib import Path

# What each kind of output is, for messages.
KIND_TEXT = {
    "dataset": "an .h5 dataset",
    "pretrain": "a pretrain run directory",
    "rollout": "a synthetic buffer (.zarr)",
    "train-policy": "a train-policy run directory",
    "calibrate": "a calibrate run directory",
    "evaluate": "an evaluate result (.json)",
    "behaviour": "a behaviour-ladder directory",
    "export": "an export directory (TorchScript policy)",
}
SYNTHETIC_FORMAT = "logo-synthetic"  # a synthetic buffer's format attribute (data/zarr_store/)
EVALUATE_FORMAT = "logo-evaluate"  # an evaluation result's format field (commands/evaluate.py)


def json_object(path: Path, limit: int | None = None) -> dict | None:
    """The JSON object in a file, or None when unreadable, larger than `limit` bytes or not an object."""
    try:
        if limit is not None and path.stat().st_size > limit:
            return None
        doc = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def zarr_attributes(path: Path, limit: int | None = None) -> dict | None:
    """A zarr v3 group's attributes (kept in its zarr.json), or None."""
    meta = json_object(path / "zarr.json", limit)
    if meta is None:
        return None
    attrs = meta.get("attributes")
    return attrs if isinstance(attrs, dict) else None


def is_synthetic_buffer(path: str | Path) -> bool:
    """True when `path` looks like a zarr group written by SyntheticWriter (cheap: reads zarr.json)."""
    attrs = zarr_attributes(Path(path))
    return attrs is not None and attrs.get("format") == SYNTHETIC_FORMAT


def is_finished_run(path: Path) -> bool:
    """A run directory whose manifest.json, written last, is there."""
    return path.is_dir() and (path / "manifest.json").is_file()


def checkpoint_format(path: Path) -> str | None:
    """The `format` field of a torch checkpoint (tensors memory-mapped: cheap), or None."""
    try:
        import torch

        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # any unreadable file: not an artifact we recognise
        return None
    return payload.get("format") if isinstance(payload, dict) else None


def artifact_kind(path: str | Path) -> str | None:
    """The logo artifact kind at `path` (a key of KIND_TEXT), "empty" for an empty folder, or None.

    Never raises: anything unreadable is simply not recognised (and so never replaced).
    """
    path = Path(path)
    try:
        if path.is_symlink():
            return None
        if path.is_dir():
            manifest = path / "manifest.json"
            if manifest.is_file():
                doc = json_object(manifest)
                stage = doc.get("stage") if doc else None
                return stage if stage in KIND_TEXT else None
            if (path / "zarr.json").is_file():
                return "rollout" if is_synthetic_buffer(path) else None
            if (path / "checkpoint.pt").is_file():  # an unfinished run
                fmt = checkpoint_format(path / "checkpoint.pt")
                return {"logo-pretrain-state": "pretrain", "logo-train-policy-state": "train-policy"}.get(
                    fmt or ""
                )
            if (path / "ladder.json").is_file():
                return "behaviour"
            if not any(path.iterdir()):
                return "empty"
            return None
        if path.is_file():
            import h5py

            if h5py.is_hdf5(path):  # the signature, wherever the superblock is (user blocks too)
                return "dataset"
            with open(path, "rb") as f:
                head = f.read(8)
            if head.lstrip()[:1] == b"{":
                doc = json_object(path)
                if doc and (doc.get("format") == EVALUATE_FORMAT or {"config", "win_rate"} <= doc.keys()):
                    return "evaluate"
            return None
    except OSError:
        return None
    return None


def describe_path(path: Path) -> str:
    """What is at a path that is not the expected artifact, in a few words."""
    kind = artifact_kind(path)
    if kind in KIND_TEXT:
        return KIND_TEXT[kind]
    if path.is_symlink():
        return "a symbolic link"
    if path.is_dir():
        return "a folder that is not a logo artifact"
    if path.is_file():
        return "a file that is not a logo artifact"
    return "something that is not a logo artifact"
