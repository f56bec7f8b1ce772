"""Convert OMIGA's MaMuJoCo `.hdf5` files into the canonical continuous-action layout.

OMIGA (`{Task}-{conf}-{quality}.hdf5`) stores flat rows: s [T,N,S] (the global state repeated per
agent) or [T,S], o [T,N,O], a [T,N,Ad], r [T] or [T,k], d [T] or [T,k]. Its loader makes a transition
i -> i+1 from every row with d[i] = 0 and never from a row with d = 1, so a row with d = 1 is an
episode's final observation: an episode is a run of rows ending at d = 1, which becomes rows 0..l of
a canonical episode. OMIGA does not tell a time-out from a real end; here an episode reaching
`episode_limit` (default: the longest episode in the file) is a time-out and a shorter one a real
end. Rows after the last d = 1 form an episode cut short (neither).
"""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np

from logo_cli.data.h5_write import DatasetWriter
from logo_cli.data.layout import EpisodeArrays
from logo_cli.errors import LogoError

OMIGA_QUALITIES = ("medium-replay", "medium-expert", "medium", "expert", "random")
_KEYS = ("s", "o", "a", "r", "d")


def parse_omiga_name(filename: str | Path) -> tuple[str, str | None]:
    """'HalfCheetah-v2-6x1-expert.hdf5' -> ('HalfCheetah-v2-6x1', 'expert')."""
    stem = re.sub(r"\.(hdf5|h5)$", "", Path(filename).name)
    for quality in OMIGA_QUALITIES:
        if stem.endswith("-" + quality):
            return stem[: -len(quality) - 1], quality.replace("-", "_")
    return stem, None


def omiga_env_name(task: str) -> str | None:
    """The simulator an OMIGA task names: 'HalfCheetah-v2-6x1' -> 'mamujoco:HalfCheetah-6x1'.

    OMIGA's tasks carry the gym version of the single-agent robot ('-v2'); the MaMuJoCo adapter
    names a task by robot and agent conf alone. None for a name of another form."""
    m = re.fullmatch(r"([A-Za-z][A-Za-z0-9]*)(?:-v\d+)?-([A-Za-z0-9|]+)", task)
    return None if m is None else f"mamujoco:{m.group(1)}-{m.group(2)}"


def _first_column(x: np.ndarray) -> np.ndarray:
    return x if x.ndim == 1 else x.reshape(x.shape[0], -1)[:, 0]


def _episode_bounds(d: np.ndarray) -> list[tuple[int, int, bool]]:
    """(first row, last row, ended at d=1) per episode of at least one transition."""
    ends = np.nonzero(d != 0)[0]
    starts = np.concatenate([[0], ends + 1])
    stops = np.concatenate([ends, [len(d) - 1]])
    closed = np.concatenate([np.ones(len(ends), bool), [False]])
    return [(int(a), int(b), bool(c)) for a, b, c in zip(starts, stops, closed, strict=True) if b > a]


