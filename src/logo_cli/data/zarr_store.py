"""Synthetic rollout buffers: one zarr v3 group per rollout run.

Flat arrays of equal first dimension (one row per synthetic transition), chunked along axis 0 and
compressed with Blosc zstd: the nine `Transitions` fields plus `uncertainty` (f32), `step` (rollout
step index, int16) and `branch` (branch id, int64). Group attributes carry the provenance and two
fields that make interruption safe:

- `n_rows`: rows written consistently across *all* arrays. It is updated only after every array has
  received a chunk, so a crash between two arrays leaves some arrays longer than `n_rows`; readers
  use the first `n_rows` rows and never see a half-appended chunk.
- `complete`: false while writing, true once the writer closed normally.

The empty group is built in a hidden sibling directory and renamed into place, so the final path
holds either nothing or a readable (possibly incomplete) buffer. Readers refuse an incomplete buffer
unless asked to accept its prefix.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from logo_cli.data.transitions import Dims, Transitions
from logo_cli.errors import LogoError

FORMAT = "logo-synthetic"
SCHEMA_VERSION = 1
EXTRA = ("uncertainty", "step", "branch")
_TRANSITION_FIELDS = tuple(f.name for f in fields(Transitions))


def _schema(dims: Dims) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Per array: (shape after the row axis, dtype)."""
    n, o, s, a = dims.n_agents, dims.obs_dim, dims.state_dim, dims.n_actions
    act = ((n,), np.dtype(np.int64)) if dims.discrete else ((n, a), np.dtype(np.float32))
    avail_a = a if dims.discrete else 1
    f32, b = np.dtype(np.float32), np.dtype(bool)
    return {
        "state": ((s,), f32),
        "obs": ((n, o), f32),
        "actions": act,
        "avail_actions": ((n, avail_a), b),
        "reward": ((), f32),
        "terminated": ((), b),
        "next_state": ((s,), f32),
        "next_obs": ((n, o), f32),
        "next_avail_actions": ((n, avail_a), b),
        "uncertainty": ((), f32),
        "step": ((), np.dtype(np.int16)),
        "branch": ((), np.dtype(np.int64)),
    }


def _compressor():
    from zarr.codecs import BloscCodec

    # bitshuffle groups the sign/exponent bits of floats, which zstd then packs much better.
    return BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")


