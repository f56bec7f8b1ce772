"""The canonical offline-dataset layout (CFCQL's pymarl EpisodeBatch dump) and helpers around it.

Eight datasets at the file root, episode-major, zero-padded to L = episode_limit + 1 rows. Row t holds
s_t, o_t, avail_t, a_t, r_t, terminated_t; row l (the episode length) holds the final state, obs and
avail with a dummy action and reward 0; `filled` marks rows 0..l. Metadata lives only in file
attributes: CFCQL's loader hands every root key to its batch, so an extra root key would break it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1

# The root keys and dtypes CFCQL writes (discrete actions). Continuous datasets keep the first six
# minus avail_actions/probs and store actions as float32 [E,L,N,Ad].
DISCRETE_DTYPES: dict[str, np.dtype] = {
    "state": np.dtype(np.float32),
    "obs": np.dtype(np.float32),
    "actions": np.dtype(np.int64),
    "avail_actions": np.dtype(np.int32),
    "probs": np.dtype(np.float32),
    "reward": np.dtype(np.float32),
    "terminated": np.dtype(np.uint8),
    "filled": np.dtype(np.int64),
}
CONTINUOUS_DTYPES: dict[str, np.dtype] = {
    k: (np.dtype(np.float32) if k == "actions" else v)
    for k, v in DISCRETE_DTYPES.items()
    if k not in ("avail_actions", "probs")
}
# Keys other tools add that a reader tolerates and ignores.
TOLERATED_KEYS = ("actions_onehot", "corrected_terminated")
QUALITIES = ("medium_replay", "medium", "expert", "mixed")


@dataclass
class EpisodeArrays:
    """E episodes in the canonical layout (numpy, episode-major, padded to L rows).

    state [E,L,S] f32, obs [E,L,N,O] f32, actions [E,L,N,1] int (discrete) or [E,L,N,Ad] f32
    (continuous), avail_actions [E,L,N,A] int (None for continuous), probs [E,L,N,A] f32 or None
    (written as zeros for discrete data), reward/terminated/filled [E,L,1].
    """

    state: np.ndarray
    obs: np.ndarray
    actions: np.ndarray
    avail_actions: np.ndarray | None
    probs: np.ndarray | None
    reward: np.ndarray
    terminated: np.ndarray
    filled: np.ndarray

    @property
    def n_episodes(self) -> int:
        return int(self.state.shape[0])

    @property
    def lengths(self) -> np.ndarray:
        """l per episode (number of transitions), = filled.sum() - 1."""
        return self.filled.reshape(self.n_episodes, -1).sum(axis=1).astype(np.int64) - 1

    def select(self, idx: np.ndarray | slice) -> EpisodeArrays:
        return EpisodeArrays(
            **{
                f.name: (None if getattr(self, f.name) is None else getattr(self, f.name)[idx])
                for f in fields(self)
            }
        )

    @staticmethod
    def concat(parts: list[EpisodeArrays]) -> EpisodeArrays:
        def cat(name: str) -> np.ndarray | None:
            arrays = [getattr(p, name) for p in parts]
            return None if any(a is None for a in arrays) else np.concatenate(arrays)

        return EpisodeArrays(**{f.name: cat(f.name) for f in fields(EpisodeArrays)})


def make_episode(
    states: np.ndarray,
    obs: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    terminated: bool,
    episode_limit: int,
    avail_actions: np.ndarray | None = None,
    probs: np.ndarray | None = None,
) -> EpisodeArrays:
    """One padded episode from its l+1 observed rows and l steps.

    states [l+1,S], obs [l+1,N,O], avail_actions [l+1,N,A] (discrete) include the final row; actions
    [l,N] int or [l,N,Ad] float, rewards [l], probs [l,N,A] cover the steps. `terminated` is a real
    end (win, loss); False means a time-out or a cut, and is never written as terminated.
    """
    n = len(rewards)
    if n < 1 or n > episode_limit or states.shape[0] != n + 1 or obs.shape[0] != n + 1:
        raise ValueError(f"episode of {n} steps with {states.shape[0]} state rows, limit {episode_limit}")
    L = episode_limit + 1
    discrete = np.issubdtype(actions.dtype, np.integer)

    def pad(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
        out = np.zeros((L, *x.shape[1:]), dtype=dtype)
        out[: x.shape[0]] = x
        return out[None]

    acts = actions[..., None] if discrete and actions.ndim == 2 else actions
    term = np.zeros((n,), dtype=np.uint8)
    term[-1] = bool(terminated)
    filled = np.ones((n + 1, 1), dtype=np.int64)
    return EpisodeArrays(
        state=pad(states, np.float32),
        obs=pad(obs, np.float32),
        actions=pad(acts, np.int64 if discrete else np.float32),
        avail_actions=None if avail_actions is None else pad(avail_actions, np.int32),
        probs=None if probs is None else pad(probs, np.float32),
        reward=pad(rewards.reshape(n, 1), np.float32),
        terminated=pad(term.reshape(n, 1), np.uint8),
        filled=pad(filled, np.int64),
    )


def parse_dataset_name(filename: str | Path) -> tuple[str | None, str | None]:
    """`{map}_{quality}.h5` -> (map, quality); quality matched from the right, `smac_`/`smax_` dropped.

    '5m_vs_6m_medium_replay.h5' -> ('5m_vs_6m', 'medium_replay'); a name without a known quality gives
    (None, None) so callers fall back to the file's attributes.
    """
    stem = Path(filename).name
    stem = re.sub(r"^(smac|smax)_", "", re.sub(r"\.(h5|hdf5)$", "", stem))
    for quality in QUALITIES:  # medium_replay before medium, so the longer suffix wins
        suffix = "_" + quality
        if stem.endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)], quality
    return None, None


def split_episodes(n_episodes: int, holdout_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Episode-wise train/holdout split (sorted indices), the same for the same seed.

    Whole episodes go to one side, so no held-out transition has its neighbours in training. A
    non-zero fraction holds out at least one episode while leaving at least one for training.
    """
    if not 0.0 <= holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction {holdout_fraction} is not in [0, 1)")
    perm = np.random.default_rng(seed).permutation(n_episodes)
    n_hold = int(round(n_episodes * holdout_fraction))
    if holdout_fraction > 0 and n_episodes >= 2:
        n_hold = min(max(n_hold, 1), n_episodes - 1)
    return np.sort(perm[n_hold:]), np.sort(perm[:n_hold])


