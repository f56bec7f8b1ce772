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
unless asked to accept its prefix (`logo train-policy --allow-incomplete`); `logo rollout` continues
it (`SyntheticWriter(resume=True)`: the run regenerates its rows deterministically, checks them
against the stored ones, and appends the rest).

Every value is validated as it is read (no second pass over the data): floats finite, discrete
actions in range and available, `step` and `branch` >= 0 (`step` below the horizon), uncertainty
>= 0, and a chunk that does not decompress is one line naming the array. Buffers written with
`empty_chunks_written` store every chunk, so a deleted chunk file is found too (zarr would read
it as zeros). The writer refuses NaN or inf rows before they reach the disk.
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
from logo_cli.errors import LogoError, one_line

FORMAT = "logo-synthetic"
SCHEMA_VERSION = 1  # the buffer format version (also written as "format_version")
# Config fields that may differ when an interrupted rollout is continued (they do not change rows).
RESUMABLE = ("out", "overwrite", "device", "chunk_rows")
# Rollout options added after buffers were first written, with the value a buffer without them used.
ADDED_OPTIONS = {"uniform": False}
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
        self.schema = _schema(dims)
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
                    compressors=_compressor(),
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
        row = {name: getattr(transitions, name) for name in _TRANSITION_FIELDS}
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


