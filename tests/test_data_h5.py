"""The canonical h5 layout: writing, reading back, variants and CFCQL compatibility."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from logo_cli.data.h5 import (
    DatasetWriter,
    EpisodeArrays,
    make_episode,
    open_dataset,
    write_dataset,
)
from logo_cli.data.layout import DISCRETE_DTYPES
from logo_cli.data.synthetic import random_episodes
from logo_cli.errors import LogoError

DIMS = dict(n_agents=3, obs_dim=5, state_dim=7, n_actions=4, episode_limit=10)
CFCQL_KEYS = {"state", "obs", "actions", "avail_actions", "probs", "reward", "terminated", "filled"}


def _episodes(n: int = 12, seed: int = 0, **kw) -> EpisodeArrays:
    return random_episodes(n, seed=seed, **{**DIMS, **kw})


def test_round_trip_keys_dtypes_shapes_and_filled(tmp_path):
    ep = _episodes()
    path = tmp_path / "3m_medium.h5"
    write_dataset(path, ep, {"map_name": "3m", "quality": "medium", "seed": 3})
    with h5py.File(path) as f:
        assert set(f.keys()) == CFCQL_KEYS
        for key, dtype in DISCRETE_DTYPES.items():
            assert f[key].dtype == dtype, key
        E, L, N, Od, S, A = 12, 11, 3, 5, 7, 4
        shapes = dict(state=(E, L, S), obs=(E, L, N, Od), actions=(E, L, N, 1), avail_actions=(E, L, N, A))
        shapes.update(probs=(E, L, N, A), reward=(E, L, 1), terminated=(E, L, 1), filled=(E, L, 1))
        for key, shape in shapes.items():
            assert f[key].shape == shape, key
        assert f.attrs["n_agents"] == 3 and f.attrs["episode_limit"] == 10 and f.attrs["seed"] == 3
    with open_dataset(path) as ds:
        np.testing.assert_array_equal(ds.lengths, ep.filled[:, :, 0].sum(axis=1) - 1)
        assert ds.n_transitions == int(ds.lengths.sum())
        assert ds.dims.n_agents == 3 and ds.dims.n_actions == 4 and ds.dims.discrete
        assert ds.episode_limit == 10 and ds.map_name == "3m" and ds.quality == "medium"
        assert ds.attrs["seed"] == 3 and isinstance(ds.attrs["seed"], int)
        back = ds.episode_arrays(np.arange(12))
        for name in CFCQL_KEYS:
            np.testing.assert_array_equal(getattr(back, name), getattr(ep, name), err_msg=name)
        # rows after l are zero; row l is filled and carries reward 0
        for e in range(12):
            ell = ds.lengths[e]
            assert back.filled[e, : ell + 1].all() and not back.filled[e, ell + 1 :].any()
            assert not back.obs[e, ell + 1 :].any() and back.reward[e, ell, 0] == 0
        np.testing.assert_array_equal(ds.terminated_mask, ep.terminated[:, :, 0].any(axis=1))
        np.testing.assert_allclose(ds.returns, ep.reward[:, :, 0].sum(axis=1), rtol=1e-6)
        assert ds.won is None  # no SMAX attrs and no stored flags: cannot be inferred


def test_streamed_adds_equal_one_shot_and_cross_chunk_reads(tmp_path):
    ep = _episodes(n=150, seed=1)
    path = tmp_path / "streamed.h5"
    with DatasetWriter(path, **DIMS, attrs={"source": "test"}) as w:
        for lo in range(0, 150, 7):  # uneven pieces across storage chunks
            w.add(ep.select(slice(lo, lo + 7)))
    with open_dataset(path) as ds:
        assert ds.n_episodes == 150
        pick = np.array([149, 3, 77, 3, 0])  # unsorted, repeated
        back = ds.episode_arrays(pick)
        np.testing.assert_array_equal(back.obs, ep.obs[pick])
        np.testing.assert_array_equal(back.actions, ep.actions[pick])
        whole = ds.transitions(chunk_episodes=16)
        assert len(whole) == ds.n_transitions
        some = ds.transitions(pick, chunk_episodes=2)
        assert len(some) == int(ds.lengths[pick].sum())
        first = ds.lengths[149]
        np.testing.assert_array_equal(some.state[:first], ep.state[149, :first])


def test_writer_leaves_nothing_on_error(tmp_path):
    path = tmp_path / "x.h5"
    with pytest.raises(RuntimeError):
        with DatasetWriter(path, **DIMS, attrs={}) as w:
            w.add(_episodes(3))
            raise RuntimeError("collector crashed")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="shape"):
        with DatasetWriter(path, **DIMS, attrs={}) as w:
            w.add(_episodes(3, obs_dim=6))
    assert list(tmp_path.iterdir()) == []


def _hand_made(tmp_path):
    """Episode 0 ends for real after 2 steps; episode 1 times out after 4 (the limit)."""
    N, Od, S, A, limit = 2, 3, 4, 3, 4
    eps = []
    for e, (n, term) in enumerate([(2, True), (4, False)]):
        rows = np.arange(n + 1, dtype=np.float32) + 10 * e  # row t of episode e holds 10e + t
        eps.append(
            make_episode(
                states=np.repeat(rows[:, None], S, 1),
                obs=np.repeat(rows[:, None, None], N * Od, 1).reshape(n + 1, N, Od),
                actions=np.full((n, N), 1 + e, np.int64),
                rewards=np.arange(1, n + 1, dtype=np.float32),
                terminated=term,
                episode_limit=limit,
                avail_actions=np.ones((n + 1, N, A), np.int32),
            )
        )
    path = tmp_path / "hand.h5"
    write_dataset(path, EpisodeArrays.concat(eps), {})
    return path


def test_transitions_of_a_hand_made_dataset(tmp_path):
    with open_dataset(_hand_made(tmp_path)) as ds:
        np.testing.assert_array_equal(ds.lengths, [2, 4])
        np.testing.assert_array_equal(ds.terminated_mask, [True, False])
        np.testing.assert_allclose(ds.returns, [3.0, 10.0])
        tr = ds.transitions()
        assert len(tr) == 6
        np.testing.assert_array_equal(tr.state[:, 0], [0, 1, 10, 11, 12, 13])
        np.testing.assert_array_equal(tr.next_state[:, 0], [1, 2, 11, 12, 13, 14])  # row t+1
        np.testing.assert_array_equal(tr.next_obs[:, 1, 2], [1, 2, 11, 12, 13, 14])
        np.testing.assert_array_equal(tr.terminated, [False, True, False, False, False, False])
        np.testing.assert_array_equal(tr.actions[:, 0], [1, 1, 2, 2, 2, 2])
        np.testing.assert_array_equal(tr.reward, [1, 2, 1, 2, 3, 4])
        only_second = ds.transitions(np.array([1]))
        np.testing.assert_array_equal(only_second.state[:, 0], [10, 11, 12, 13])
        assert not only_second.terminated.any()  # a time-out's last transition is not terminal
        assert len(ds.transitions(np.array([], dtype=np.int64))) == 0
        assert ds.episode_arrays([]).obs.shape == (0, 5, 2, 3)
        with pytest.raises(IndexError):
            ds.episode_arrays([2])


def test_part_folder_gzip_makes_one_dataset(tmp_path):
    ep = _episodes(n=9, seed=2)
    folder = tmp_path / "3m_expert"
    folder.mkdir()
    for i, (lo, hi) in enumerate([(0, 4), (4, 5), (5, 9)]):
        won = [bool(w) for w in (ep.reward[lo:hi, :, 0] >= 1).any(axis=1)]
        write_dataset(folder / f"part_{i}.h5", ep.select(slice(lo, hi)), {"won": won}, compression="gzip")
    with h5py.File(folder / "part_0.h5") as f:
        assert f["obs"].compression == "gzip"
    with open_dataset(folder) as ds:
        assert ds.n_episodes == 9 and len(ds.parts) == 3
        assert ds.map_name == "3m" and ds.quality == "expert"  # from the folder's name
        np.testing.assert_array_equal(ds.episode_arrays([8, 4, 0]).state, ep.state[[8, 4, 0]])
        assert len(ds.transitions()) == int(ep.lengths.sum())
        np.testing.assert_array_equal(ds.won, (ep.reward[:, :, 0] >= 1).any(axis=1))


def test_part_folder_with_mismatched_dims_is_refused(tmp_path):
    write_dataset(tmp_path / "part_0.h5", _episodes(2), {})
    write_dataset(tmp_path / "part_1.h5", _episodes(2, obs_dim=6), {})
    with pytest.raises(LogoError, match="part_1.h5: dims differ"):
        open_dataset(tmp_path)


def test_extra_keys_and_missing_probs_are_tolerated(tmp_path):
    ep = _episodes(n=4)
    path = tmp_path / "d.h5"
    write_dataset(path, ep, {})
    with h5py.File(path, "r+") as f:
        del f["probs"]
        f["actions_onehot"] = np.eye(4, dtype=np.float32)[ep.actions[..., 0]]
        f["corrected_terminated"] = ep.terminated
    with open_dataset(path) as ds:
        assert ds.episode_arrays([0]).probs is None
        assert not ds.layout.has_probs and "actions_onehot" not in ds.layout.ignored_keys
        assert len(ds.transitions()) == int(ep.lengths.sum())


def test_continuous_actions_layout(tmp_path):
    ep = _episodes(n=5, discrete=False, n_actions=2)
    path = tmp_path / "halfcheetah.h5"
    write_dataset(path, ep, {"env": "mamujoco:HalfCheetah-2x3"})
    with h5py.File(path) as f:
        assert set(f.keys()) == CFCQL_KEYS - {"avail_actions", "probs"}
        assert f["actions"].dtype == np.float32 and f["actions"].shape == (5, 11, 3, 2)
    with open_dataset(path) as ds:
        assert not ds.dims.discrete and ds.dims.n_actions == 2
        tr = ds.transitions()
        assert tr.actions.shape == (len(tr), 3, 2) and tr.avail_actions.shape == (len(tr), 3, 1)
        np.testing.assert_allclose(tr.actions[0], ep.actions[0, 0])


def test_smax_wins_inferred_from_terminal_reward(tmp_path):
    ep = _episodes(n=40, seed=5)
    path = tmp_path / "d.h5"
    write_dataset(path, ep, {"env": "smax:3m", "source": "logo-cli collect"})
    with open_dataset(path) as ds:
        expected = ep.terminated[:, :, 0].any(axis=1) & (ep.reward[:, :, 0].max(axis=1) >= 1)
        assert 0 < expected.sum() < 40
        np.testing.assert_array_equal(ds.won, expected)


def test_a_written_file_loads_the_way_cfcql_loads_it(tmp_path):
    """CFCQL's H5Dataset reads every root key with a sorted index array into an EpisodeBatch."""
    import torch

    path = tmp_path / "5m_vs_6m_medium.h5"
    write_dataset(path, _episodes(n=8), {"map_name": "5m_vs_6m", "quality": "medium"})
    with h5py.File(path, "r") as f:
        keys = list(f.keys())
        assert set(keys) == CFCQL_KEYS  # any extra root key would be handed to EpisodeBatch.update
        idx = np.sort(np.random.default_rng(0).choice(8, 5, replace=False))
        batch = {k: torch.tensor(f[k][idx]) for k in keys}
    expected = dict(state=torch.float32, obs=torch.float32, actions=torch.int64, avail_actions=torch.int32)
    expected.update(probs=torch.float32, reward=torch.float32, terminated=torch.uint8, filled=torch.int64)
    assert {k: v.dtype for k, v in batch.items()} == expected
    assert batch["actions"].shape[-1] == 1 and batch["filled"].shape == (5, 11, 1)