class SyntheticWriter:
    """Append synthetic transitions to a new zarr buffer; a context manager.

    Full chunks are compressed and written by one background thread while the caller produces the
    next rows (Blosc releases the GIL), with at most one chunk in flight, so memory stays at about
    two chunks. On normal exit the remaining rows are written and `complete` becomes true. On an
    exception (including Ctrl-C) the rows already handed over are still written, `complete` stays
    false, and the exception propagates.
    """

    def __init__(
        self,
        path: str | Path,
        attrs: dict[str, Any],
        dims: Dims,
        chunk_rows: int = 8192,
        overwrite: bool = False,
    ):
        if chunk_rows < 1:
            raise LogoError(f"chunk_rows: must be positive, got {chunk_rows}")
        self.path = Path(path)
        self.dims = dims
        self.chunk_rows = int(chunk_rows)
        self.schema = _schema(dims)
        self.attrs = dict(attrs)
        self.overwrite = overwrite
        self.n = 0  # rows on disk, consistent across arrays (advanced by the writing thread)
        self._pending: list[dict[str, np.ndarray]] = []
        self._pending_rows = 0
        self._group = None
        self._pool: ThreadPoolExecutor | None = None
        self._inflight: Future | None = None

    def __enter__(self) -> SyntheticWriter:
        import zarr

        if self.path.exists():
            if not self.overwrite:
                raise LogoError(f"{self.path}: already exists (pass --overwrite to replace it)")
            shutil.rmtree(self.path) if self.path.is_dir() else self.path.unlink()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"))
        try:
            group = zarr.open_group(tmp, mode="w")
            for name, (tail, dtype) in self.schema.items():
                group.create_array(
                    name,
                    shape=(0, *tail),
                    chunks=(self.chunk_rows, *tail),
                    dtype=dtype,
                    compressors=_compressor(),
                    fill_value=0,
                )
            group.attrs.update(
                {
                    **self.attrs,
                    "format": FORMAT,
                    "schema_version": SCHEMA_VERSION,
                    "dims": self.dims.to_dict(),
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "complete": False,
                    "n_rows": 0,
                }
            )
            tmp.rename(self.path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._group = zarr.open_group(self.path, mode="r+")
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zarr-writer")
        return self

    def append(
        self, transitions: Transitions, uncertainty: np.ndarray, step: np.ndarray, branch: np.ndarray
    ) -> None:
        """Queue rows; whole chunks are written as soon as they fill, so memory stays at one chunk."""
        if self._group is None:
            raise RuntimeError("SyntheticWriter.append outside its `with` block")
        t = len(transitions)
        row = {name: getattr(transitions, name) for name in _TRANSITION_FIELDS}
        row.update(uncertainty=uncertainty, step=step, branch=branch)
        for name, (tail, dtype) in self.schema.items():
            arr = np.asarray(row[name])
            if arr.shape != (t, *tail):
                raise ValueError(f"synthetic buffer: {name} has shape {arr.shape}, expected {(t, *tail)}")
            if name == "step" and t and (arr.min() < 0 or arr.max() > np.iinfo(np.int16).max):
                raise ValueError("synthetic buffer: step index out of int16 range")
            row[name] = arr.astype(dtype, copy=False)
        self._pending.append(row)
        self._pending_rows += t
        if self._pending_rows >= self.chunk_rows:
            self._flush(whole_chunks_only=True)

    def _flush(self, whole_chunks_only: bool) -> None:
        if not self._pending_rows:
            return
        rows = self._pending_rows
        take = (rows // self.chunk_rows) * self.chunk_rows if whole_chunks_only else rows
        if take == 0:
            return
        # Fresh arrays (np.concatenate copies), so the writing thread never shares memory with the caller.
        joined = {k: np.concatenate([p[k] for p in self._pending]) for k in self.schema}
        self.drain()  # one chunk in flight at most: bounded memory, and rows land in order
        assert self._pool is not None
        self._inflight = self._pool.submit(self._write, {k: v[:take] for k, v in joined.items()})
        self._pending = [{k: v[take:] for k, v in joined.items()}] if rows > take else []
        self._pending_rows = rows - take

    def _write(self, block: dict[str, np.ndarray]) -> None:
        for name in self.schema:
            # Whole new chunks only (until the final flush): no read-modify-write of earlier chunks.
            self._group[name].append(block[name], axis=0)
        self.n += len(block["step"])
        self._group.attrs["n_rows"] = self.n  # only now: every array holds these rows

    def drain(self) -> None:
        """Wait for the chunk being written, re-raising its error if it failed."""
        job, self._inflight = self._inflight, None
        if job is not None:
            job.result()

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._group is None:
            return
        assert self._pool is not None
        try:
            if exc_type is None:
                self._flush(whole_chunks_only=False)
                self.drain()
                self._group.attrs.update({"complete": True, "n_rows": self.n})
                return
            # Interrupted: keep what was handed over, marked incomplete. A failure here must not
            # mask the original exception; `n_rows` then still names the last consistent prefix.
            try:
                self._flush(whole_chunks_only=False)
                self.drain()
            except Exception:
                pass
            self._group.attrs.update({"interrupted": f"{exc_type.__name__}: {exc}"[:200]})
        finally:
            self._pool.shutdown(wait=True)


class SyntheticBuffer:
    """A validated synthetic buffer opened for reading; arrays are read lazily."""

    def __init__(self, path: Path, group, attrs: dict, dims: Dims, n: int):
        self.path = path
        self._group = group
        self.attrs = attrs
        self.dims = dims
        self.n = n
        self.complete = bool(attrs.get("complete"))
        self._cache: dict[str, np.ndarray] = {}

    def array(self, name: str, idx: np.ndarray | slice | None = None) -> np.ndarray:
        """Rows `idx` (None: all n) of one array, as numpy."""
        arr = self._group[name]
        if idx is None:
            return np.asarray(arr[: self.n])
        if isinstance(idx, slice):
            start, stop, stride = idx.indices(self.n)
            return np.asarray(arr[start:stop:stride])
        idx = np.asarray(idx, dtype=np.int64)
        if idx.size and (idx.min() < -self.n or idx.max() >= self.n):
            raise IndexError(f"{self.path}: row index out of range 0..{self.n - 1}")
        idx = np.where(idx < 0, idx + self.n, idx)
        return np.asarray(arr.get_orthogonal_selection((idx,)))

    def transitions(self, idx: np.ndarray | slice | None = None) -> Transitions:
        return Transitions(**{name: self.array(name, idx) for name in _TRANSITION_FIELDS})

    def _cached(self, name: str) -> np.ndarray:
        if name not in self._cache:
            self._cache[name] = self.array(name)
        return self._cache[name]

    @property
    def uncertainty(self) -> np.ndarray:
        return self._cached("uncertainty")

    @property
    def step(self) -> np.ndarray:
        return self._cached("step")

    @property
    def branch(self) -> np.ndarray:
        return self._cached("branch")

    @property
    def uncertainty_cum(self) -> np.ndarray:
        """Uncertainty accumulated along each branch up to and including each row's step (derived
        from `uncertainty`, `branch` and `step`, so every buffer has it)."""
        if "uncertainty_cum" not in self._cache:
            from logo_cli.data.nstep import branch_order, cumulative_by_segment

            order = branch_order(self.branch, self.step)
            cum = cumulative_by_segment(self.uncertainty, self.branch, order).astype(np.float32)
            self._cache["uncertainty_cum"] = cum
        return self._cache["uncertainty_cum"]


def is_synthetic_buffer(path: str | Path) -> bool:
    """True when `path` looks like a zarr group written by SyntheticWriter (cheap: reads zarr.json)."""
    import json

    meta = Path(path) / "zarr.json"
    if not meta.is_file():
        return False
    try:
        return json.loads(meta.read_text()).get("attributes", {}).get("format") == FORMAT
    except (ValueError, UnicodeDecodeError):
        return False


def open_synthetic(path: str | Path, allow_incomplete: bool = False) -> SyntheticBuffer:
    """Open and validate a buffer; one-line LogoError when it is missing, garbled or incomplete."""
    import zarr

    path = Path(path)
    if not path.exists():
        raise LogoError(f"{path}: synthetic buffer not found")
    try:
        group = zarr.open_group(path, mode="r")
        attrs = dict(group.attrs)
    except Exception as e:  # zarr raises several types for a non-group or unreadable metadata
        raise LogoError(f"{path}: not a readable zarr group ({type(e).__name__})") from None
    if attrs.get("format") != FORMAT:
        raise LogoError(f"{path}: not a logo synthetic buffer (format {attrs.get('format')!r})")
    if attrs.get("schema_version") != SCHEMA_VERSION:
        raise LogoError(f"{path}: schema version {attrs.get('schema_version')} is not {SCHEMA_VERSION}")
    try:
        dims = Dims.from_dict(attrs["dims"])
        n = int(attrs["n_rows"])
    except (KeyError, TypeError, ValueError):
        raise LogoError(f"{path}: garbled attributes (dims / n_rows)") from None
    complete = attrs.get("complete") is True
    if not complete and not allow_incomplete:
        raise LogoError(
            f"{path}: incomplete buffer (an interrupted run; {n} rows written); "
            "pass --allow-incomplete to use its prefix"
        )
    present = set(group.array_keys())
    for name, (tail, dtype) in _schema(dims).items():
        if name not in present:
            raise LogoError(f"{path}: garbled buffer (array '{name}' missing)")
        arr = group[name]
        if arr.dtype != dtype or tuple(arr.shape[1:]) != tail:
            raise LogoError(
                f"{path}: garbled buffer ('{name}' is {arr.dtype}{list(arr.shape[1:])}, "
                f"expected {dtype}{list(tail)})"
            )
        rows = arr.shape[0]
        if rows < n or (complete and rows != n):
            raise LogoError(f"{path}: garbled buffer ('{name}' has {rows} rows, attributes say {n})")
    return SyntheticBuffer(path, group, attrs, dims, n)