class SyntheticBuffer:
    """A validated synthetic buffer opened for reading; arrays are read lazily and every value is
    checked as it is read (see `_check_values`)."""

    def __init__(self, path: Path, group, attrs: dict, dims: Dims, n: int):
        self.path = path
        self._group = group
        self.attrs = attrs
        self.dims = dims
        self.n = n
        self.complete = bool(attrs.get("complete"))
        self._cache: dict[str, np.ndarray] = {}
        horizon = attrs.get("horizon")
        self._horizon = horizon if isinstance(horizon, int) and not isinstance(horizon, bool) else None

    def array(self, name: str, idx: np.ndarray | slice | None = None) -> np.ndarray:
        """Rows `idx` (None: all n) of one array, as numpy, validated."""
        offset, rows = 0, None  # where the values came from, for messages
        try:
            arr = self._group[name]
            if idx is None:
                values = np.asarray(arr[: self.n])
            elif isinstance(idx, slice):
                start, stop, stride = idx.indices(self.n)
                values = np.asarray(arr[start:stop:stride])
                offset, rows = start, (np.arange(start, stop, stride) if stride != 1 else None)
            else:
                idx = np.asarray(idx, dtype=np.int64)
                if idx.size and (idx.min() < -self.n or idx.max() >= self.n):
                    raise IndexError(f"{self.path}: row index out of range 0..{self.n - 1}")
                rows = np.where(idx < 0, idx + self.n, idx)
                values = np.asarray(arr.get_orthogonal_selection((rows,)))
        except IndexError:
            raise
        except MemoryError:
            raise LogoError(f"{self.path}: array '{name}' does not fit in memory") from None
        except Exception as e:  # a chunk that does not decompress, or an unreadable chunk file
            detail = f"{type(e).__name__}: {one_line(e, 120)}" if one_line(e) else type(e).__name__
            raise LogoError(
                f"{self.path}: array '{name}' is unreadable (a corrupt chunk? {detail})"
            ) from None
        self._check_values(name, values, rows, offset)
        return values

    def _check_values(self, name: str, x: np.ndarray, rows: np.ndarray | None, offset: int) -> None:
        """The values a learner relies on: finite floats, actions in range, step/branch/uncertainty
        not negative, step below the horizon. One line naming the array and the first bad row.

        Fast path without temporaries: the sum of floats is finite only if every value is (a sum
        that overflows merely triggers the exact scan), and ranges are checked by min / max. Only a
        suspect array is scanned, in blocks of rows, to find and name the first bad row."""
        if not len(x):
            return
        suspect = False
        if x.dtype.kind == "f":
            with np.errstate(over="ignore", invalid="ignore"):
                suspect = not np.isfinite(x.sum())
        if name in ("uncertainty", "step", "branch") and not suspect:
            suspect = bool(x.min() < 0)
        if name == "step" and self._horizon is not None and not suspect:
            suspect = bool(x.max() >= self._horizon)
        if name == "actions" and self.dims.discrete and not suspect:
            suspect = bool(x.min() < 0 or x.max() >= self.dims.n_actions)
        if not suspect:
            return
        block = max(1, (1 << 22) // max(1, int(np.prod(x.shape[1:]))))  # about 4M values at a time
        for lo in range(0, len(x), block):
            self._check_block(name, x[lo : lo + block], rows, offset, lo)

    def _check_block(self, name: str, x: np.ndarray, rows: np.ndarray | None, offset: int, lo: int) -> None:
        def fail(mask: np.ndarray, problem: str) -> None:
            i = lo + int(np.argmax(mask.reshape(len(mask), -1).any(axis=1)))
            row = int(rows[i]) if rows is not None else offset + i
            raise LogoError(f"{self.path}: '{name}' {problem} (row {row}); the buffer is damaged")

        if x.dtype.kind == "f" and not np.isfinite(x).all():
            fail(~np.isfinite(x), "holds NaN or inf")
        if name in ("uncertainty", "step", "branch") and (x < 0).any():
            fail(x < 0, "is negative")
        if name == "step" and self._horizon is not None and (x >= self._horizon).any():
            fail(x >= self._horizon, f"is not below the buffer's horizon {self._horizon}")
        if name == "actions" and self.dims.discrete and ((x < 0) | (x >= self.dims.n_actions)).any():
            fail(
                (x < 0) | (x >= self.dims.n_actions), f"holds an action outside 0..{self.dims.n_actions - 1}"
            )

    def transitions(self, idx: np.ndarray | slice | None = None) -> Transitions:
        tr = Transitions(**{name: self.array(name, idx) for name in _TRANSITION_FIELDS})
        if self.dims.discrete and len(tr):
            taken = np.take_along_axis(tr.avail_actions, tr.actions[..., None], axis=-1)[..., 0]
            if not taken.all():
                i = int(np.argmax(~taken.all(axis=1)))
                raise LogoError(
                    f"{self.path}: 'actions' holds an action that 'avail_actions' marks unavailable "
                    f"(transition {i} of those read); the buffer is damaged"
                )
        return tr

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
    """Open and validate a buffer; one-line LogoError when it is missing, garbled or incomplete.

    Attributes, array dtypes and shapes and (for buffers that store every chunk) the presence of
    every chunk file are checked here; values are checked as they are read."""
    import zarr

    from logo_cli.artifacts import check_format_version, format_version

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
    check_format_version(
        format_version(attrs, "schema_version"), SCHEMA_VERSION, "synthetic buffer", str(path)
    )
    try:
        dims = Dims.from_dict(attrs["dims"])
        n = attrs["n_rows"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n_rows {n!r}")
    except (KeyError, TypeError, ValueError) as e:
        raise LogoError(f"{path}: garbled attributes (dims / n_rows: {e})") from None
    if not isinstance(attrs.get("complete", False), bool):
        raise LogoError(f"{path}: garbled attributes (complete {attrs.get('complete')!r})")
    complete = attrs.get("complete") is True
    if not complete and not allow_incomplete:
        raise LogoError(
            f"{path}: incomplete buffer (an interrupted rollout; {n} rows written): rerun the same "
            "`logo rollout` command to finish it, or pass --allow-incomplete to `logo train-policy` "
            "to use its prefix"
        )
    try:
        present = set(group.array_keys())
    except Exception as e:  # an array's metadata that is not JSON, or not zarr's
        raise LogoError(f"{path}: garbled buffer (unreadable array metadata: {type(e).__name__})") from None
    for name, (tail, dtype) in _schema(dims).items():
        if name not in present:
            raise LogoError(f"{path}: garbled buffer (array '{name}' missing)")
        try:
            arr = group[name]
        except Exception as e:
            raise LogoError(
                f"{path}: garbled buffer (array '{name}' unreadable: {type(e).__name__})"
            ) from None
        if arr.dtype != dtype or tuple(arr.shape[1:]) != tail:
            raise LogoError(
                f"{path}: garbled buffer ('{name}' is {arr.dtype}{list(arr.shape[1:])}, "
                f"expected {dtype}{list(tail)})"
            )
        rows = arr.shape[0]
        if rows < n or (complete and rows != n):
            raise LogoError(f"{path}: garbled buffer ('{name}' has {rows} rows, attributes say {n})")
        if attrs.get("empty_chunks_written") is True:
            _check_chunk_files(path, name, arr, n, len(tail))
    return SyntheticBuffer(path, group, attrs, dims, n)


def _check_chunk_files(path: Path, name: str, arr, n: int, tail_dims: int) -> None:
    """Every chunk holding one of the first n rows must be on disk (zarr reads a missing one as
    zeros). The trailing axes are one chunk each, so chunk i is `<name>/c/i/0/...`."""
    step = int(arr.chunks[0])
    for i in range(-(-n // step)):
        chunk = path / name / "c" / str(i)
        for _ in range(tail_dims):
            chunk = chunk / "0"
        if not chunk.is_file():
            raise LogoError(
                f"{path}: array '{name}' lost chunk {i} (rows {i * step}..{min(n, (i + 1) * step) - 1}); "
                "the buffer is damaged"
            )


class BufferTarget:
    """The output of one rollout run: its lock, and whether it starts, continues or replaces a buffer.

    - nothing at the path: a fresh buffer is written there (an interrupted run leaves its prefix,
      marked incomplete, which the same command continues; a run that wrote no row leaves nothing);
    - an incomplete buffer made with the same options: it is continued (`SyntheticWriter(resume)`);
      with other options it is refused, naming the first difference;
    - `--overwrite` of a buffer (complete or not): the new one is built in a hidden sibling and
      swapped in by `finish()`, so the old one survives every failure until then;
    - anything else there is refused (see outputs.check_target).
    The lock on the path is held from `__enter__` to `__exit__`.
    """

    def __init__(self, path: str | Path, overwrite: bool, config: dict):
        self.path = Path(path)
        self.overwrite = overwrite
        self.config = config
        self.mode = "fresh"
        self.build = self.path
        self._lock = None
        self._writer: SyntheticWriter | None = None
        self._stored: dict | None = None

    def __enter__(self) -> BufferTarget:
        from logo_cli.outputs import OutputLock, ensure_parent, remove_stale

        ensure_parent(self.path)
        self._lock = OutputLock(self.path).acquire()
        try:
            remove_stale(self.path)
            self._decide()
        except BaseException:
            self._lock.release()
            raise
        return self

    def _decide(self) -> None:
        from logo_cli.outputs import artifact_kind, check_target, staging_path

        path = self.path
        if not (path.exists() or path.is_symlink()):
            return
        if self.overwrite:
            check_target(path, "rollout", overwrite=True)
            self.mode, self.build = "replace", staging_path(path, directory=True, create=False)
            return
        if artifact_kind(path) != "rollout":
            check_target(path, "rollout", overwrite=False)  # raises: already exists
        buf = open_synthetic(path, allow_incomplete=True)
        if buf.complete:
            raise LogoError(f"{path}: already exists (pass --overwrite to replace it)")
        if buf.n == 0:  # an interrupted run that wrote nothing: nothing to keep or to continue
            self.mode, self.build = "replace", staging_path(path, directory=True, create=False)
            return
        self._stored = buf.attrs
        diff = _config_diff(buf.attrs.get("config"), self.config)
        if diff:
            raise LogoError(
                f"{path}: an interrupted rollout ({buf.n} rows) made with other options ({diff}); rerun "
                "it with the same options to continue it, or pass --overwrite to replace it"
            )
        self.mode = "resume"

    def writer(self, attrs: dict, dims: Dims, chunk_rows: int) -> SyntheticWriter:
        """The writer for this run; when continuing, the provenance must match the stored one."""
        if self.mode == "resume":
            assert self._stored is not None
            for key in ("model", "policy", "source_data", "horizon", "seed", "sample"):
                if self._stored.get(key) != attrs.get(key):
                    was, now = (one_line(repr(x), 80) for x in (self._stored.get(key), attrs.get(key)))
                    raise LogoError(
                        f"{self.path}: an interrupted rollout whose {key.replace('_', ' ')} has changed "
                        f"since ({was} vs {now}); pass --overwrite to replace it"
                    )
            self._writer = SyntheticWriter(self.path, attrs, dims, chunk_rows, resume=True)
        else:
            self._writer = SyntheticWriter(self.build, attrs, dims, chunk_rows, label=self.path)
        return self._writer

    @property
    def resumed_from(self) -> int:
        return self._writer.resumed_from if self._writer is not None else 0

    def finish(self) -> None:
        """Swap a replacement in (checked again first); a no-op for fresh or continued buffers."""
        from logo_cli.outputs import swap_in

        if self.mode == "replace":
            swap_in(self.build, self.path, "rollout", overwrite=True)

    def __exit__(self, exc_type, exc, tb) -> None:
        from logo_cli.outputs import os_error_line, remove

        kept = None
        try:
            if exc_type is not None:
                if self.mode == "replace":
                    remove(self.build)  # the buffer being replaced stays as it was
                    kept = f"{self.path} is unchanged" if self.path.exists() else "nothing was written"
                elif self.mode == "fresh" and (self._writer is None or self._writer.n == 0):
                    if is_synthetic_buffer(self.path):
                        remove(self.path)  # nothing written: leave no buffer blocking the rerun
                    kept = "nothing was written"
                else:
                    kept = (
                        "the rows written so far stay, marked incomplete (rerun the same command to continue)"
                    )
        finally:
            assert self._lock is not None
            self._lock.release()
        if isinstance(exc, OSError):
            raise LogoError(os_error_line(exc, self.path, kept)) from None
        if isinstance(exc, NonFiniteRows) and kept:
            raise LogoError(f"{exc}; {kept}") from None


def _config_diff(stored: object, now: dict) -> str:
    """The first option that differs between a stored rollout config and this run's."""
    if not isinstance(stored, dict):
        return "no recorded options"
    for key, value in now.items():
        old = stored.get(key, ADDED_OPTIONS.get(key))
        if key not in RESUMABLE and old != value:
            return f"{key} {old!r} vs {value!r}"
    return ""
