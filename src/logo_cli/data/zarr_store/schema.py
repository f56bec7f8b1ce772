"""The synthetic buffer's layout: its format name and version, and each array's shape and dtype."""

from __future__ import annotations

from dataclasses import fields

import numpy as np

from logo_cli.artifact_kind import SYNTHETIC_FORMAT
from logo_cli.data.transitions import Dims, Transitions

FORMAT = SYNTHETIC_FORMAT  # the format attribute artifact_kind.py recognises a buffer by
SCHEMA_VERSION = 1  # the buffer format version (also written as "format_version")
EXTRA = ("uncertainty", "step", "branch")
TRANSITION_FIELDS = tuple(f.name for f in fields(Transitions))


def array_schema(dims: Dims) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
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


def compressor():
    from zarr.codecs import BloscCodec

    # bitshuffle groups the sign/exponent bits of floats, which zstd then packs much better.
    return BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")
