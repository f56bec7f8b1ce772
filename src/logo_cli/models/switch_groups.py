"""Switching features: blocks of observation features that are zero together (another unit out of
view or dead), found from data. A learned model predicts them as switches (models/logo_heads.py);
corruption flips them (models/corruption.py)."""

from __future__ import annotations

import numpy as np


def switch_groups(obs: np.ndarray, max_rows: int = 20_000) -> list[np.ndarray]:
    """Groups of observation features that switch on and off together, found from data [..., O].

    A group's core is a set of at least two features with the same zero pattern over the rows (a
    unit's health, relative position and type bit: all zero exactly when it is out of view or dead),
    zero in at least 1% and at most 99% of rows. Every other feature that is zero whenever a core is
    (last move, last target, cooldown: zero at times while present too) joins the nearest such core;
    features that join none (never zero, or switching alone) belong to no group. All-zero rows (dead
    agents) are left out.
    """
    flat = np.asarray(obs).reshape(-1, obs.shape[-1])
    flat = flat[(flat != 0).any(-1)]  # a dead agent's all-zero observation says nothing of groups
    if len(flat) > max_rows:
        flat = flat[np.linspace(0, len(flat) - 1, max_rows).astype(np.int64)]
    if len(flat) == 0:
        return []
    zero = flat == 0
    rate = zero.mean(0)
    patterns: dict[bytes, list[int]] = {}
    for j in np.flatnonzero(rate < 1.0):
        patterns.setdefault(np.packbits(zero[:, j]).tobytes(), []).append(int(j))
    # Rarest zeros first: a core is the set that is zero least often, and a pattern that is zero
    # whenever a core is (a unit's last move: zero while it is absent, and when it stood still) joins
    # the nearest such core instead of making a group of its own.
    cores: list[list[int]] = []
    groups: list[list[int]] = []
    for members in sorted(patterns.values(), key=lambda m: rate[m[0]]):
        hosts = [i for i, c in enumerate(cores) if not (zero[:, c[0]] & ~zero[:, members[0]]).any()]
        if hosts:
            best = min(hosts, key=lambda i: min(abs(j - k) for j in members for k in cores[i]))
            groups[best].extend(members)
        elif len(members) >= 2 and 0.01 <= rate[members[0]] <= 0.99:
            cores.append(members)
            groups.append(list(members))
    return [np.array(sorted(g)) for g in sorted(groups, key=min)]


def group_means(obs: np.ndarray, groups: list[np.ndarray]) -> list[np.ndarray]:
    """Each group's mean feature values over the rows where it is present (its core non-zero)."""
    flat = np.asarray(obs).reshape(-1, obs.shape[-1])
    out = []
    for g in groups:
        present = flat[:, g].any(-1)
        out.append(flat[present][:, g].mean(0) if present.any() else np.zeros(len(g)))
    return out
