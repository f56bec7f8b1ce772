"""Run directories, manifests and checkpoints.

Every stage run writes a directory holding `manifest.json` (stage, schema version, resolved config,
inputs with content hashes, package version, seed, wall time, metrics) beside its payload. Files are
written to a temporary name and renamed into place, so a crash never leaves a half-written artifact
under the final name. Checkpoints are plain tensors and containers, loaded with
`torch.load(weights_only=True)`: a checkpoint is data, never code to unpickle.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from logo_cli import __version__
from logo_cli.errors import LogoError

MANIFEST = "manifest.json"
SCHEMA_VERSION = 1


def file_hash(path: str | Path, chunk: int = 1 << 22) -> str:
    """sha256 of a file, or of every file in a directory (sorted relative paths), as 'sha256:<hex>'."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        if path.is_dir():
            h.update(str(p.relative_to(path)).encode())
        with open(p, "rb") as f:
            while block := f.read(chunk):
                h.update(block)
    return "sha256:" + h.hexdigest()


def _jsonable(obj: Any) -> Any:
    if is_dataclass(obj):
        return _jsonable(asdict(obj))
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        return obj.item()
    return obj


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def publish(tmp: str | Path, final: str | Path) -> None:
    """Rename a finished temporary file or directory into place with the usual permissions.

    mkstemp/mkdtemp create private (0600/0700) entries; a published artifact should read like any
    file the user made (0644/0755 under the common umask).
    """
    tmp = Path(tmp)
    base = 0o777 if tmp.is_dir() else 0o666
    tmp.chmod(base & ~_current_umask())
    os.replace(tmp, final)


def write_json_atomic(path: str | Path, data: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(_jsonable(data), f, indent=2, sort_keys=False)
            f.write("\n")
        publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def make_manifest(
    stage: str,
    config: Any,
    inputs: dict[str, str | Path] | None = None,
    seed: int | None = None,
    metrics: dict | None = None,
    extra: dict | None = None,
    wall_time_s: float | None = None,
) -> dict:
    """A manifest dict; `inputs` maps a role ("data", "model") to a path whose hash is recorded."""
    return {
        "stage": stage,
        "schema_version": SCHEMA_VERSION,
        "package": {"name": "logo-cli", "version": __version__},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": {"python": platform.python_version(), "machine": platform.machine()},
        "config": _jsonable(config),
        "inputs": {role: {"path": str(p), "hash": file_hash(p)} for role, p in (inputs or {}).items()},
        "seed": seed,
        "wall_time_s": wall_time_s,
        "metrics": _jsonable(metrics or {}),
        **_jsonable(extra or {}),
    }


def read_manifest(run_dir: str | Path, stage: str | None = None) -> dict:
    """Read a run directory's manifest; one-line error when missing, unreadable or of another stage."""
    path = Path(run_dir) / MANIFEST
    if not path.is_file():
        raise LogoError(f"{run_dir}: not a logo run directory (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LogoError(f"{path}: unreadable manifest ({e})") from None
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise LogoError(f"{path}: schema version {manifest.get('schema_version')} is not {SCHEMA_VERSION}")
    if stage is not None and manifest.get("stage") != stage:
        raise LogoError(f"{run_dir}: a '{manifest.get('stage')}' run, expected a '{stage}' run")
    return manifest


def save_checkpoint(path: str | Path, payload: dict) -> None:
    """torch.save to a temporary file, then rename into place."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path, device: str = "cpu") -> dict:
    """Load a checkpoint as data only (weights_only=True); one-line error when missing or invalid."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise LogoError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # a corrupt or foreign file can fail anywhere inside the unpickler
        detail = str(e).strip().splitlines()[0] if str(e).strip() else ""
        first = f"{type(e).__name__}: {detail}" if detail else type(e).__name__
        raise LogoError(f"{path}: not a valid logo checkpoint ({first})") from None


@contextmanager
def staged_dir(final: str | Path, overwrite: bool = False):
    """Yield a temporary sibling directory; on success it is renamed to `final`, on error removed.

    A run that fails or is interrupted leaves nothing under the final name.
    """
    final = Path(final)
    if final.exists() and not overwrite:
        raise LogoError(f"{final}: already exists (pass --overwrite to replace it)")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        shutil.rmtree(final) if final.is_dir() else final.unlink()
    publish(tmp, final)


def resolve_device(name: str) -> str:
    """'auto' picks CUDA when present, else CPU; anything else is passed through after a check."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise LogoError(f"--device {name}: CUDA is not available on this machine")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise LogoError(f"--device {name}: expected auto, cpu or cuda[:N]")
    return name
