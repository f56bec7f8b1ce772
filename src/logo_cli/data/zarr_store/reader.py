"""Opening and validating a synthetic buffer; its values are checked as they are read."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from logo_cli.data.transitions import Dims, Transitions
from logo_cli.data.zarr_store.schema import FORMAT, SCHEMA_VERSION, TRANSITION_FIELDS, array_schema
from logo_cli.errors import LogoError, one_line


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
        tr = Transitions(**{name: self.array(name, idx) for name in TRANSITION_FIELDS})
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
    for name, (tail, dtype) in array_schema(dims).items():
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
