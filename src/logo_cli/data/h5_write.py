"""Writing canonical h5 datasets, streamed: episodes are appended to resizable chunked datasets.

The file is built under a temporary name in the target folder and renamed into place only when the
writer closes without an error, so an interrupted collection never leaves a half-written dataset.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from pathlib import Path
from types import TracebackType

import h5py
import numpy as np

from logo_cli import __version__
from logo_cli.artifacts import publish
from logo_cli.data.layout import (
    CONTINUOUS_DTYPES,
    DISCRETE_DTYPES,
    FORMAT_VERSION,
    EpisodeArrays,
    encode_attr,
)

# Target size of one stored chunk of `obs`: a random-episode read decompresses a whole chunk, so
# large maps get one episode per chunk (6h_vs_8z: 283 KB) and small maps a few (3m: 11 of 22 KB),
# which keeps sequential reads to a few h5py calls per key. Measured in benchmarks/h5_read.py.
CHUNK_BYTES = 1 << 18
MAX_CHUNK_EPISODES = 64
# gzip level 1 (with the shuffle filter) keeps nearly all of level 4's saving on zero padding and
# sparse SMAC features at about half the CPU per write; inflating costs the same at any level.
GZIP_LEVEL = 1


class DatasetWriter:
    """Context manager that appends episodes to a new canonical dataset at `path`.

    `attrs` become file attributes (map_name, quality, source, seed, env, ...); the writer adds the
    dims, episode_limit, n_episodes, format_version and generator. `writer.attrs` may be updated
    until the writer closes (e.g. per-episode win flags as an array).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        n_agents: int,
        obs_dim: int,
        state_dim: int,
        n_actions: int,
        episode_limit: int,
        discrete: bool = True,
        attrs: dict | None = None,
        compression: str | None = "gzip",
    ):
        self.path = Path(path)
        self.discrete = discrete
        self.rows = episode_limit + 1
        self.episode_limit = episode_limit
        self.compression = compression
        self.attrs: dict = dict(attrs or {})
        N, Od, S, A = n_agents, obs_dim, state_dim, n_actions
        L = self.rows
        self.shapes: dict[str, tuple[int, ...]] = {
            "state": (L, S),
            "obs": (L, N, Od),
            "actions": (L, N, 1) if discrete else (L, N, A),
            "avail_actions": (L, N, A),
            "probs": (L, N, A),
            "reward": (L, 1),
            "terminated": (L, 1),
            "filled": (L, 1),
        }
        self.dtypes = DISCRETE_DTYPES if discrete else CONTINUOUS_DTYPES
        self.shapes = {k: v for k, v in self.shapes.items() if k in self.dtypes}
        self.dims = {
            "n_agents": N,
            "obs_dim": Od,
            "state_dim": S,
            "n_actions": A,
            "discrete": discrete,
            "episode_limit": episode_limit,
        }
        obs_bytes = L * N * Od * 4
        self.chunk_episodes = int(np.clip(CHUNK_BYTES // max(obs_bytes, 1), 1, MAX_CHUNK_EPISODES))
        self.n_episodes = 0
        self._pending: list[EpisodeArrays] = []
        self._pending_n = 0
        self._file: h5py.File | None = None
        self._tmp: Path | None = None

    def __enter__(self) -> DatasetWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        os.close(fd)
        self._tmp = Path(tmp)
        try:
            self._file = h5py.File(self._tmp, "w")
            for name, shape in self.shapes.items():
                self._file.create_dataset(
                    name,
                    shape=(0, *shape),
                    maxshape=(None, *shape),
                    dtype=self.dtypes[name],
                    chunks=(self.chunk_episodes, *shape),
                    compression=self.compression,
                    compression_opts=GZIP_LEVEL if self.compression == "gzip" else None,
                    shuffle=self.compression is not None,
                )
        except BaseException:
            self._abort()
            raise
        return self

    def add(self, episodes: EpisodeArrays) -> None:
        """Append episodes; buffered to whole storage chunks so each chunk is compressed once."""
        if self._file is None:
            raise RuntimeError("DatasetWriter.add outside its `with` block")
        self._check(episodes)
        if self.discrete and episodes.probs is None:  # behaviour probabilities not saved: zeros
            episodes = replace(
                episodes, probs=np.zeros((episodes.n_episodes, *self.shapes["probs"]), np.float32)
            )
        self._pending.append(episodes)
        self._pending_n += episodes.n_episodes
        if self._pending_n >= self.chunk_episodes:
            self._flush(whole_chunks_only=True)

    def _check(self, ep: EpisodeArrays) -> None:
        E = ep.n_episodes
        for name, shape in self.shapes.items():
            x = getattr(ep, name)
            if x is None and name == "probs":
                continue
            if x is None or x.shape != (E, *shape):
                got = None if x is None else x.shape
                raise ValueError(
                    f"DatasetWriter({self.path}): '{name}' has shape {got}, expected {(E, *shape)}"
                )
        filled = ep.filled.reshape(E, -1)
        if np.any(filled[:, 1:] > filled[:, :-1]) or np.any(filled.sum(axis=1) < 2):
            raise ValueError(f"DatasetWriter({self.path}): 'filled' is not a prefix mask of >= 2 rows")

    def _flush(self, whole_chunks_only: bool) -> None:
        if not self._pending:
            return
        batch = EpisodeArrays.concat(self._pending) if len(self._pending) > 1 else self._pending[0]
        n = batch.n_episodes
        n_write = (n // self.chunk_episodes) * self.chunk_episodes if whole_chunks_only else n
        if n_write == 0:
            return
        assert self._file is not None
        lo, hi = self.n_episodes, self.n_episodes + n_write
        for name, shape in self.shapes.items():
            x = getattr(batch, name)
            x = np.zeros((n_write, *shape), self.dtypes[name]) if x is None else x[:n_write]
            ds = self._file[name]
            ds.resize(hi, axis=0)
            ds[lo:hi] = x.astype(self.dtypes[name], copy=False)
        self.n_episodes = hi
        rest = batch.select(slice(n_write, n))
        self._pending = [rest] if n_write < n else []
        self._pending_n = n - n_write

    def close(self) -> None:
        """Write what is buffered and the attributes, then rename the file into place."""
        if self._file is None:
            return
        try:
            self._flush(whole_chunks_only=False)
            if self.n_episodes == 0:
                raise ValueError(f"DatasetWriter({self.path}): no episodes were added")
            attrs = {**self.attrs, **self.dims}
            attrs.update(
                n_episodes=self.n_episodes,
                format_version=FORMAT_VERSION,
                generator=f"logo-cli {__version__}",
            )
            for key, value in attrs.items():
                if value is not None:
                    self._file.attrs[key] = encode_attr(value)
            self._file.close()
            self._file = None
            assert self._tmp is not None
            publish(self._tmp, self.path)
            self._tmp = None
        except BaseException:
            self._abort()
            raise

    def _abort(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            finally:
                self._file = None
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort()


def write_dataset(
    path: str | Path, episodes: EpisodeArrays, attrs: dict | None = None, compression: str | None = "gzip"
) -> None:
    """Write all `episodes` at once (dims taken from the arrays)."""
    discrete = episodes.avail_actions is not None
    _, L, N, Od = episodes.obs.shape
    A = episodes.avail_actions.shape[3] if discrete else episodes.actions.shape[3]
    with DatasetWriter(
        path,
        n_agents=N,
        obs_dim=Od,
        state_dim=episodes.state.shape[2],
        n_actions=A,
        episode_limit=L - 1,
        discrete=discrete,
        attrs=attrs,
        compression=compression,
    ) as writer:
        writer.add(episodes)
