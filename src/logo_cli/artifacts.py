"""Run directories, manifests and checkpoints.

Every stage run writes a directory holding `manifest.json` (stage, format version, resolved config,
inputs with content hashes, package version, provenance: command line, git commit, library
versions; seed, wall time, metrics) beside its payload. Files are
written to a temporary name and renamed into place, so a crash never leaves a half-written artifact
under the final name. Checkpoints are plain tensors and containers, loaded with
`torch.load(weights_only=True)`: a checkpoint is data, never code to unpickle.

Every manifest and checkpoint carries a `format_version`; readers accept a file without one as
version 1 (files written before the field existed) and name the version found and the one expected
when they cannot read it. Manifests are type-checked on load, so a hand-edited or foreign
`manifest.json` is one line, never a crash further on.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from logo_cli import __version__
from logo_cli.errors import LogoError, one_line

MANIFEST = "manifest.json"
SCHEMA_VERSION = 1  # the manifest format version (also written as "schema_version" for older readers)
MANIFEST_FORMAT_VERSION = SCHEMA_VERSION
# Types of the manifest fields readers use (None allowed where a run may not record one).
_MANIFEST_FIELDS: dict[str, tuple[type, ...]] = {
    "stage": (str,),
    "config": (dict,),
    "inputs": (dict,),
    "metrics": (dict,),
    "seed": (int, type(None)),
    "wall_time_s": (int, float, type(None)),
    "created": (str, type(None)),
    "package": (dict, type(None)),
    "host": (dict, type(None)),
    "provenance": (dict, type(None)),  # absent in manifests written before it was recorded
}


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


def jsonable(obj: Any) -> Any:
    """A config (dataclass, paths, tuples, numpy scalars) as the JSON values a manifest records."""
    return _jsonable(obj)


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
            f.flush()
            os.fsync(f.fileno())  # on disk before it replaces the old file
        publish(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise _named(e, path) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fsync(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _named(e: OSError, path: Path) -> OSError:
    """The same error, naming `path` when it named no file (a failed write(2): disk full, ...)."""
    if e.filename is not None:
        return e
    return OSError(e.errno, e.strerror or str(e), str(path))


def make_manifest(
    stage: str,
    config: Any,
    inputs: dict[str, str | Path] | None = None,
    seed: int | None = None,
    metrics: dict | None = None,
    extra: dict | None = None,
    wall_time_s: float | None = None,
    artifact: str | Path | None = None,
) -> dict:
    """A manifest dict; `inputs` maps a role ("data", "model") to a path whose hash is recorded.

    `artifact` is the run directory the manifest will end up in (its final name, not a staging one):
    inputs are recorded both absolute and relative to it (see logo_cli.provenance)."""
    from logo_cli.provenance import input_record, provenance_block

    return {
        "stage": stage,
        "format_version": MANIFEST_FORMAT_VERSION,
        "schema_version": SCHEMA_VERSION,
        "package": {"name": "logo-cli", "version": __version__},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": {"python": platform.python_version(), "machine": platform.machine()},
        "config": _jsonable(config),
        "inputs": {
            role: {**input_record(p, artifact), "hash": file_hash(p)} for role, p in (inputs or {}).items()
        },
        "provenance": provenance_block(),
        "seed": seed,
        "wall_time_s": wall_time_s,
        "metrics": _jsonable(metrics or {}),
        **_jsonable(extra or {}),
    }


def format_version(doc: dict, *legacy_keys: str) -> object:
    """The format version a manifest / checkpoint / buffer declares: `format_version`, else the
    first legacy key present, else 1 (files written before versions were recorded)."""
    for key in ("format_version", *legacy_keys):
        if key in doc:
            return doc[key]
    return 1


def check_format_version(found: object, supported: int | tuple[int, ...], what: str, source: str) -> int:
    """One-line LogoError naming the version found and the one(s) this logo-cli reads."""
    versions = (supported,) if isinstance(supported, int) else tuple(supported)
    if isinstance(found, bool) or not isinstance(found, int) or found not in versions:
        expected = " or ".join(map(str, versions))
        newer = isinstance(found, int) and not isinstance(found, bool) and found > max(versions)
        hint = (
            "written by a newer logo-cli: upgrade logo-cli"
            if newer
            else "rewrite it with this logo-cli (rerun the stage)"
        )
        raise LogoError(
            f"{source}: {what} format version {found!r}, but logo-cli {__version__} reads version "
            f"{expected} ({hint})"
        )
    return found


def read_manifest(run_dir: str | Path, stage: str | None = None) -> dict:
    """Read a run directory's manifest; one-line error when missing, unreadable, garbled (not an
    object, fields of the wrong type), of another format version or of another stage."""
    path = Path(run_dir) / MANIFEST
    if not path.is_file():
        if path.exists() or path.is_symlink():
            raise LogoError(f"{path}: not a readable file")
        raise LogoError(f"{run_dir}: not a logo run directory (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LogoError(f"{path}: unreadable manifest ({e})") from None
    except OSError as e:
        raise LogoError(f"{path}: unreadable manifest ({e.strerror or type(e).__name__})") from None
    if not isinstance(manifest, dict):
        raise LogoError(f"{path}: garbled manifest (a JSON {type(manifest).__name__}, expected an object)")
    check_format_version(
        format_version(manifest, "schema_version"), MANIFEST_FORMAT_VERSION, "manifest", str(path)
    )
    if "stage" not in manifest:
        raise LogoError(f"{path}: garbled manifest (no 'stage')")
    for key, types in _MANIFEST_FIELDS.items():
        if key in manifest and not isinstance(manifest[key], types):
            names = {
                dict: "an object",
                str: "a string",
                int: "an integer",
                float: "a number",
                type(None): "null",
            }
            expected = " or ".join(names.get(t, t.__name__) for t in types)
            raise LogoError(
                f"{path}: garbled manifest ('{key}' is {_json_type(manifest[key])}, expected {expected})"
            )
    for role, spec in (manifest.get("inputs") or {}).items():
        if not isinstance(spec, dict) or not all(isinstance(spec.get(k, ""), str) for k in ("path", "hash")):
            raise LogoError(f"{path}: garbled manifest (input '{role}' is not {{path, hash}})")
    if stage is not None and manifest.get("stage") != stage:
        raise LogoError(f"{run_dir}: a '{manifest.get('stage')}' run, expected a '{stage}' run")
    return manifest


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)


def save_checkpoint(path: str | Path, payload: dict) -> None:
    """torch.save to a temporary file, then rename into place."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        # Serialised in memory, then written by Python: a failed write raises its OSError (ENOSPC,
        # EDQUOT, EIO, ...), where torch's own writer reports only "[enforce fail at
        # inline_container.cc:672] . unexpected pos ...". A checkpoint here is a few MB.
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        with open(tmp, "wb") as f:
            f.write(buffer.getbuffer())
        _fsync(tmp)  # on disk before it replaces the old file
        publish(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise _named(e, path) from None
    except RuntimeError as e:  # torch's zip writer reports a failed write (disk full) this way
        Path(tmp).unlink(missing_ok=True)
        if "write" not in str(e).lower():
            raise
        raise LogoError(f"{path}: could not write the checkpoint ({one_line(e, 160)}); disk full?") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path, device: str = "cpu") -> dict:
    """Load a checkpoint as data only (weights_only=True); one-line error when missing or invalid."""
    import torch

    path = Path(path)
    if not path.is_file():
        if path.is_dir():
            raise LogoError(f"{path}: a folder, not a checkpoint file")
        raise LogoError(f"{path}: checkpoint not found")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise LogoError(f"{path}: unreadable checkpoint ({e.strerror or one_line(e)})") from None
    if head.startswith(b"\x89HDF"):
        raise LogoError(f"{path}: not a valid logo checkpoint (an HDF5 dataset)")
    if not head.startswith((b"PK\x03\x04", b"\x80")):  # torch's zip format, or its legacy pickle
        raise LogoError(f"{path}: not a valid logo checkpoint (not a torch checkpoint file)")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except OSError as e:
        raise LogoError(f"{path}: unreadable checkpoint ({e.strerror or one_line(e)})") from None
    except MemoryError:
        raise LogoError(f"{path}: checkpoint too large to load into memory") from None
    except Exception as e:  # a corrupt or foreign file can fail anywhere inside the unpickler
        if "Weights only load failed" in str(e):
            raise LogoError(
                f"{path}: not a valid logo checkpoint (not plain data: a corrupt file, or one holding "
                "code or objects; checkpoints are loaded as data only and never run code)"
            ) from None
        detail = one_line(e, 160)
        first = f"{type(e).__name__}: {detail}" if detail else type(e).__name__
        raise LogoError(f"{path}: not a valid logo checkpoint ({first})") from None


@contextmanager
def staged_dir(final: str | Path, overwrite: bool = False, kind: str = "behaviour"):
    """Yield a temporary sibling directory; on success it is swapped in for `final`, on error removed.

    A run that fails or is interrupted leaves nothing under the final name and the previous
    artifact untouched; --overwrite replaces only an artifact of `kind` (see outputs.building).
    """
    from logo_cli.outputs import building

    with building(final, kind, overwrite, directory=True) as tmp:
        yield tmp


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
