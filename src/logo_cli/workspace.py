"""The workspace: the folder runs are written under, the index of what each stage wrote, and the
defaults that chain one stage to the next.

The workspace is `./runs` unless `--workspace` or the LOGO_WORKSPACE environment variable names
another folder. Default outputs live in one folder per stage:

    <workspace>/index.json             every recorded artifact, oldest first, and the newest per stage
    <workspace>/pretrain/<name>/       logo pretrain      (model.pt, manifest.json)
    <workspace>/rollout/<name>.zarr    logo rollout       (synthetic buffer)
    <workspace>/policy/<name>/         logo train-policy  (policy.pt, manifest.json)
    <workspace>/evaluate/<name>.json   logo evaluate
    <workspace>/calibrate/<name>/      logo calibrate     (metrics.json, plots, manifest.json)

Every stage run, finished or interrupted, is recorded in the index wherever its `--out` put it. The
index is rewritten atomically (temporary file + rename) under a lock, so parallel runs do not lose
each other's entries. When it is missing or unreadable, the workspace is scanned for artifacts
instead (ordered by their manifests' creation times) and the next recording rewrites it.

An artifact is *stale* when one of its inputs changed since it was made: the file is gone, or its
sha256 differs from the one recorded in the artifact's manifest. Size and modification time are
recorded beside each input when the artifact is indexed; while they are unchanged the file is taken
as unchanged without hashing it again (a touched but identical file is hashed and found unchanged).
An artifact made from a stale artifact is stale too.

Torch-free: `logo status` and the defaults read only JSON files.
"""

from __future__ import annotations

import calendar
import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logo_cli.errors import LogoError

ENV_VAR = "LOGO_WORKSPACE"
DEFAULT_ROOT = Path("runs")
INDEX = "index.json"
INDEX_FORMAT = "logo-workspace-index"
INDEX_VERSION = 1
MANIFEST = "manifest.json"
LOCK = ".index.lock"
MAX_ENTRIES = 1000  # the index keeps the newest this many artifacts
STAGES = ("collect", "pretrain", "rollout", "train-policy", "evaluate", "calibrate")
# Each stage's default folder under the workspace (collect's --out is always given).
SUBDIRS = {
    "pretrain": "pretrain",
    "rollout": "rollout",
    "train-policy": "policy",
    "evaluate": "evaluate",
    "calibrate": "calibrate",
}
# What to run to make a stage's artifact, for "nothing to chain from" messages.
MAKE = {
    "collect": "logo collect --quality medium --out DATA.h5",
    "pretrain": "logo pretrain --data DATA.h5",
    "rollout": "logo rollout",
    "train-policy": "logo train-policy",
    "evaluate": "logo evaluate",
    "calibrate": "logo calibrate",
}
WORKSPACE_HELP = (
    "Workspace: where default outputs go and where each stage records its newest artifact (default: ./runs)."
)
Say = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def root_from(option: Path | None) -> Path:
    """--workspace, else $LOGO_WORKSPACE, else ./runs (Typer already maps the variable onto the option;
    this also serves callers outside the CLI)."""
    if option is not None:
        return Path(option)
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else DEFAULT_ROOT


def _abs(path: str | Path) -> Path:
    """Absolute and normalised, without resolving symbolic links."""
    return Path(os.path.normpath(os.path.abspath(path)))


def show(path: str | Path) -> str:
    """A path as the user would type it: relative to the current directory when under it."""
    p = _abs(path)
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(p)


# --- artifacts on disk ----------------------------------------------------------------------------


def partial_dir(out: Path) -> Path:
    """Where train-policy keeps an unfinished run (stages.train_policy.partial_dir; torch-free here)."""
    return out.with_name(out.name + ".partial")


def _read_json(path: Path, limit: int = 64 << 20) -> dict | None:
    try:
        if path.stat().st_size > limit:
            return None
        data = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def zarr_attrs(path: Path) -> dict | None:
    meta = _read_json(path / "zarr.json")
    if meta is None:
        return None
    attrs = meta.get("attributes")
    return attrs if isinstance(attrs, dict) else None