def encode_attr(value: object) -> object:
    """HDF5 attributes hold strings, numbers and numeric arrays; other containers go in as JSON text."""
    if isinstance(value, (str, bool, int, float, np.generic, np.ndarray)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, (bool, int, float)) for v in value):
        return np.asarray(value)
    return json.dumps(value)


def decode_attr(value: object) -> object:
    """Back to plain python: numpy scalars to python, arrays to lists, bytes to str."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        if value.dtype.kind in ("S", "O"):
            return [decode_attr(v) for v in value.tolist()]
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


# Optional file attributes of a dataset collected from a continuous behaviour ladder: the returns that
# map to normalised scores 0 (uniform random policy) and 100 (the ladder's expert), see docs/collect.md.
REFERENCE_RANDOM_ATTR = "reference_return_random"
REFERENCE_EXPERT_ATTR = "reference_return_expert"


def check_reference_returns(random: object, expert: object, source: str) -> tuple[float, float]:
    """(random, expert) as finite floats with expert > random; a one-line LogoError otherwise."""
    from logo_cli.errors import LogoError

    out = []
    for name, v in (("random", random), ("expert", expert)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise LogoError(f"{source}: reference return ({name}) {v!r} is not a number")
        if not np.isfinite(float(v)):
            raise LogoError(f"{source}: reference return ({name}) {v!r} is not finite")
        out.append(float(v))
    if not out[1] > out[0]:
        raise LogoError(f"{source}: reference returns random {out[0]:g} >= expert {out[1]:g}")
    return out[0], out[1]


def reference_returns(attrs: dict, source: str) -> tuple[float, float] | None:
    """A dataset's (random, expert) reference returns from its attributes; None when it has neither;
    one line when only one is there or either is not a finite float."""
    from logo_cli.errors import LogoError

    have = [k for k in (REFERENCE_RANDOM_ATTR, REFERENCE_EXPERT_ATTR) if attrs.get(k) is not None]
    if not have:
        return None
    if len(have) == 1:
        raise LogoError(f"{source}: attribute {have[0]} without its pair")
    return check_reference_returns(attrs[REFERENCE_RANDOM_ATTR], attrs[REFERENCE_EXPERT_ATTR], source)


def normalised_score(ret: float, random: float, expert: float) -> float:
    """100 * (ret - random) / (expert - random): 0 = the random policy, 100 = the expert."""
    return 100.0 * (ret - random) / (expert - random)
