"""Where an artifact came from: its inputs (found from any directory), the code and the command.

Every stage records `provenance_block()` in its manifest (or its buffer's / dataset's attributes)
and its inputs with `input_record()`. An input is stored twice: as an absolute path, and relative to
the artifact's folder (a run directory or buffer, or the folder holding a file artifact), so a moved
or copied tree of artifacts still finds its inputs. `resolve_input()` reads both forms, and
the plain paths of manifests written before either existed.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

# Versions recorded (import name -> distribution name); those not installed are left out.
PACKAGES = {
    "logo_cli": "logo-cli",
    "torch": "torch",
    "jax": "jax",
    "numpy": "numpy",
    "h5py": "h5py",
    "zarr": "zarr",
}


def versions() -> dict[str, str]:
    """Versions of logo-cli and the numeric libraries, without importing any not yet imported (jax
    alone takes seconds to import)."""
    found = {}
    for module, dist in PACKAGES.items():
        loaded = sys.modules.get(module)
        version = getattr(loaded, "__version__", None) if loaded is not None else None
        if version is None:
            try:
                version = metadata.version(dist)
            except metadata.PackageNotFoundError:
                continue
        found[dist] = str(version)
    return found


@functools.lru_cache(maxsize=1)
def git_commit() -> dict[str, Any] | None:
    """{"commit", "dirty"} of the git checkout logo-cli runs from, or None (an installed wheel, no git,
    any failure: provenance never stops a run)."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if commit.returncode != 0:
            return None
        status = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no", "--", "."],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = commit.stdout.strip()
    if len(sha) < 40:
        return None
    dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    return {"commit": sha, "dirty": dirty}


def provenance_block() -> dict[str, Any]:
    """The code and command that made an artifact."""
    git = git_commit()
    return {
        "command": list(sys.argv),
        "cwd": os.getcwd(),
        "git_commit": git["commit"] if git else None,
        "git_dirty": git["dirty"] if git else None,
        "versions": versions(),
    }


def input_record(path: str | Path, base: str | Path | None) -> dict[str, str]:
    """{"path": absolute, "relative": from `base`, the artifact's folder} (no "relative" without one)."""
    absolute = os.path.abspath(path)
    record = {"path": absolute}
    if base is not None:
        record["relative"] = os.path.relpath(absolute, os.path.abspath(base))
    return record


def resolve_input(spec: dict, base: str | Path, relative_first: bool = False) -> Path:
    """Where a recorded input is now (`base`: the artifact's folder): its absolute path if it exists,
    else its path relative to the artifact, else (older manifests, which stored the path as given)
    that path from the current directory or from `base`; the recorded path itself when none exists.
    `relative_first`: the path relative to the artifact before the absolute one (the workspace's
    reading, so that a copied project finds its own copy of the data)."""
    raw = str(spec.get("path") or "")
    candidates = []
    if raw and os.path.isabs(raw):
        candidates.append(Path(raw))
    if isinstance(spec.get("relative"), str):
        candidates.insert(0 if relative_first else len(candidates), Path(base) / spec["relative"])
    if raw and not os.path.isabs(raw):
        candidates += [Path(raw), Path(base) / raw]
    for c in candidates:
        if c.exists():
            return Path(os.path.normpath(c))
    return Path(raw)