def manifest_of(path: Path) -> dict | None:
    """A run directory's manifest, or None when absent or unreadable."""
    return _read_json(path / MANIFEST)


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
    """role -> {"path", "hash"} as the artifact recorded them: where the input is now when its absolute
    or artifact-relative path finds it (logo_cli.provenance), else the path as given to the stage."""
    from logo_cli.provenance import resolve_input

    found: dict[str, dict] = {}
    if stage in ("pretrain", "train-policy", "calibrate"):
        m = manifest_of(path) or {}
        for role, v in (m.get("inputs") or {}).items():
            if isinstance(v, dict) and v.get("path"):
                found[role] = {"path": str(resolve_input(v, path)), "hash": v.get("hash")}
    elif stage == "rollout" and isinstance((zarr_attrs(path) or {}).get("inputs"), dict):
        for role, v in zarr_attrs(path)["inputs"].items():
            if isinstance(v, dict) and v.get("path"):
                found[role] = {"path": str(resolve_input(v, path)), "hash": v.get("hash")}
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
        d = _read_json(path) or {}
        for role, v in (d.get("inputs") or {}).items():
            if isinstance(v, dict) and v.get("path"):
                found[role] = {"path": str(resolve_input(v, path.parent)), "hash": v.get("hash")}
    return found


