"""What a rerun of a stage command does with the artifact already at its output: the one decision
every stage command (pretrain, rollout, train-policy, evaluate, calibrate) takes before any work.

- nothing there, or an unfinished run (a pretrain or train-policy checkpoint, an incomplete buffer):
  run as before (the stage resumes or continues what it finds);
- `--overwrite`: run (the stage replaces the artifact);
- a finished artifact made with the same options from the same inputs: "up to date", nothing runs;
- a finished artifact made otherwise, with `--out` given: refused, naming what differs;
- the same, with the default output: the run goes to a sibling named for what differs
  (`<name>-hidden128`, or `<name>-c<hash>` for several differences), never over the other run.

The options compared are the stage config's fields, except where the output goes and how a run is
watched or placed (IGNORED); inputs are compared by path and by content (the hash the artifact
recorded).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logo_cli.errors import LogoError
from logo_cli.workspace.artifact_files import (
    artifact_inputs,
    artifact_state,
    recorded_meta,
)
from logo_cli.workspace.index import Workspace
from logo_cli.workspace.paths import absolute, show

# Config fields that do not change what a run computes: where it goes, how it is watched, the device.
IGNORED = frozenset(
    {"out", "overwrite", "resume", "device", "logger", "log_every", "allow_incomplete", "chunk_rows",
     "torch_threads"}
)  # fmt: skip
# Calibrate's list of runs: compared as its inputs model_0, model_1, ...
INPUT_LISTS = frozenset({"models"})
# A difference's label in a folder name: a few characters of the option, then the new value.
MAX_LABEL = 24


@dataclass(frozen=True)
class Difference:
    option: str
    old: Any
    new: Any

    def __str__(self) -> str:
        return f"{self.option}: {_text(self.old)} -> {_text(self.new)}"


def _text(v: Any) -> str:
    return "none" if v is None else (str(v).lower() if isinstance(v, bool) else str(v))


def recorded_config(stage: str, path: Path) -> dict | None:
    """The stage config a finished artifact recorded (manifest, buffer attributes or result JSON)."""
    if stage == "collect":
        return _dataset_config(path)
    cfg = recorded_meta(stage, path).get("config")
    return cfg if isinstance(cfg, dict) else None


def _dataset_config(path: Path) -> dict | None:
    """The options a dataset `logo collect` wrote records (its `config` attribute), or None."""
    try:
        import h5py

        with h5py.File(path, "r") as f:
            text = f.attrs.get("config")
        cfg = (
            json.loads(text.decode() if isinstance(text, bytes) else str(text)) if text is not None else None
        )
    except (OSError, ValueError, TypeError):
        return None
    return cfg if isinstance(cfg, dict) else None


def _norm(v: Any) -> str:
    if isinstance(v, Path):
        v = str(v)
    if isinstance(v, tuple):
        v = list(v)
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return json.dumps(v, sort_keys=True, default=str)


def option_differences(
    old: dict, new: dict, inputs: frozenset = frozenset(), names: dict[str, str] | None = None
) -> list[Difference]:
    """The options (config fields) whose recorded value differs from the new one; the fields named
    in `inputs` are compared as inputs instead. `names`: a field's option where it is not
    `--<field>`."""
    names = names or {}
    found = []
    for key, value in new.items():
        if key in IGNORED or key in INPUT_LISTS or key in inputs:
            continue
        if key not in old:  # a field newer than the artifact: its value then was the default
            continue
        if _norm(old[key]) != _norm(value):
            found.append(Difference(names.get(key, "--" + key.replace("_", "-")), old[key], value))
    return found


def input_differences(ws: Workspace, stage: str, out: Path, inputs: dict[str, Path]) -> list[Difference]:
    """Inputs that are not those the artifact was made from: another file (with other content), a
    role it did not have, or the same file changed since."""
    entry = ws.find(out)
    recorded = dict(entry.inputs) if entry is not None else artifact_inputs(stage, out)
    found = []
    # a recorded role the command did not name (an evaluated behaviour policy's file) is its option's
    # business; a run's other inputs (a synthetic source, calibrate's models) count when missing
    roles = set(inputs) | {r for r in recorded if r in ("synthetic", "model") or r.startswith("model_")}
    for role in sorted(roles):
        option = "--model" if role.startswith("model_") else "--" + role
        old, new = recorded.get(role), inputs.get(role)
        if old is None or new is None:
            found.append(Difference(option, show(old["path"]) if old else None, show(new) if new else None))
            continue
        if not _same_place(Path(old["path"]), Path(new)):
            same = bool(old.get("hash")) and Path(new).is_file() and ws._hash(absolute(new)) == old["hash"]
            if not same:
                found.append(Difference(option, show(old["path"]), show(new)))
        elif ws.input_state(old) == "changed":
            found.append(Difference(option, f"{show(new)} as it was", "its content now"))
    return found


def _noun(stage: str) -> str:
    return {"collect": "dataset", "rollout": "rollout buffer", "evaluate": "evaluate result"}.get(
        stage, f"{stage} run"
    )


def _same_place(recorded: Path, given: Path) -> bool:
    """The recorded input is the given path, or a file of that run (a run's model.pt, policy.pt)."""
    recorded, given = absolute(recorded), absolute(given)
    return recorded == given or recorded.parent == given


def _label(diffs: list[Difference], config: dict) -> str:
    """A folder-name suffix for what differs: the options and their new values when short, else a
    hash of the options that make the run."""
    if diffs and all(not d.option.startswith("--model") and d.option not in ("--data",) for d in diffs):
        text = "-".join(d.option.split("/")[0].lstrip("-").replace("-", "") + _text(d.new) for d in diffs)
        text = "".join(c if c.isalnum() or c in "._" else "_" for c in text.replace("-", ""))
        if len(diffs) <= 2 and len(text) <= MAX_LABEL:
            return text
    key = {k: _norm(v) for k, v in config.items() if k not in IGNORED}
    return "c" + hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:6]


