"""The index of what each stage wrote (`<workspace>/index.json`), newest artifacts and staleness."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from logo_cli.workspace.artifact_files import annotate, artifact_inputs, artifact_state, read_json, signature
from logo_cli.workspace.entry import Entry, resolve_recorded_input
from logo_cli.workspace.paths import (
    INDEX,
    INDEX_FORMAT,
    INDEX_VERSION,
    LOCK,
    MAKE,
    MAX_ENTRIES,
    STAGES,
    SUBDIRS,
    Say,
    absolute,
    quiet,
    root_from,
    show,
)
from logo_cli.workspace.scan import scan

if TYPE_CHECKING:
    from logo_cli.workspace.defaults import Defaults


class Workspace:
    def __init__(self, root: Path | None = None, say: Say | None = None):
        self.root = root_from(root)
        self._say = say or quiet  # one-line notes (warnings) for stderr
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
            data = read_json(path)
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
            v["path"] = str(absolute(self._join(v["path"], v.pop("absolute", None))))
        return Entry(
            stage=str(e["stage"]),
            path=self._join(e["path"], e.get("absolute")),
            time=float(e["time"]),
            inputs=inputs,
            defaults=dict(e.get("defaults") or {}),
        )

    def _join(self, stored: str, fallback: str | None = None) -> Path:
        """A path stored in the index: relative to the workspace (so a copied or moved workspace finds
        its own files, a copied project its own data); `fallback`, the absolute path it had when
        written, when nothing is there relative to this workspace. Older indexes stored paths
        outside the workspace absolute: read as they are."""
        p = Path(stored)
        if p.is_absolute():
            return p
        here = self.root / p
        if fallback and not (here.exists() or here.is_symlink()) and Path(fallback).exists():
            return Path(fallback)
        return Path(os.path.normpath(here))

    def relative(self, path: str | Path) -> str:
        """A path as stored in the index: relative to the workspace (`../data.h5` outside it), or
        absolute where no relative path exists (another drive)."""
        try:
            return Path(os.path.relpath(absolute(path), absolute(self.root))).as_posix()
        except ValueError:
            return str(absolute(path))

    def _stored(self, path: str | Path) -> dict[str, str]:
        """{"path": relative} for a path, with its "absolute" path too when it lies outside the
        workspace (the fallback when the workspace is moved without it)."""
        rel = self.relative(path)
        return {"path": rel, "absolute": str(absolute(path))} if rel.startswith("..") else {"path": rel}

    def short(self, path: str | Path) -> str:
        """For tables: relative to the workspace when inside it, else as `show` writes it."""
        try:
            return absolute(path).relative_to(absolute(self.root)).as_posix()
        except ValueError:
            return show(path)

    def _to_json(self, e: Entry) -> dict:
        return {
            "stage": e.stage,
            **self._stored(e.path),
            "time": round(e.time, 6),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e.time)),
            "inputs": {role: {**v, **self._stored(v["path"])} for role, v in e.inputs.items()},
            "defaults": e.defaults,
        }

    def of_stage(self, stage: str) -> list[Entry]:
        """A stage's artifacts, newest first."""
        found = [e for e in self.entries() if e.stage == stage]
        return sorted(found, key=lambda e: (e.time, e.tie), reverse=True)

    def find(self, path: Path) -> Entry | None:
        key = absolute(path)
        return next((e for e in self.entries() if e.key == key), None)

    def owner(self, path: Path) -> Entry | None:
        """The recorded artifact a path is or lies inside (e.g. a run directory's model.pt)."""
        key = absolute(path)
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
                p = resolve_recorded_input(v["path"], [cwd])
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
