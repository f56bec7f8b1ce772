"""One recorded artifact, as the index and the scan describe it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logo_cli.workspace.artifact_files import artifact_state
from logo_cli.workspace.paths import absolute


@dataclass
class Entry:
    """One recorded artifact. `path` is usable as is; input paths are absolute."""

    stage: str
    path: Path
    time: float  # when recorded (index) or created (scan), seconds since the epoch
    inputs: dict[str, dict] = field(default_factory=dict)  # role -> {path, hash, sig}
    defaults: dict[str, Any] = field(default_factory=dict)
    tie: float = 0.0  # modification time, orders artifacts created within the same second

    @property
    def state(self) -> str:
        return artifact_state(self.stage, self.path)

    @property
    def key(self) -> Path:
        return absolute(self.path)


def resolve_recorded_input(p: str, bases: list[Path]) -> Path:
    """An input path as recorded (relative to where the stage ran) made absolute: the first base it
    exists under, else the first base."""
    path = Path(p)
    if path.is_absolute():
        return absolute(path)
    for base in bases:
        if (base / path).exists():
            return absolute(base / path)
    return absolute(bases[0] / path)
