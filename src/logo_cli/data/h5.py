"""Offline h5 datasets: open (validated), describe, and read episodes or transitions in chunks.

`open_dataset` accepts one canonical file or a folder of `part_*.h5` files making one dataset, and
validates everything in one streamed pass before returning (see data/validate.py). Reads touch only
the requested episodes, grouped into contiguous runs, so a multi-GB file is never loaded whole.
Writing lives in data/h5_write.py; the names are re-exported here as the module others import.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import h5py
import numpy as np

from logo_cli.data.h5_write import DatasetWriter, write_dataset
from logo_cli.data.layout import (
    EpisodeArrays,
    decode_attr,
    make_episode,
    parse_dataset_name,
    split_episodes,
)
from logo_cli.data.transitions import Dims, Transitions, episodes_to_transitions
from logo_cli.data.validate import EpisodeStats, Layout, check_structure, chunk_episodes_for, scan_episodes
from logo_cli.errors import LogoError

__all__ = [
    "DatasetWriter",
    "EpisodeArrays",
    "OfflineDataset",
    "make_episode",
    "open_dataset",
    "parse_dataset_name",
    "split_episodes",
    "write_dataset",
]


@dataclass
class _Part:
    path: Path
    file: h5py.File
    offset: int  # index of its first episode in the whole dataset
    n_episodes: int


def _part_files(folder: Path) -> list[Path]:
    def key(p: Path) -> tuple[int, str]:
        m = re.search(r"(\d+)", p.stem)  # part_2 before part_10
        return (int(m.group(1)) if m else -1, p.name)

    return sorted(folder.glob("part_*.h5"), key=key)


def _open_file(path: Path) -> h5py.File:
    if not h5py.is_hdf5(path):
        raise LogoError(f"{path}: not an HDF5 file")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        reason = str(e).split("(")[0].strip().rstrip(",") or type(e).__name__
        raise LogoError(f"{path}: unreadable HDF5 file ({reason})") from None


class OfflineDataset:
    """A validated canonical dataset; use as a context manager or call `close()`."""

    def __init__(self, path: Path, parts: list[_Part], layout: Layout, stats: EpisodeStats, attrs: dict):
        self.path = path
        self._parts = parts
        self.layout = layout
        self.attrs = attrs
        self._stats = stats

    # ---- shape and statistics (computed while validating) ----
    @property
    def dims(self) -> Dims:
        lay = self.layout
        return Dims(lay.n_agents, lay.obs_dim, lay.state_dim, lay.n_actions, lay.discrete)

    @property
    def episode_limit(self) -> int:
        return self.layout.rows - 1

    @property
    def n_episodes(self) -> int:
        return int(self._stats.lengths.shape[0])

    @property
    def lengths(self) -> np.ndarray:
        return self._stats.lengths

    @property
    def n_transitions(self) -> int:
        return int(self._stats.lengths.sum())

    @property
    def returns(self) -> np.ndarray:
        return self._stats.returns

    @property
    def terminated_mask(self) -> np.ndarray:
        """True where the episode had a real end (win, loss), False for a time-out."""
        return self._stats.terminated

    @property
    def won(self) -> np.ndarray | None:
        """Per-episode wins: a stored `won` attribute, else for SMAX data a real end with reward >= 1.

        SMAX gives +1 on the winning step on top of health-damage rewards in [0, 1], so only a win
        reaches 1 in one step. Real SMAC rewards are rescaled per map and cannot be told apart: None.
        """
        stored = self.attrs.get("won")
        if isinstance(stored, list) and len(stored) == self.n_episodes:
            return np.asarray(stored, dtype=bool)
        env = str(self.attrs.get("env", "")).lower()
        source = str(self.attrs.get("source", "")).lower()
        if env.startswith("smax") or "smax" in source or self.path.name.lower().startswith("smax_"):
            return self._stats.terminated & (self._stats.terminal_reward >= 1.0)
        return None

    @property
    def map_name(self) -> str | None:
        return self.attrs.get("map_name") or parse_dataset_name(self.path.name)[0]

    @property
    def quality(self) -> str | None:
        return self.attrs.get("quality") or parse_dataset_name(self.path.name)[1]

    @property
    def parts(self) -> list[Path]:
        return [p.path for p in self._parts]

    def probs_recorded(self, chunk: int = 256) -> bool:
        """Whether the file holds behaviour probabilities: a `probs` key with a nonzero entry. The
        canonical writer stores zeros when the source has none (an OG-MARL vault, say)."""
        if not self.layout.has_probs:
            return False
        for part in self._parts:
            probs = part.file["probs"]
            for lo in range(0, probs.shape[0], chunk):
                if np.any(probs[lo : lo + chunk]):
                    return True
        return False

    # ---- reading ----
    def _keys(self, with_probs: bool) -> list[str]:
        keys = ["state", "obs", "actions"]
        keys += ["avail_actions"] + (["probs"] if with_probs and self.layout.has_probs else [])
        keys = keys if self.layout.discrete else ["state", "obs", "actions"]
        return keys + ["reward", "terminated", "filled"]

    def _read(self, keys: list[str], episodes: np.ndarray) -> dict[str, np.ndarray]:
        """Rows of `episodes` (any order, repeats allowed) for each key, in the order asked."""
        uniq, inverse = np.unique(episodes, return_inverse=True)
        if uniq.size and (uniq[0] < 0 or uniq[-1] >= self.n_episodes):
            raise IndexError(f"episode indices must lie in [0, {self.n_episodes})")
        out: dict[str, list[np.ndarray]] = {k: [] for k in keys}
        for part in self._parts:
            sel = uniq[(uniq >= part.offset) & (uniq < part.offset + part.n_episodes)] - part.offset
            if sel.size == 0:
                continue
            for k in keys:
                out[k].append(_read_rows(part.file[k], sel))
        in_order = uniq.size == episodes.size and np.array_equal(uniq, episodes)

        def join(key: str, parts: list[np.ndarray]) -> np.ndarray:
            if not parts:  # no episodes asked: zero rows with the right trailing shape and dtype
                return self._parts[0].file[key][0:0]
            x = parts[0] if len(parts) == 1 else np.concatenate(parts)
            return x if in_order else x[inverse]  # skip a full copy when already sorted and unique

        return {k: join(k, v) for k, v in out.items()}

    def episode_arrays(self, episodes: np.ndarray | list[int]) -> EpisodeArrays:
        """The given episodes in the canonical layout (probs None when the file has none)."""
        arr = self._read(self._keys(with_probs=True), np.asarray(episodes, dtype=np.int64))
        return EpisodeArrays(
            state=arr["state"],
            obs=arr["obs"],
            actions=arr["actions"],
            avail_actions=arr.get("avail_actions"),
            probs=arr.get("probs"),
            reward=arr["reward"],
            terminated=arr["terminated"],
            filled=arr["filled"],
        )

    def iter_transitions(self, episodes: np.ndarray | None = None, chunk_episodes: int | None = None):
        """Transitions of `episodes` (default: all), yielded per chunk of episodes, in the order given.

        chunk_episodes None sizes chunks to about 32 MB of rows (validate.CHUNK_BYTES).
        """
        order = np.arange(self.n_episodes) if episodes is None else np.asarray(episodes, dtype=np.int64)
        keys = self._keys(with_probs=False)
        chunk_episodes = max(1, chunk_episodes or chunk_episodes_for(self.layout))
        for lo in range(0, len(order), chunk_episodes):
            arr = self._read(keys, order[lo : lo + chunk_episodes])
            yield episodes_to_transitions(
                arr["state"],
                arr["obs"],
                arr["actions"],
                arr.get("avail_actions"),
                arr["reward"],
                arr["terminated"],
                arr["filled"],
            )

    def transitions(
        self, episodes: np.ndarray | None = None, chunk_episodes: int | None = None
    ) -> Transitions:
        """All transitions of `episodes` in one batch, filled chunk by chunk into preallocated arrays."""
        order = np.arange(self.n_episodes) if episodes is None else np.asarray(episodes, dtype=np.int64)
        total = int(self.lengths[order].sum()) if order.size else 0
        result: dict[str, np.ndarray] | None = None
        pos = 0
        for part in self.iter_transitions(order, chunk_episodes):
            fields = vars(part)
            if result is None:  # shapes and dtypes as episodes_to_transitions makes them
                result = {k: np.empty((total, *v.shape[1:]), v.dtype) for k, v in fields.items()}
            for k, v in fields.items():
                result[k][pos : pos + len(part)] = v
            pos += len(part)
        if result is None:  # no episodes asked: an empty batch with the right trailing shapes
            return next(self.iter_transitions(np.zeros(1, np.int64))).select(slice(0, 0))
        assert pos == total
        return Transitions(**result)

    def close(self) -> None:
        for part in self._parts:
            part.file.close()

    def __enter__(self) -> OfflineDataset:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _read_rows(ds: h5py.Dataset, sel: np.ndarray) -> np.ndarray:
    """Rows `sel` (sorted, unique) of a dataset, one h5py read per contiguous run.

    A dense selection (spanning at most twice its size) is read as one slice and subset in memory,
    which beats many small reads; plain slices also keep h5py on its fast contiguous-read path.
    """
    lo, hi = int(sel[0]), int(sel[-1]) + 1
    if hi - lo == sel.size:
        return ds[lo:hi]
    if hi - lo <= 2 * sel.size:
        return ds[lo:hi][sel - lo]
    breaks = np.nonzero(np.diff(sel) != 1)[0] + 1
    return np.concatenate([ds[int(r[0]) : int(r[-1]) + 1] for r in np.split(sel, breaks)])


def open_dataset(path: str | Path) -> OfflineDataset:
    """Open and fully validate a canonical dataset (a file, or a folder of part_*.h5 files)."""
    path = Path(path)
    if not path.exists():
        raise LogoError(f"{path}: no such file or folder")
    if path.is_dir():
        files = _part_files(path)
        if not files:
            from logo_cli.data.foreign import vault_hint

            raise LogoError(vault_hint(path) or f"{path}: folder holds no part_*.h5 files")
    else:
        files = [path]
    parts: list[_Part] = []
    try:
        layout0: Layout | None = None
        stats: list[EpisodeStats] = []
        attrs: dict = {}
        offset = 0
        for file_path in files:
            f = _open_file(file_path)
            parts.append(_Part(file_path, f, offset, 0))
            file_attrs = {k: decode_attr(v) for k, v in f.attrs.items()}
            layout = check_structure(f, file_path, file_attrs)
            if layout0 is None:
                layout0, attrs = layout, file_attrs
            elif not layout.same_dims(layout0):
                raise LogoError(f"{file_path}: dims differ from {files[0].name} ({layout} vs {layout0})")
            stats.append(scan_episodes(f, file_path, layout))
            parts[-1].n_episodes = layout.n_episodes
            offset += layout.n_episodes
        assert layout0 is not None
        merged = EpisodeStats(
            *(np.concatenate([getattr(s, k) for s in stats]) for k in EpisodeStats.__dataclass_fields__)
        )
        if len(files) > 1:  # per-file counts and per-episode arrays describe one part only
            won = [p.file.attrs.get("won") for p in parts]
            attrs = {k: v for k, v in attrs.items() if k not in ("n_episodes", "won")}
            if all(np.ndim(w) == 1 and len(w) == p.n_episodes for w, p in zip(won, parts, strict=True)):
                attrs["won"] = np.concatenate(won).astype(bool).tolist()
            attrs["n_episodes"] = offset
            layout0 = Layout(**{**vars(layout0), "n_episodes": offset})
        return OfflineDataset(path, parts, layout0, merged, attrs)
    except BaseException:
        for part in parts:
            part.file.close()
        raise