def convert_omiga(
    src: str | Path,
    dst: str | Path,
    *,
    episode_limit: int | None = None,
    attrs: dict | None = None,
    compression: str | None = "gzip",
    batch_episodes: int = 32,
) -> dict:
    """Write `src` (OMIGA hdf5) to `dst` in the canonical layout; returns a small summary."""
    src, dst = Path(src), Path(dst)
    if not src.is_file() or not h5py.is_hdf5(src):
        raise LogoError(f"{src}: not an HDF5 file")
    with h5py.File(src, "r") as f:
        missing = [k for k in _KEYS if k not in f]
        if missing:
            raise LogoError(
                f"{src}: missing OMIGA key(s) {', '.join(missing)} (found: {', '.join(f.keys())})"
            )
        not_numeric = [
            f"{k} ({'a group' if not isinstance(f[k], h5py.Dataset) else f[k].dtype})"
            for k in _KEYS
            if not isinstance(f[k], h5py.Dataset) or f[k].dtype.kind not in "biuf"
        ]
        if not_numeric:
            raise LogoError(f"{src}: OMIGA key(s) not numeric arrays: {', '.join(not_numeric)}")
        T = f["o"].shape[0]
        s_ok = f["s"].ndim == 2 or (f["s"].ndim == 3 and f["s"].shape[1] == f["o"].shape[1])
        if not s_ok or f["r"].ndim not in (1, 2) or f["d"].ndim not in (1, 2):
            shapes = {k: f[k].shape for k in _KEYS}
            raise LogoError(
                f"{src}: OMIGA keys of unexpected ranks: {shapes} (s [T,N,S] or [T,S], r/d [T] or [T,k])"
            )
        if f["o"].ndim != 3 or f["a"].ndim != 3 or any(f[k].shape[0] != T for k in _KEYS):
            shapes = {k: f[k].shape for k in _KEYS}
            raise LogoError(f"{src}: OMIGA keys disagree: {shapes} (expected o [T,N,O], a [T,N,Ad])")
        _, N, obs_dim = f["o"].shape
        act_dim = f["a"].shape[2]
        state_dim = f["s"].shape[-1]
        bounds = _episode_bounds(_first_column(f["d"][:]))
        if not bounds:
            raise LogoError(f"{src}: no episode with at least one transition")
        longest = max(b - a for a, b, _ in bounds)
        limit = episode_limit or longest
        if longest > limit:
            raise LogoError(f"{src}: an episode of {longest} steps exceeds --episode-limit {limit}")
        task, quality = parse_omiga_name(src)
        meta = {"source": "omiga", "map_name": task, "quality": quality}
        env = omiga_env_name(task)
        if env is not None:  # else none recorded: `logo evaluate --env` names it
            meta["env"] = env
        meta.update(original_file=src.name, **(attrs or {}))
        n_terminated = 0
        with DatasetWriter(
            dst,
            n_agents=N,
            obs_dim=obs_dim,
            state_dim=state_dim,
            n_actions=act_dim,
            episode_limit=limit,
            discrete=False,
            attrs=meta,
            compression=compression,
        ) as writer:
            for lo in range(0, len(bounds), batch_episodes):
                batch = bounds[lo : lo + batch_episodes]
                episodes = _read_batch(f, batch, limit, state_dim)
                n_terminated += int(episodes.terminated.any(axis=(1, 2)).sum())
                writer.add(episodes)
    return {
        "episodes": len(bounds),
        "transitions": sum(b - a for a, b, _ in bounds),
        "terminated": n_terminated,
    }


def _read_batch(
    f: h5py.File, batch: list[tuple[int, int, bool]], limit: int, state_dim: int
) -> EpisodeArrays:
    """Pad a batch of episodes (contiguous rows of the flat file) into the canonical layout."""
    L, E = limit + 1, len(batch)
    first, last = batch[0][0], batch[-1][1]
    rows = {k: f[k][first : last + 1] for k in _KEYS}
    s = rows["s"] if rows["s"].ndim == 2 else rows["s"][:, 0]  # agents share the global state
    r = _first_column(rows["r"]).astype(np.float32)
    N, obs_dim, act_dim = rows["o"].shape[1], rows["o"].shape[2], rows["a"].shape[2]
    out = EpisodeArrays(
        state=np.zeros((E, L, state_dim), np.float32),
        obs=np.zeros((E, L, N, obs_dim), np.float32),
        actions=np.zeros((E, L, N, act_dim), np.float32),
        avail_actions=None,
        probs=None,
        reward=np.zeros((E, L, 1), np.float32),
        terminated=np.zeros((E, L, 1), np.uint8),
        filled=np.zeros((E, L, 1), np.int64),
    )
    for i, (a, b, closed) in enumerate(batch):
        a, b = a - first, b - first
        ell = b - a  # rows a..b are rows 0..l; steps use rows a..b-1
        out.state[i, : ell + 1] = s[a : b + 1]
        out.obs[i, : ell + 1] = rows["o"][a : b + 1]
        out.actions[i, :ell] = rows["a"][a:b]
        out.reward[i, :ell, 0] = r[a:b]
        out.filled[i, : ell + 1] = 1
        out.terminated[i, ell - 1, 0] = closed and ell < limit
    return out
