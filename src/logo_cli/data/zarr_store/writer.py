"""Writing a synthetic buffer: rows appended chunk by chunk, `n_rows` and `complete` kept so that an
interruption leaves a readable prefix, which a rerun continues."""

from __future__ import annotations

import shutil
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from logo_cli.data.transitions import Dims, Transitions
from logo_cli.data.zarr_store.reader import SyntheticBuffer, open_synthetic
from logo_cli.data.zarr_store.schema import (
    FORMAT,
    SCHEMA_VERSION,
    TRANSITION_FIELDS,
    array_schema,
    compressor,
)
from logo_cli.errors import LogoError


class NonFiniteRows(LogoError):
    """Rows holding NaN or inf were handed to the writer: refused before they reach the disk."""


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
        resume: bool = False,
        label: str | Path | None = None,
    ):
        if chunk_rows < 1:
            raise LogoError(f"chunk_rows: must be positive, got {chunk_rows}")
        self.path = Path(path)
        self.label = str(label if label is not None else path)  # the path named in messages
        self.dims = dims
        self.chunk_rows = int(chunk_rows)
        self.schema = array_schema(dims)
        self.attrs = dict(attrs)
        self.overwrite = overwrite
        self.n = 0  # rows on disk, consistent across arrays (advanced by the writing thread)
        self._pending: list[dict[str, np.ndarray]] = []
        self._pending_rows = 0
        self._group = None
        self._pool: ThreadPoolExecutor | None = None
        self._inflight: Future | None = None
        self.resume = resume
        self.resumed_from = 0  # rows found on disk when continuing an interrupted buffer
        self._verify_left = 0  # stored rows still to be matched by regenerated ones
        self._verified = 0
        self._truncate_to: int | None = None  # whole-chunk prefix kept before the first new write
        self._reader: SyntheticBuffer | None = None

    def __enter__(self) -> SyntheticWriter:
        import zarr

        if self.resume:
            return self._reopen()
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
                    compressors=compressor(),
                    fill_value=0,
                    config={"write_empty_chunks": True},  # every chunk on disk: a lost one is found
                )
            group.attrs.update(
                {
                    **self.attrs,
                    "format": FORMAT,
                    "format_version": SCHEMA_VERSION,
                    "schema_version": SCHEMA_VERSION,
                    "empty_chunks_written": True,
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

    def _reopen(self) -> SyntheticWriter:
        """Continue an interrupted buffer: the caller regenerates it from the start; the first
        `n_rows` rows it appends are checked against the stored ones (nothing is written until they
        all match), then the buffer is cut back to its last whole chunk (no chunk is rewritten in
        place) and the regenerated rows from there on are appended."""
        import zarr

        reader = open_synthetic(self.path, allow_incomplete=True)
        if reader.complete:
            raise LogoError(
                f"{self.path}: a complete buffer; nothing to continue (pass --overwrite to replace it)"
            )
        reader.dims.check_same(self.dims, f"{self.path} vs this rollout")
        self._reader = reader
        self._group = zarr.open_group(self.path, mode="r+")
        self.chunk_rows = int(self._group["step"].chunks[0])  # the stored layout wins
        n = reader.n
        self.resumed_from = n
        self._verify_left = n
        self._truncate_to = (n // self.chunk_rows) * self.chunk_rows
        self.n = self._truncate_to
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zarr-writer")
        return self

    def _check_against_stored(self, row: dict[str, np.ndarray], t: int) -> None:
        """Regenerated rows must equal the stored ones (floats within rounding)."""
        assert self._reader is not None
        lo = self._verified
        for name in self.schema:
            new, old = row[name][:t], self._reader.array(name, slice(lo, lo + t))
            same = (
                np.allclose(new, old, rtol=1e-4, atol=1e-5)
                if new.dtype.kind == "f"
                else np.array_equal(new, old)
            )
            if not same:
                diff = np.nonzero(~np.isclose(new, old, rtol=1e-4, atol=1e-5) if new.dtype.kind == "f"
                                  else (new != old))[0]  # fmt: skip
                at = lo + int(diff[0]) if len(diff) else lo
                raise LogoError(
                    f"{self.path}: cannot continue this interrupted buffer: the rerun does not reproduce "
                    f"its row {at} ('{name}'; another device, thread count or library version?); it is "
                    "left as it was (pass --overwrite to start it over)"
                )

    def append(
        self, transitions: Transitions, uncertainty: np.ndarray, step: np.ndarray, branch: np.ndarray
    ) -> None:
        """Queue rows; whole chunks are written as soon as they fill, so memory stays at one chunk."""
        if self._group is None:
            raise RuntimeError("SyntheticWriter.append outside its `with` block")
        t = len(transitions)
        row = {name: getattr(transitions, name) for name in TRANSITION_FIELDS}
        row.update(uncertainty=uncertainty, step=step, branch=branch)
        for name, (tail, dtype) in self.schema.items():
            arr = np.asarray(row[name])
            if arr.shape != (t, *tail):
                raise ValueError(f"synthetic buffer: {name} has shape {arr.shape}, expected {(t, *tail)}")
            if name == "step" and t and (arr.min() < 0 or arr.max() > np.iinfo(np.int16).max):
                raise ValueError("synthetic buffer: step index out of int16 range")
            row[name] = arr.astype(dtype, copy=False)
            if t and dtype.kind == "f" and not np.isfinite(row[name]).all():
                bad = int(np.argmin(np.isfinite(row[name]).reshape(t, -1).all(axis=1)))
                at = self.n + self._pending_rows + bad
                raise NonFiniteRows(
                    f"{self.label}: refusing to write NaN or inf '{name}' (row {at} of the run; from the "
                    "world model or the policy)"
                )
        if self._verify_left:
            k = min(self._verify_left, t)
            self._check_against_stored(row, k)
            self._verify_left -= k
            self._verified += k
            assert self._truncate_to is not None
            # rows before the kept whole-chunk prefix are on disk already; the rest is written again
            drop = max(0, min(t, self._truncate_to - (self._verified - k)))
            if drop:
                row = {name: v[drop:] for name, v in row.items()}
                t -= drop
            if not t:
                return
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
        if self._truncate_to is not None:  # continuing: cut back to the verified whole chunks once
            for name, (tail, _) in self.schema.items():
                self._group[name].resize((self._truncate_to, *tail))
            self._group.attrs.update({"n_rows": self._truncate_to})
            resumed = list(self._group.attrs.get("resumed_from", []))
            self._group.attrs.update({"resumed_from": [*resumed, self.resumed_from]})
            if "interrupted" in self._group.attrs:
                del self._group.attrs["interrupted"]
            self._truncate_to = None
        assert self._pool is not None
        self._inflight = self._pool.submit(self._write, {k: v[:take] for k, v in joined.items()})
        self._pending = [{k: v[take:] for k, v in joined.items()}] if rows > take else []
        self._pending_rows = rows - take

    def _write(self, block: dict[str, np.ndarray]) -> None:
        for name in self.schema:
            # Whole new chunks only (until the final flush): no read-modify-write of earlier chunks.
            # write_empty_chunks is a runtime setting (not stored): every chunk lands on disk
            self._group[name].with_config({"write_empty_chunks": True}).append(block[name], axis=0)
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
            if self._verify_left:
                return  # continuing, and the stored rows are not all matched yet: left as it was
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
