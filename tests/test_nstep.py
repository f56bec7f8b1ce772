"""n-step targets and branch-accumulated sums on small hand-checked sequences."""

from __future__ import annotations

import numpy as np
import pytest

from logo_cli.data.nstep import branch_order, cumulative_by_segment, nstep


def test_nstep_stops_at_termination_and_at_the_segment_end():
    r = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    term = np.array([0, 0, 1, 0, 0], bool)
    seg = np.array([0, 0, 0, 1, 1])
    out = nstep(r, term, seg, np.arange(5), gamma=0.5, n=3)
    np.testing.assert_allclose(out.reward, [1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3, 4 + 0.5 * 5, 5])
    np.testing.assert_allclose(out.discount, [0.125, 0.25, 0.5, 0.25, 0.5])
    assert out.done.tolist() == [True, True, True, False, False]
    assert out.boot.tolist() == [2, 2, 2, 4, 4]
    one = nstep(r, term, seg, np.arange(5), gamma=0.5, n=1)  # n = 1 is the one-step target
    np.testing.assert_allclose(one.reward, r)
    assert one.boot.tolist() == [0, 1, 2, 3, 4] and one.done.tolist() == term.tolist()
    with pytest.raises(ValueError):
        nstep(r, term, seg, np.arange(5), gamma=0.5, n=0)


def test_interleaved_branches_are_ordered_before_summing():
    branch = np.array([5, 9, 5, 9, 5])
    step = np.array([0, 0, 1, 1, 2])
    u = np.array([1.0, 10.0, 2.0, 20.0, 3.0])
    order = branch_order(branch, step)
    np.testing.assert_allclose(cumulative_by_segment(u, branch, order), [1, 10, 3, 30, 6])
    out = nstep(u, np.zeros(5, bool), branch, order, gamma=1.0, n=2)
    np.testing.assert_allclose(out.reward, [3, 30, 5, 20, 3])
    assert out.boot.tolist() == [2, 3, 4, 3, 4]
