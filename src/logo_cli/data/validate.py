"""Validation of one canonical h5 file, streamed through episode chunks.

`check_structure` looks only at key names, shapes, dtypes and attributes; `scan_episodes` then reads the
file once, chunk by chunk, checking every value a learner relies on and collecting the per-episode
statistics (length, return, real end, terminal reward), so opening a dataset costs one pass and
never holds more than a chunk in memory. Every problem is a LogoError "<file>: <problem>".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from logo_cli.data.layout import DISCRETE_DTYPES, TOLERATED_KEYS
from logo_cli.errors import LogoError

# Bytes of decoded rows per chunk of episodes (validation and reads): enough to amortise h5py calls,
# small enough to stay in RAM cheaply; 256-episode chunks of 6h_vs_8z (~110 MB) read 2-3x slower
# than ~32 MB ones here (fresh large buffers fault in page by page).
CHUNK_BYTES = 32 << 20


@dataclass(frozen=True)
class Layout:
    """What the key names, shapes and dtypes of one file say."""

    n_episodes: int
    rows: int  # L = episode_limit + 1
    n_agents: int
    obs_dim: int
    state_dim: int
    n_actions: int  # discrete: A; continuous: the action vector size
    discrete: bool
    has_probs: bool
    ignored_keys: tuple[str, ...]

    def same_dims(self, other: Layout) -> bool:
        keys = ("rows", "n_agents", "obs_dim", "state_dim", "n_actions", "discrete")
        return all(getattr(self, k) == getattr(other, k) for k in keys)


@dataclass
class EpisodeStats:
    lengths: np.ndarray  # int64 [E], l = filled rows - 1
    returns: np.ndarray  # float64 [E], sum of rewards of rows 0..l-1
    terminated: np.ndarray  # bool [E], a real end at row l-1
    terminal_reward: np.ndarray  # float32 [E], reward of row l-1


_KINDS = {"f": "a float type", "iub": "an integer or bool type"}


def _require_kind(path: Path, name: str, ds: h5py.Dataset, kinds: str) -> None:
    if ds.dtype.kind not in kinds:
        raise LogoError(f"{path}: '{name}' has dtype {ds.dtype}, expected {_KINDS[kinds]}")


def check_structure(f: h5py.File, path: Path, attrs: dict) -> Layout:
    """Keys, ranks, shared dims and dtype kinds; raises LogoError on the first disagreement."""
    keys = set(f.keys())
    required = ["state", "obs", "actions", "reward", "terminated", "filled"]
    for name in required:
        if name not in keys:
            from logo_cli.data.foreign import omiga_hint

            hint = omiga_hint(path, keys)
            if hint:
                raise LogoError(hint)
            raise LogoError(f"{path}: missing key '{name}' (found: {', '.join(sorted(keys)) or 'none'})")
    for name in keys & set(DISCRETE_DTYPES):
        if not isinstance(f[name], h5py.Dataset):
            raise LogoError(f"{path}: '{name}' is a group, expected a dataset")
    ranks = {"state": 3, "obs": 4, "actions": 4, "avail_actions": 4, "probs": 4}
    ranks.update(reward=3, terminated=3, filled=3)
    for name, rank in ranks.items():
        if name in keys and f[name].ndim != rank:
            raise LogoError(f"{path}: '{name}' has {f[name].ndim} dims {f[name].shape}, expected {rank}")
    E, L, S = f["state"].shape
    _, _, N, Od = f["obs"].shape
    discrete = f["actions"].dtype.kind in "iu"
    if discrete and "avail_actions" not in keys:
        raise LogoError(f"{path}: missing key 'avail_actions' (needed with integer actions)")
    present = [k for k in ranks if k in keys and (discrete or k not in ("avail_actions", "probs"))]
    for name in present:
        shape = f[name].shape
        if shape[:2] != (E, L):
            raise LogoError(f"{path}: '{name}' has shape {shape} but 'state' has {E} episodes of {L} rows")
    for name in ("actions", "avail_actions", "probs"):
        if name in present and f[name].shape[2] != N:
            raise LogoError(f"{path}: '{name}' has {f[name].shape[2]} agents but 'obs' has {N}")
    for name in ("reward", "terminated", "filled"):
        if f[name].shape[2] != 1:
            raise LogoError(f"{path}: '{name}' has shape {f[name].shape}, expected [{E}, {L}, 1]")
    if discrete:
        A = f["avail_actions"].shape[3]
        if f["actions"].shape[3] != 1:
            raise LogoError(
                f"{path}: integer 'actions' has shape {f['actions'].shape}, expected [E, L, N, 1]"
            )
        if "probs" in keys and f["probs"].shape != f["avail_actions"].shape:
            raise LogoError(f"{path}: 'probs' {f['probs'].shape} differs from 'avail_actions' {(E, L, N, A)}")
    else:
        _require_kind(path, "actions", f["actions"], "f")
        A = f["actions"].shape[3]
    for name in ("state", "obs", "reward") + (("probs",) if discrete and "probs" in keys else ()):
        _require_kind(path, name, f[name], "f")
    for name in ("terminated", "filled") + (("avail_actions",) if discrete else ()):
        _require_kind(path, name, f[name], "iub")
    if E == 0:
        raise LogoError(f"{path}: empty dataset (0 episodes)")
    if L < 2 or min(S, Od, N, A) < 1:
        raise LogoError(
            f"{path}: empty dataset (episodes of {L} rows, state {S}, obs {Od}, {N} agents, {A} actions)"
        )
    _check_attrs(path, attrs, episode_limit=L - 1, n_agents=N, n_actions=A, obs_dim=Od, state_dim=S)
    known = set(ranks) | set(TOLERATED_KEYS)
    ignored = tuple(sorted(keys - known))
    has_probs = discrete and "probs" in keys
    return Layout(E, L, N, Od, S, A, discrete, has_probs, ignored)


def _check_attrs(path: Path, attrs: dict, **expected: int) -> None:
    # Attributes are optional (CFCQL writes none), but when present they must agree with the arrays.
    for key, value in expected.items():
        found = attrs.get(key)
        if isinstance(found, str) and found.strip().lstrip("-").isdigit():
            found = int(found)  # a number written as text still has to agree
        if isinstance(found, (int, float)) and found != value:
            raise LogoError(f"{path}: attribute {key}={attrs[key]} disagrees with the arrays ({value})")


def chunk_episodes_for(layout: Layout) -> int:
    """Episodes per chunk so that one chunk of all keys holds about CHUNK_BYTES."""
    per_episode = (
        layout.rows
        * 4
        * (layout.state_dim + layout.n_agents * (layout.obs_dim + 2 * layout.n_actions + 2) + 3)
    )
    return int(max(1, min(layout.n_episodes, CHUNK_BYTES // max(per_episode, 1))))


def scan_episodes(f: h5py.File, path: Path, layout: Layout, chunk: int | None = None) -> EpisodeStats:
    """Check every value chunk by chunk and gather per-episode statistics."""
    E, L = layout.n_episodes, layout.rows
    chunk = chunk or chunk_episodes_for(layout)
    stats = EpisodeStats(
        lengths=np.zeros(E, np.int64),
        returns=np.zeros(E, np.float64),
        terminated=np.zeros(E, bool),
        terminal_reward=np.zeros(E, np.float32),
    )
    float_keys = ["state", "obs"] + (["probs"] if layout.has_probs else [])
    float_keys += [] if layout.discrete else ["actions"]
    rows = np.arange(L)[None, :]
    for lo in range(0, E, chunk):
        hi = min(E, lo + chunk)
        filled = _flag_values(path, "filled", f["filled"][lo:hi, :, 0], lo)
        if np.any(filled[:, 1:] > filled[:, :-1]):
            bad = lo + int(np.nonzero((filled[:, 1:] > filled[:, :-1]).any(axis=1))[0][0])
            raise LogoError(f"{path}: 'filled' of episode {bad} is not a prefix of ones followed by zeros")
        count = filled.sum(axis=1)
        if np.any(count < 2):
            bad = int(np.argmax(count < 2))
            raise LogoError(
                f"{path}: episode {lo + bad} has {int(count[bad])} filled rows (needs at least 2: one step)"
            )
        length = count - 1
        reward = f["reward"][lo:hi, :, 0]
        _check_finite(path, "reward", reward, lo)
        for name in float_keys:
            _check_finite(path, name, f[name][lo:hi], lo)
        steps = rows < length[:, None]  # rows 0..l-1 carry an action, a reward and a successor
        terminated = _flag_values(path, "terminated", f["terminated"][lo:hi, :, 0], lo)
        last = rows == (length - 1)[:, None]
        if np.any(terminated & ~last):
            bad = lo + int(np.nonzero((terminated & ~last).any(axis=1))[0][0])
            raise LogoError(f"{path}: 'terminated' of episode {bad} is set on a row other than its last step")
        if layout.discrete:
            _check_actions(path, f, lo, hi, steps, layout.n_actions)
        sl = slice(lo, hi)
        stats.lengths[sl] = length
        stats.returns[sl] = np.where(steps, reward, 0.0).sum(axis=1, dtype=np.float64)
        stats.terminated[sl] = terminated.any(axis=1)
        stats.terminal_reward[sl] = reward[np.arange(hi - lo), length - 1]
    return stats


def _check_finite(path: Path, name: str, x: np.ndarray, lo: int) -> None:
    finite = np.isfinite(x).reshape(x.shape[0], -1).all(axis=1)
    if not finite.all():
        raise LogoError(f"{path}: '{name}' has NaN or inf values (episode {lo + int(np.argmin(finite))})")


def _flag_values(path: Path, name: str, x: np.ndarray, lo: int) -> np.ndarray:
    """A 0/1 array as bool; any other value is malformed."""
    bad = (x != 0) & (x != 1)
    if np.any(bad):
        e = lo + int(np.nonzero(bad.any(axis=1))[0][0])
        raise LogoError(f"{path}: '{name}' of episode {e} holds values other than 0 and 1")
    return x.astype(bool)


def _check_actions(path: Path, f: h5py.File, lo: int, hi: int, steps: np.ndarray, n_actions: int) -> None:
    """Discrete actions of real steps must be in range and available (the final row's is a dummy)."""
    actions = f["actions"][lo:hi, :, :, 0]
    avail = f["avail_actions"][lo:hi]
    bad_avail = (avail != 0) & (avail != 1)
    if np.any(bad_avail):
        e = lo + int(np.nonzero(bad_avail.reshape(hi - lo, -1).any(axis=1))[0][0])
        raise LogoError(f"{path}: 'avail_actions' of episode {e} holds values other than 0 and 1")
    step_mask = np.broadcast_to(steps[:, :, None], actions.shape)
    out_of_range = step_mask & ((actions < 0) | (actions >= n_actions))
    if np.any(out_of_range):
        e, t, n = (int(v[0]) for v in np.nonzero(out_of_range))
        raise LogoError(
            f"{path}: action {int(actions[e, t, n])} of agent {n} at step {t} of episode {lo + e} "
            f"is out of range [0, {n_actions})"
        )
    taken = np.take_along_axis(avail, np.clip(actions, 0, n_actions - 1)[..., None], axis=-1)[..., 0]
    unavailable = step_mask & (taken == 0)
    if np.any(unavailable):
        e, t, n = (int(v[0]) for v in np.nonzero(unavailable))
        raise LogoError(
            f"{path}: action {int(actions[e, t, n])} of agent {n} at step {t} of episode {lo + e} "
            "is unavailable (avail_actions is 0 there)"
        )
