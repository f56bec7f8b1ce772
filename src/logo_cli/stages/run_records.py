"""What a training run (pretrain, train-policy) records about itself besides its weights: its config
as JSON values, and, when it resumes, the metrics.jsonl lines it keeps."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any


def config_dict(cfg: Any) -> dict:
    """A stage config dataclass as JSON values (paths as strings), for the manifest and the resume check."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}


def metrics_up_to(path: Path, up_to: int) -> list[str]:
    """Lines of metrics.jsonl up to a step: a resumed run drops what came after its checkpoint."""
    if not path.is_file():
        return []
    return [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= up_to]
