"""OMIGA MaMuJoCo hdf5 -> canonical continuous layout."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from logo_cli.data.h5 import open_dataset
from logo_cli.data.omiga import convert_omiga, parse_omiga_name
from logo_cli.errors import LogoError


def _omiga_file(path, lengths_rows=(4, 6, 3), closed=(True, True, False), N=2, Od=3, S=4, Ad=2):
    T = sum(lengths_rows)
    t = np.arange(T, dtype=np.float32)
    d = np.zeros((T, 1), np.float32)
    end = -1
    for n, c in zip(lengths_rows, closed, strict=True):
        end += n
        if c:
            d[end] = 1
    with h5py.File(path, "w") as f:
        f["s"] = np.repeat(t[:, None, None], N * S, 1).reshape(T, N, S)
        f["o"] = np.repeat(t[:, None, None], N * Od, 1).reshape(T, N, Od) + 0.5
        f["a"] = np.repeat(t[:, None, None], N * Ad, 1).reshape(T, N, Ad) / 100
        f["r"] = (t / 10)[:, None]
        f["d"] = d
    return t, d


def test_convert_matches_omiga_transitions(tmp_path):
    src = tmp_path / "HalfCheetah-v2-2x3-medium-replay.hdf5"
    t, d = _omiga_file(src)
    dst = tmp_path / "out.h5"
    summary = convert_omiga(src, dst)
    assert summary == {"episodes": 3, "transitions": 10, "terminated": 1}
    with open_dataset(dst) as ds:
        assert ds.quality == "medium_replay" and ds.map_name == "HalfCheetah-v2-2x3"
        assert ds.episode_limit == 5 and not ds.dims.discrete
        np.testing.assert_array_equal(ds.lengths, [3, 5, 2])
        # only the short closed episode is a real end; the one at the limit is a time-out
        np.testing.assert_array_equal(ds.terminated_mask, [True, False, False])
        tr = ds.transitions()
    # OMIGA's own loader: a transition from every row i with d[i] = 0 and i < T - 1
    rows = np.nonzero((d[:, 0] == 0) & (np.arange(len(t)) < len(t) - 1))[0]
    np.testing.assert_array_equal(tr.state[:, 0], t[rows])
    np.testing.assert_array_equal(tr.next_state[:, 0], t[rows + 1])
    np.testing.assert_allclose(tr.obs[:, 1, 2], t[rows] + 0.5)
    np.testing.assert_allclose(tr.actions[:, 0, 0], t[rows] / 100, rtol=1e-6)
    np.testing.assert_allclose(tr.reward, t[rows] / 10, rtol=1e-6)


def test_convert_refuses_bad_input(tmp_path):
    src = tmp_path / "x.hdf5"
    _omiga_file(src)
    with h5py.File(src, "r+") as f:
        del f["d"]
    with pytest.raises(LogoError, match="missing OMIGA key"):
        convert_omiga(src, tmp_path / "out.h5")
    _omiga_file(src)
    with pytest.raises(LogoError, match="exceeds"):
        convert_omiga(src, tmp_path / "out.h5", episode_limit=3)
    assert not (tmp_path / "out.h5").exists()


def test_parse_omiga_name():
    assert parse_omiga_name("Ant-v2-2x4-expert.hdf5") == ("Ant-v2-2x4", "expert")
    assert parse_omiga_name("Hopper-v2-3x1-medium-expert.hdf5") == ("Hopper-v2-3x1", "medium_expert")
    assert parse_omiga_name("custom.hdf5") == ("custom", None)