def _differences(ws, stage, path, config, inputs, names) -> list[Difference] | None:
    """What differs from the finished artifact at `path` (empty: the same run), or None when there is
    no finished artifact there."""
    if artifact_state(stage, path) != "complete":
        return None
    old = recorded_config(stage, path)
    if old is None:
        return None
    return option_differences(old, config, frozenset(inputs), names) + input_differences(
        ws, stage, path, inputs
    )


def decide(
    ws: Workspace,
    stage: str,
    out: Path,
    config: dict,
    inputs: dict[str, Path],
    *,
    out_given: bool,
    overwrite: bool,
    say: Callable[[str], None],
    names: dict[str, str] | None = None,
) -> Path | None:
    """The output this run writes, or None when the artifact there is up to date (said in one line).

    `config` is the stage config as JSON values; `inputs` maps each input role (as the artifact
    records it: data, model, synthetic, policy, model_0..) to the path given or defaulted."""
    if overwrite or (out.is_symlink() and not out.exists()):
        return out
    diffs = _differences(ws, stage, out, config, inputs, names)
    if diffs is None:
        return out
    if not diffs:
        say(f"up to date: {show(out)} (same options and inputs; --overwrite runs it again)")
        return None
    what = "; ".join(str(d) for d in diffs)
    if out_given:
        raise LogoError(
            f"{show(out)}: a finished {_noun(stage)} with other settings ({what}); pass --overwrite to "
            "replace it, or another --out"
        )
    if any(d.new == "its content now" for d in diffs):
        raise LogoError(
            f"{show(out)}: made from inputs that changed since ({what}); pass --overwrite to run it again"
        )
    suffix = out.suffix if stage in ("rollout", "evaluate") else ""
    stem = out.name[: len(out.name) - len(suffix)] if suffix else out.name
    for label in (_label(diffs, config), _label([], config)):
        other = out.with_name(f"{stem}-{label}{suffix}")
        again = _differences(ws, stage, other, config, inputs, names)
        if again is None:
            say(f"{show(out)} holds a run with other settings ({what}): writing {show(other)}")
            return other
        if not again:
            say(f"up to date: {show(other)} (same options and inputs; --overwrite runs it again)")
            return None
    raise LogoError(
        f"{show(out)}: a finished {_noun(stage)} with other settings ({what}), and so are the ones "
        "named for them; pass --out"
    )
