"""n-step TD targets over sequences of transitions: real episodes and synthetic branches alike.

A learner that bootstraps k steps ahead needs, per row t, the discounted reward sum up to the
bootstrap row, γ^k, whether the sequence really ended (terminated) before it, and which row's next
state to bootstrap from. These are computed once per buffer (vectorised over rows) and looked up by
index at sampling time, so an n-step batch costs no more memory than a one-step one.

Sequences: real rows come from `h5.transitions()` in episode order, so row t+1 continues row t
exactly when its state and observations equal row t's next ones and row t did not terminate
(`continuity_segments`); synthetic rows carry a branch id and a step index (`branch_order`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from logo_cli.data.transitions import Transitions


@dataclass(frozen=True)
class NStep:
    """Per-row n-step quantities; row i bootstraps from the next_* fields of row `boot[i]`."""

    reward: np.ndarray  # [T] f32: Σ_{j<k} γ^j r_{t+j}
    discount: np.ndarray  # [T] f32: γ^k
    done: np.ndarray  # [T] bool: the sequence terminated at or before the bootstrap row
    boot: np.ndarray  # [T] int64: row whose next_state / next_obs / next_avail_actions bootstrap


def continuity_segments(t: Transitions) -> np.ndarray:
    """Segment id per row for episode-ordered rows: a new segment starts wherever row i+1 does not
    continue row i (its state/obs differ from row i's next ones, or row i terminated)."""
    n = len(t)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    cont = (
        ~t.terminated[:-1].astype(bool)
        & np.all(t.state[1:] == t.next_state[:-1], axis=1)
        & np.all((t.obs[1:] == t.next_obs[:-1]).reshape(n - 1, -1), axis=1)
    )
    return np.concatenate([[0], np.cumsum(~cont)]).astype(np.int64)


def branch_order(branch: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Row order that puts each branch's steps together, in step order (rows are written interleaved)."""
    return np.lexsort((np.asarray(step), np.asarray(branch)))


def cumulative_by_segment(values: np.ndarray, segment: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Running sum of `values` along each segment, rows visited in `order`; returned in row order."""
    v = np.asarray(values, dtype=np.float64)[order]
    seg = np.asarray(segment)[order]
    total = np.cumsum(v)
    starts = np.ones(len(v), dtype=bool)
    starts[1:] = seg[1:] != seg[:-1]
    # Subtract the running total reached before each segment's first row.
    first = np.maximum.accumulate(np.where(starts, np.arange(len(v)), 0))
    base = (total - v)[first]
    out = np.empty(len(v), dtype=np.float64)
    out[order] = total - base
    return out


def nstep(
    reward: np.ndarray,
    terminated: np.ndarray,
    segment: np.ndarray,
    order: np.ndarray,
    gamma: float,
    n: int,
) -> NStep:
    """n-step quantities for every row. Rows in `order` are successive steps while `segment` stays
    the same; a sum stops early at a terminated row (which then is `done`) or the segment's end (a
    truncation: it bootstraps from that last row's next state)."""
    if n < 1:
        raise ValueError("n-step: n must be at least 1")
    size = len(order)
    r = np.asarray(reward, dtype=np.float64)[order]
    term = np.asarray(terminated, dtype=bool)[order]
    seg = np.asarray(segment)[order]
    pos = np.arange(size)
    acc = np.zeros(size)
    disc = np.ones(size)
    last = pos.copy()
    alive = np.ones(size, dtype=bool)
    for j in range(n):
        nxt = pos + j
        ok = alive & (nxt < size)
        nxt_c = np.minimum(nxt, size - 1)
        ok &= seg[nxt_c] == seg
        acc[ok] += disc[ok] * r[nxt_c[ok]]
        disc[ok] *= gamma
        last[ok] = nxt_c[ok]
        alive = ok & ~term[nxt_c]
    out = NStep(
        reward=np.empty(size, np.float32),
        discount=np.empty(size, np.float32),
        done=np.empty(size, bool),
        boot=np.empty(size, np.int64),
    )
    out.reward[order] = acc
    out.discount[order] = disc
    out.done[order] = term[last]
    out.boot[order] = order[last]
    return out
