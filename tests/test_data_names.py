"""Dataset file names and the episode-wise train/holdout split."""

from __future__ import annotations

import numpy as np
import pytest

from logo_cli.data.h5 import parse_dataset_name, split_episodes


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("5m_vs_6m_medium_replay.h5", ("5m_vs_6m", "medium_replay")),
        ("5m_vs_6m_medium.h5", ("5m_vs_6m", "medium")),
        ("6h_vs_8z_expert.h5", ("6h_vs_8z", "expert")),
        ("2s3z_mixed.h5", ("2s3z", "mixed")),
        ("smac_3s_vs_5z_medium.h5", ("3s_vs_5z", "medium")),
        ("smax_3m_medium_replay.h5", ("3m", "medium_replay")),
        ("/data/sets/10m_vs_11m_expert.hdf5", ("10m_vs_11m", "expert")),
        ("3m_expert", ("3m", "expert")),  # a part_*.h5 folder's name
        ("3m_random.h5", (None, None)),
        ("medium.h5", (None, None)),
        ("smac_medium.h5", (None, None)),
    ],
)
def test_parse_dataset_name(name, expected):
    assert parse_dataset_name(name) == expected


def test_split_is_episode_wise_deterministic_and_complete():
    train, hold = split_episodes(100, 0.2, seed=7)
    assert len(hold) == 20 and len(train) == 80
    assert np.array_equal(np.sort(np.concatenate([train, hold])), np.arange(100))
    again = split_episodes(100, 0.2, seed=7)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], hold)
    assert not np.array_equal(split_episodes(100, 0.2, seed=8)[1], hold)
    assert np.all(np.diff(train) > 0)


def test_split_edge_cases():
    train, hold = split_episodes(3, 0.01, seed=0)
    assert len(hold) == 1 and len(train) == 2  # a non-zero fraction holds out at least one episode
    train, hold = split_episodes(5, 0.0, seed=0)
    assert len(hold) == 0 and len(train) == 5
    with pytest.raises(ValueError):
        split_episodes(5, 1.0, seed=0)