def _created(stage: str, path: Path) -> float | None:
    """The creation time an artifact records (seconds since the epoch), if any."""
    if stage == "rollout":
        text = (zarr_attrs(path) or {}).get("created")
    elif stage == "evaluate":
        text = (_read_json(path) or {}).get("created")
    else:
        text = (manifest_of(path) or {}).get("created")
    try:
        return float(calendar.timegm(time.strptime(str(text), "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return None


def _recorded_defaults(stage: str, path: Path) -> dict:
    """The defaults a command recorded in the artifact (manifest, buffer attributes or JSON)."""
    if stage == "rollout":
        meta = zarr_attrs(path)
    elif stage == "evaluate":
        meta = _read_json(path)
    else:
        meta = manifest_of(path)
    found = (meta or {}).get("defaults")
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


# --- entries and the index ------------------------------------------------------------------------


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
        return _abs(self.path)


def _resolve_input(p: str, bases: list[Path]) -> Path:
    """An input path as recorded (relative to where the stage ran) made absolute: the first base it
    exists under, else the first base."""
    path = Path(p)
    if path.is_absolute():
        return _abs(path)
    for base in bases:
        if (base / path).exists():
            return _abs(base / path)
    return _abs(bases[0] / path)


class Workspace:
    def __init__(self, root: Path | None = None, say: Say | None = None):
        self.root = root_from(root)
        self._say = say or _quiet  # one-line notes (warnings) for stderr
        self._said: set[str] = set()
        self.source = "empty"  # where the entries came from: index, scan or empty
        self._entries: list[Entry] | None = None
        self._hashes: dict[Path, str] = {}

    def say(self, line: str) -> None:
        """A one-line note, each at most once (the index may be read more than once per command)."""
        if line not in self._said:
            self._said.add(line)
            self._say(line)

    @property
    def index_path(self) -> Path:
        return self.root / INDEX

    def out(self, stage: str, name: str) -> Path:
        """Default output of a stage: <workspace>/<stage folder>/<name>."""
        return self.root / SUBDIRS[stage] / name

    def __str__(self) -> str:
        return show(self.root)

    # reading ----------------------------------------------------------------------------------
    def entries(self) -> list[Entry]:
        """Every recorded artifact that still exists, oldest first."""
        if self._entries is None:
            self._entries, self.source = self._load()
        return self._entries

    def _load(self, quiet_missing: bool = False) -> tuple[list[Entry], str]:
        """From the index; else (warned) by scanning. `quiet_missing`: no warning for a missing index
        (when recording, which writes it)."""
        path = self.index_path
        if path.is_file():
            problem = None
            data = _read_json(path)
            if (
                data is None
                or data.get("format") != INDEX_FORMAT
                or not isinstance(data.get("artifacts"), list)
            ):
                problem = "not a workspace index"
            else:
                try:
                    found = [self._from_json(e) for e in data["artifacts"]]
                except (AttributeError, KeyError, TypeError, ValueError) as e:
                    problem = f"garbled entry ({type(e).__name__}: {e})"
                else:
                    return [e for e in found if e.state != "missing"], "index"
            self.say(f"warning: {show(path)}: unreadable ({problem}); scanning {self} for artifacts instead")
        elif not self.root.is_dir():
            return [], "empty"
        found = scan(self.root)
        if found and not path.is_file() and not quiet_missing:
            self.say(f"warning: {show(path)} is missing; found {len(found)} artifact(s) by scanning {self}")
        return found, "scan" if found else "empty"

    def _from_json(self, e: dict) -> Entry:
        inputs = {str(k): dict(v) for k, v in (e.get("inputs") or {}).items()}
        for v in inputs.values():
            v["path"] = str(_abs(self._join(v["path"])))
        return Entry(
            stage=str(e["stage"]),
            path=self._join(e["path"]),
            time=float(e["time"]),
            inputs=inputs,
            defaults=dict(e.get("defaults") or {}),
        )

    def _join(self, stored: str) -> Path:
        """A path stored in the index: relative to the workspace, or absolute when outside it."""
        p = Path(stored)
        return p if p.is_absolute() else self.root / p

    def relative(self, path: str | Path) -> str:
        """A path as stored in the index: relative to the workspace when inside it, else absolute."""
        try:
            return _abs(path).relative_to(_abs(self.root)).as_posix()
        except ValueError:
            return str(_abs(path))

    def short(self, path: str | Path) -> str:
        """For tables: relative to the workspace when inside it, else as `show` writes it."""
        try:
            return _abs(path).relative_to(_abs(self.root)).as_posix()
        except ValueError:
            return show(path)

    def _to_json(self, e: Entry) -> dict:
        return {
            "stage": e.stage,
            "path": self.relative(e.path),
            "time": round(e.time, 6),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e.time)),
            "inputs": {role: {**v, "path": self.relative(v["path"])} for role, v in e.inputs.items()},
            "defaults": e.defaults,
        }

    def of_stage(self, stage: str) -> list[Entry]:
        """A stage's artifacts, newest first."""
        found = [e for e in self.entries() if e.stage == stage]
        return sorted(found, key=lambda e: (e.time, e.tie), reverse=True)

    def find(self, path: Path) -> Entry | None:
        key = _abs(path)
        return next((e for e in self.entries() if e.key == key), None)

    def owner(self, path: Path) -> Entry | None:
        """The recorded artifact a path is or lies inside (e.g. a run directory's model.pt)."""
        key = _abs(path)
        best = None
        for e in self.entries():
            if (e.key == key or e.key in key.parents) and (
                best is None or len(e.key.parts) > len(best.key.parts)
            ):
                best = e
        return best

    def newest(
        self, stage: str, where: Callable[[Entry], bool] | None = None
    ) -> tuple[Entry | None, Entry | None]:
        """(newest complete artifact of a stage passing `where`, a newer interrupted one skipped or None)."""
        skipped = None
        for e in self.of_stage(stage):
            if where is not None and not where(e):
                continue
            state = e.state
            if state == "complete":
                return e, skipped
            if state == "interrupted" and skipped is None:
                skipped = e
        return None, skipped

    # writing ----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        try:
            import fcntl
        except ImportError:  # no advisory locks here: last writer wins
            yield
            return
        with open(self.root / LOCK, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def record(
        self,
        stage: str,
        path: Path,
        defaults: dict[str, Any] | None = None,
        inputs: dict[str, Path] | None = None,
    ) -> Entry | None:
        """Record an artifact (after its stage finished or was interrupted) as its stage's newest.

        The defaults the command filled in are also written into the artifact's manifest. `inputs`
        names the inputs of an interrupted run, which has no manifest yet. Never fails the command:
        a workspace that cannot be written gets a warning.
        """
        try:
            if defaults is not None:
                annotate(stage, path, {"defaults": defaults, "workspace": str(self.root)})
            recorded = artifact_inputs(stage, path)
            if not recorded:
                recorded = {role: {"path": str(p), "hash": None} for role, p in (inputs or {}).items()}
            cwd = Path.cwd()
            for v in recorded.values():
                p = _resolve_input(v["path"], [cwd])
                v["path"], v["sig"] = str(p), signature(p)
            entry = Entry(stage, path, time.time(), recorded, dict(defaults or {}))
            self.root.mkdir(parents=True, exist_ok=True)
            with self._lock():
                entries = [e for e in self._load(quiet_missing=True)[0] if e.key != entry.key] + [entry]
                entries = sorted(entries, key=lambda e: (e.time, e.tie))[-MAX_ENTRIES:]
                self._write(entries)
                self._entries, self.source = entries, "index"
            return entry
        except Exception as e:  # the stage's work is done: a bookkeeping failure must not undo it
            self.say(f"warning: could not record {show(path)} in {show(self.index_path)} ({e})")
            return None

    def _write(self, entries: list[Entry]) -> None:
        from logo_cli.artifacts import write_json_atomic

        latest: dict[str, str] = {}
        for e in entries:  # oldest first: the last one of each stage wins
            latest[e.stage] = self._to_json(e)["path"]
        write_json_atomic(
            self.index_path,
            {
                "format": INDEX_FORMAT,
                "version": INDEX_VERSION,
                "latest": {s: latest[s] for s in STAGES if s in latest},
                "artifacts": [self._to_json(e) for e in entries],
            },
        )

    # staleness --------------------------------------------------------------------------------
    def _hash(self, path: Path) -> str:
        from logo_cli.artifacts import file_hash

        if path not in self._hashes:
            self._hashes[path] = file_hash(path)
        return self._hashes[path]

    def input_state(self, inp: dict) -> str:
        """'unchanged', 'changed', 'missing' or 'unknown' (no hash recorded)."""
        path = Path(inp["path"])
        if not path.exists():
            return "missing"
        sig = inp.get("sig")
        if sig is not None and signature(path) == list(sig):
            return "unchanged"
        if not inp.get("hash"):
            return "unknown"
        return "unchanged" if self._hash(path) == inp["hash"] else "changed"

    def stale_reasons(self, entry: Entry, _seen: frozenset = frozenset()) -> list[str]:
        """Why an artifact is stale (empty when it is not): changed or missing inputs, stale sources."""
        reasons = []
        for role, inp in entry.inputs.items():
            state = self.input_state(inp)
            if state in ("changed", "missing"):
                reasons.append(f"{role} {state} since")
                continue
            src = self.owner(Path(inp["path"]))
            if src is not None and src.key != entry.key and src.key not in _seen:
                if self.stale_reasons(src, _seen | {entry.key}):
                    reasons.append(f"{role} comes from a stale {src.stage} run")
        return reasons

    def describe(self, entry: Entry) -> dict:
        """One artifact for `logo status`: state, inputs and staleness."""
        reasons = self.stale_reasons(entry)
        state = entry.state
        return {
            "stage": entry.stage,
            "artifact": show(entry.path),
            "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.time)),
            "state": state,
            "inputs": {role: self._describe_input(inp) for role, inp in entry.inputs.items()},
            "stale": bool(reasons),
            "reasons": reasons,
            "defaults": entry.defaults,
        }

    def _describe_input(self, inp: dict) -> dict:
        src = self.owner(Path(inp["path"]))
        return {
            "path": show(inp["path"]),
            "state": self.input_state(inp),
            "from": None if src is None else {"stage": src.stage, "artifact": show(src.path)},
        }

    def status(self, every: bool = False) -> dict:
        """The workspace for `logo status`: the newest artifact of each stage (or every artifact)."""
        entries = self.entries()
        rows: list[dict] = []
        for stage in STAGES:
            mine = self.of_stage(stage)
            if not mine:
                if stage != "collect":
                    rows.append({"stage": stage, "artifact": None, "state": "none", "next": MAKE[stage]})
                continue
            rows.extend(self.describe(e) for e in (mine if every else mine[:1]))
        return {
            "workspace": str(self),
            "index": show(self.index_path) if self.source == "index" else None,
            "source": self.source,
            "artifacts": len(entries),
            "stages": rows,
        }


def annotate(stage: str, path: Path, fields: dict[str, Any]) -> None:
    """Add fields (the defaults a command chose) to an artifact's manifest or buffer attributes."""
    from logo_cli.artifacts import write_json_atomic

    if stage in ("pretrain", "train-policy", "calibrate"):
        manifest = manifest_of(path)
        if manifest is not None:
            manifest.update(fields)
            write_json_atomic(path / MANIFEST, manifest)
    elif stage == "rollout":
        meta = _read_json(path / "zarr.json")  # the group's metadata: its attributes live there
        if meta is not None and isinstance(meta.get("attributes"), dict):
            meta["attributes"].update(fields)
            write_json_atomic(path / "zarr.json", meta)


# --- scanning (no index) --------------------------------------------------------------------------


def scan(root: Path, max_depth: int = 4) -> list[Entry]:
    """Artifacts found under `root` (run directories, buffers, evaluation files), oldest first."""
    found: list[Entry] = []
    bases = [Path.cwd(), _abs(root).parent]

    def add(stage: str, path: Path, stamp: Path) -> None:
        if artifact_state(stage, path) == "missing":
            return
        try:
            tie = stamp.stat().st_mtime
        except OSError:
            tie = 0.0
        inputs = artifact_inputs(stage, path)
        for v in inputs.values():
            v["path"] = str(_resolve_input(v["path"], bases))
        recorded = _recorded_defaults(stage, path)
        found.append(Entry(stage, path, _created(stage, path) or tie, inputs, recorded, tie=tie))

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
                data = _read_json(d / name, limit=16 << 20)
                if data is not None and data.get("stage") == "evaluate":
                    add("evaluate", d / name, d / name)
        if depth >= max_depth:
            dirnames[:] = []
    return sorted(found, key=lambda e: (e.time, e.tie))


# --- the defaults that chain stages ---------------------------------------------------------------


class Defaults:
    """The inputs a command filled in from the workspace: each printed in one line as it is chosen,
    then recorded in the artifact's manifest (`defaults`) and its index entry."""

    def __init__(self, ws: Workspace):
        self.ws = ws
        self.used: dict[str, Any] = {}

    def use(self, option: str, value: Path | str, why: str) -> None:
        shown = show(value) if isinstance(value, Path) else str(value)
        key = option.removeprefix("--").replace("-", "_")
        if key in self.used:
            prev = self.used[key]
            self.used[key] = [*prev, shown] if isinstance(prev, list) else [prev, shown]
        else:
            self.used[key] = shown
        self.ws.say(f"using {shown} ({why}) for {option}")

    def skipped(self, entry: Entry | None) -> str:
        return "" if entry is None else f"; {show(entry.path)} is interrupted: rerun its command to finish it"


def _usable(path: str | Path) -> Path:
    """An absolute path as the stages should see it: relative to the current directory when under it."""
    return Path(show(path))


class DataMatch:
    """Is an artifact made from this dataset? Same file, or the same content (sha256) elsewhere."""

    def __init__(self, ws: Workspace, data: Path):
        self.ws, self.data, self.key = ws, data, _abs(data)

    def __call__(self, entry: Entry) -> bool:
        inp = entry.inputs.get("data")
        if not inp:
            return False
        if _abs(inp["path"]) == self.key:
            return True
        return bool(inp.get("hash")) and self.data.is_file() and self.ws._hash(self.key) == inp["hash"]


def trained_on(ws: Workspace, run: Path, stage: str = "pretrain") -> Path:
    """The dataset an artifact (a pretrain run, a rollout buffer) was made from, as recorded."""
    entry = ws.find(run)
    inp = (entry.inputs if entry is not None else {}).get("data")
    if inp is None and artifact_state(stage, run) == "missing":
        what = "synthetic buffer" if stage == "rollout" else f"finished {stage} run (no {MANIFEST})"
        raise LogoError(f"{run}: not a {what}")
    if inp is None:
        raw = artifact_inputs(stage, run).get("data")
        if raw is None:
            raise LogoError(f"{show(run)}: records no dataset it was made from; pass --data")
        inp = {"path": str(_resolve_input(raw["path"], [Path.cwd(), _abs(ws.root).parent]))}
    path = Path(inp["path"])
    if not path.exists():
        raise LogoError(f"{show(run)} was made from {show(path)}, which no longer exists; pass --data")
    return _usable(path)


def _check_exists(path: Path | None, option: str, what: str = "no such file or folder") -> None:
    if path is not None and not path.exists():
        raise LogoError(f"{option} {path}: {what}")


def _none_found(ws: Workspace, what: str, make: str, data: Path | None, option: str) -> LogoError:
    on = f" made from {data}" if data is not None else ""
    return LogoError(f"no {what}{on} in workspace {ws}: run `{make}` first (or pass {option})")


def pretrain_defaults(ws: Workspace, d: Defaults, data: Path | None) -> Path:
    """--data: the newest dataset `logo collect` wrote."""
    if data is not None:
        _check_exists(data, "--data")
        return data
    entry, _ = ws.newest("collect")
    if entry is None:
        raise LogoError(
            f"--data: no dataset recorded in workspace {ws}: "
            f"pass --data DATA.h5 (or run `{MAKE['collect']}` first)"
        )
    data = _usable(entry.path)
    d.use("--data", data, "newest collected dataset")
    return data


def _pretrain_run(ws: Workspace, d: Defaults, data: Path | None, option: str) -> Path:
    match = DataMatch(ws, data) if data is not None else None
    entry, skipped = ws.newest("pretrain", match)
    if entry is None:
        make = f"logo pretrain --data {data}" if data is not None else MAKE["pretrain"]
        raise _none_found(ws, "finished pretrain run", make, data, option)
    run = _usable(entry.path)
    d.use(option, run, "newest pretrain run" + d.skipped(skipped))
    return run


def rollout_defaults(ws: Workspace, d: Defaults, model: Path | None, data: Path | None) -> tuple[Path, Path]:
    """--model: the newest finished pretrain run (made from --data when given); --data: its dataset."""
    _check_exists(data, "--data")
    if model is None:
        model = _pretrain_run(ws, d, data, "--model")
    if data is None:
        data = trained_on(ws, model)
        d.use("--data", data, f"the dataset {show(model)} was trained on")
    return model, data


def calibrate_defaults(
    ws: Workspace, d: Defaults, models: list[Path], data: Path | None
) -> tuple[list[Path], Path]:
    """--model: the newest finished pretrain run, and the newest run of each other model kind made
    from the same dataset with the same held-out split; --data: their dataset."""
    _check_exists(data, "--data")
    if not models:
        first = _pretrain_run(ws, d, data, "--model")
        models = [first]
        base = ws.find(first)
        m0 = manifest_of(first) or {}
        kinds = {m0.get("kind")}
        split = _split(m0)
        data_hash = (base.inputs.get("data") or {}).get("hash") if base is not None else None
        for e in ws.of_stage("pretrain"):
            if base is None or e.key == base.key or e.state != "complete":
                continue
            m = manifest_of(e.path) or {}
            same = (e.inputs.get("data") or {}).get("hash") == data_hash and data_hash is not None
            if same and m.get("kind") not in kinds and _split(m) == split:
                kinds.add(m.get("kind"))
                models.append(_usable(e.path))
                d.use("--model", models[-1], f"newest {m.get('kind')} run on the same data and split")
    if data is None:
        data = trained_on(ws, models[0])
        d.use("--data", data, f"the dataset {show(models[0])} was trained on; its held-out episodes")
    return models, data


def _split(manifest: dict) -> tuple:
    c = manifest.get("config") or {}
    return (c.get("holdout"), c.get("seed"))


def train_policy_defaults(
    ws: Workspace,
    d: Defaults,
    data: Path | None,
    synthetic: Path | None,
    model: Path | None,
    real_only: bool,
) -> tuple[Path, Path | None, Path | None]:
    """--synthetic: the newest finished rollout buffer (made from --data when given), else --model:
    the newest finished pretrain run; --data: the dataset that buffer or run was made from.

    With --mode real-only no synthetic source is added, but --data still defaults the same way.
    Given only --data and nothing made from it, training is on real data only (as without a workspace).
    """
    if synthetic is not None and model is not None:
        raise LogoError("--synthetic / --model: give one, not both")
    _check_exists(data, "--data")
    _check_exists(synthetic, "--synthetic", "synthetic buffer not found")
    source: Path | None = synthetic or model
    stage = "rollout" if synthetic is not None else "pretrain"
    if source is None:
        match = DataMatch(ws, data) if data is not None else None
        for stage, what in (("rollout", "rollout buffer"), ("pretrain", "pretrain run")):
            entry, skipped = ws.newest(stage, match)
            if entry is None:
                continue
            source = _usable(entry.path)
            if real_only:
                break
            if stage == "rollout":
                synthetic = source
                d.use("--synthetic", source, f"newest {what}" + d.skipped(skipped))
            else:
                model = source
                d.use("--model", source, f"newest {what}, rolled out in memory" + d.skipped(skipped))
            break
    if data is None:
        if source is None:
            raise LogoError(
                f"--data: nothing to train on in workspace {ws}: run `logo rollout` (after "
                f"`{MAKE['pretrain']}`) first, or pass --data DATA.h5"
            )
        data = trained_on(ws, source, stage)
        d.use("--data", data, f"the dataset {show(source)} was made from")
    return data, synthetic, model


DEFAULT_ENV = "smax:3m"


def evaluate_defaults(ws: Workspace, d: Defaults, policy: str | None, env: str | None) -> tuple[str, str]:
    """--policy: the newest finished train-policy run; --env: the environment its dataset names."""
    if policy is None:
        entry, skipped = ws.newest("train-policy")
        if entry is None:
            raise _none_found(ws, "finished train-policy run", MAKE["train-policy"], None, "--policy")
        policy = show(entry.path)
        d.use("--policy", policy, "newest train-policy run" + d.skipped(skipped))
    if env is None:
        run = Path(policy)
        manifest = None
        if run.is_dir() and (run / MANIFEST).is_file():
            from logo_cli.artifacts import read_manifest

            manifest = read_manifest(run)  # a garbled manifest is one line here, before any default
        if manifest is None:
            return policy, DEFAULT_ENV  # a policy file, behaviour:<name> or random: the built-in default
        attrs = manifest.get("dataset_attrs") or {}
        named = attrs.get("env")
        if isinstance(named, str) and named:
            env = named
            d.use("--env", env, f"named by the dataset {show(policy)} was trained on")
        else:
            env = DEFAULT_ENV
            d.use("--env", env, f"built-in default; the dataset {show(policy)} was trained on names none")
    return policy, env


def export_defaults(ws: Workspace, d: Defaults, source: Path | None) -> Path:
    """SOURCE of `logo export`: the newest finished train-policy run."""
    if source is not None:
        return source
    entry, skipped = ws.newest("train-policy")
    if entry is None:
        raise _none_found(ws, "finished train-policy run", MAKE["train-policy"], None, "SOURCE")
    d.use("SOURCE", entry.path, "newest train-policy run" + d.skipped(skipped))
    return entry.path


@contextlib.contextmanager
def tracking(
    ws: Workspace, stage: str, out: Path, d: Defaults | None, inputs: dict[str, Path] | None = None
) -> Iterator[None]:
    """Record the stage's artifact when the command finishes, or when Ctrl-C leaves a resumable one."""
    try:
        yield
    except KeyboardInterrupt:
        if artifact_state(stage, out) == "interrupted":
            ws.record(stage, out, d.used if d is not None else None, inputs)
        raise
    ws.record(stage, out, d.used if d is not None else None)
