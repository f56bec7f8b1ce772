"""The zarr synthetic buffer: round trip, chunked appends, interrupted runs, refusing bad buffers."""

from __future__ import annotations

import json
from dataclasses import fields

import numpy as np
import pytest

from logo_cli.data.transitions import Dims, Transitions
from logo_cli.data.zarr_store import SyntheticWriter, is_synthetic_buffer, open_synthetic
from logo_cli.errors import LogoError

DIMS = Dims(n_agents=3, obs_dim=5, state_dim=7, n_actions=4)


def make_rows(t: int, seed: int, dims: Dims = DIMS) -> tuple[Transitions, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n, o, s, a = dims.n_agents, dims.obs_dim, dims.state_dim, dims.n_actions
    tr = Transitions(
        state=rng.normal(size=(t, s)).astype(np.float32),
        obs=rng.normal(size=(t, n, o)).astype(np.float32),
        actions=rng.integers(0, a, size=(t, n)).astype(np.int64),
        avail_actions=rng.random((t, n, a)) < 0.7,
        reward=rng.normal(size=t).astype(np.float32),
        terminated=rng.random(t) < 0.1,
        next_state=rng.normal(size=(t, s)).astype(np.float32),
        next_obs=rng.normal(size=(t, n, o)).astype(np.float32),
        next_avail_actions=rng.random((t, n, a)) < 0.7,
    )
    if dims.discrete:  # the taken action is available (the reader checks it)
        np.put_along_axis(tr.avail_actions, tr.actions[..., None], True, axis=-1)
    unc = rng.random(t).astype(np.float32)
    step = rng.integers(0, 15, size=t).astype(np.int16)
    branch = np.arange(t, dtype=np.int64) + 1000 * seed
    return tr, unc, step, branch


def assert_rows_equal(a: Transitions, b: Transitions) -> None:
    for f in fields(Transitions):
        x, y = getattr(a, f.name), getattr(b, f.name)
        assert x.dtype == y.dtype, f.name
        np.testing.assert_array_equal(x, y, err_msg=f.name)


def test_round_trip_keeps_values_dtypes_and_attrs(tmp_path):
    path = tmp_path / "buf.zarr"
    parts = [make_rows(t, seed) for seed, t in enumerate([5, 17, 3, 40])]
    attrs = {"model_kind": "logo", "horizon": 15, "seed": 3, "data_hash": "sha256:abc"}
    with SyntheticWriter(path, attrs, DIMS, chunk_rows=8) as w:
        for tr, unc, step, br in parts:
            w.append(tr, unc, step, br)
    assert is_synthetic_buffer(path)
    buf = open_synthetic(path)
    assert buf.complete and buf.n == 65 and buf.dims == DIMS
    assert buf.attrs["model_kind"] == "logo" and buf.attrs["horizon"] == 15
    assert buf.attrs["data_hash"] == "sha256:abc" and buf.attrs["n_rows"] == 65
    expected = Transitions.concat([p[0] for p in parts])
    assert_rows_equal(buf.transitions(), expected)
    np.testing.assert_array_equal(buf.uncertainty, np.concatenate([p[1] for p in parts]))
    assert buf.uncertainty.dtype == np.float32 and buf.step.dtype == np.int16
    assert buf.branch.dtype == np.int64
    np.testing.assert_array_equal(buf.step, np.concatenate([p[2] for p in parts]))
    np.testing.assert_array_equal(buf.branch, np.concatenate([p[3] for p in parts]))
    # random access by index array and by slice
    idx = np.array([64, 0, 9, 9, 33])
    assert_rows_equal(buf.transitions(idx), expected.select(idx))
    assert_rows_equal(buf.transitions(slice(10, 30, 3)), expected.select(slice(10, 30, 3)))


def test_appends_land_in_whole_chunks_and_memory_holds_less_than_one_chunk(tmp_path):
    path = tmp_path / "buf.zarr"
    with SyntheticWriter(path, {}, DIMS, chunk_rows=10) as w:
        w.append(*make_rows(7, 0))
        assert w.n == 0  # nothing written before a chunk fills
        w.append(*make_rows(25, 1))
        w.drain()  # the background write of the three full chunks
        assert w.n == 30 and w._pending_rows == 2
        # a second reader sees the consistent prefix while the run is going on
        live = open_synthetic(path, allow_incomplete=True)
        assert live.n == 30 and not live.complete
    buf = open_synthetic(path)
    assert buf.n == 32
    chunk_dirs = sorted((path / "state" / "c").iterdir())
    assert len(chunk_dirs) == 4  # rows 0-9, 10-19, 20-29, 30-31


def test_continuous_actions_round_trip(tmp_path):
    dims = Dims(n_agents=2, obs_dim=3, state_dim=4, n_actions=3, discrete=False)
    rng = np.random.default_rng(0)
    tr, unc, step, br = make_rows(6, 0, Dims(2, 3, 4, 1))
    tr = Transitions(**{**tr.__dict__, "actions": rng.normal(size=(6, 2, 3)).astype(np.float32)})
    with SyntheticWriter(tmp_path / "c.zarr", {}, dims) as w:
        w.append(tr, unc, step, br)
    buf = open_synthetic(tmp_path / "c.zarr")
    assert buf.dims == dims
    np.testing.assert_array_equal(buf.transitions().actions, tr.actions)


def test_interrupted_run_leaves_a_prefix_marked_incomplete(tmp_path):
    path = tmp_path / "buf.zarr"
    a, b = make_rows(12, 0), make_rows(5, 1)
    with pytest.raises(KeyboardInterrupt):
        with SyntheticWriter(path, {"seed": 1}, DIMS, chunk_rows=8) as w:
            w.append(*a)
            w.append(*b)
            raise KeyboardInterrupt
    with pytest.raises(LogoError, match="incomplete buffer.*17 rows"):
        open_synthetic(path)
    buf = open_synthetic(path, allow_incomplete=True)
    assert not buf.complete and buf.n == 17
    assert "KeyboardInterrupt" in buf.attrs["interrupted"]
    assert_rows_equal(buf.transitions(), Transitions.concat([a[0], b[0]]))


def test_crash_between_arrays_is_hidden_by_the_row_count(tmp_path):
    """Arrays longer than n_rows (a kill mid-append) read as the consistent prefix."""
    import zarr

    path = tmp_path / "buf.zarr"
    with pytest.raises(RuntimeError):
        with SyntheticWriter(path, {}, DIMS, chunk_rows=4) as w:
            w.append(*make_rows(4, 0))
            raise RuntimeError("boom")
    g = zarr.open_group(path, mode="r+")
    g["state"].append(np.zeros((4, DIMS.state_dim), np.float32), axis=0)  # half-appended chunk
    buf = open_synthetic(path, allow_incomplete=True)
    assert buf.n == 4 and len(buf.transitions()) == 4


def test_bad_rows_are_refused_before_anything_is_written(tmp_path):
    tr, unc, step, br = make_rows(4, 0)
    with SyntheticWriter(tmp_path / "b.zarr", {}, DIMS) as w:
        with pytest.raises(ValueError, match="uncertainty"):
            w.append(tr, unc[:3], step, br)
        with pytest.raises(ValueError, match="obs"):
            w.append(Transitions(**{**tr.__dict__, "obs": tr.obs[:, :2]}), unc, step, br)
    assert open_synthetic(tmp_path / "b.zarr").n == 0


def test_existing_path_is_refused_unless_overwrite(tmp_path):
    path = tmp_path / "buf.zarr"
    with SyntheticWriter(path, {}, DIMS) as w:
        w.append(*make_rows(3, 0))
    with pytest.raises(LogoError, match="already exists"):
        with SyntheticWriter(path, {}, DIMS):
            pass
    with SyntheticWriter(path, {}, DIMS, overwrite=True) as w:
        w.append(*make_rows(2, 1))
    assert open_synthetic(path).n == 2


def _rewrite_attrs(path, **changes):
    meta = path / "zarr.json"
    doc = json.loads(meta.read_text())
    doc["attributes"].update(changes)
    meta.write_text(json.dumps(doc))


@pytest.mark.parametrize(
    "damage, message",
    [
        ("missing", "not found"),
        ("not_zarr", "not a readable zarr group"),
        ("format", "not a logo synthetic buffer"),
        ("schema", "format version 99, but logo-cli .* reads version 1"),
        ("rows", "garbled buffer"),
        ("array", "array 'reward' missing"),
        ("dims", "garbled buffer"),
    ],
)
def test_reader_refuses_garbled_buffers_in_one_line(tmp_path, damage, message):
    import shutil

    path = tmp_path / "buf.zarr"
    with SyntheticWriter(path, {}, DIMS, chunk_rows=4) as w:
        w.append(*make_rows(6, 0))
    if damage == "missing":
        path = tmp_path / "nothing.zarr"
    elif damage == "not_zarr":
        path = tmp_path / "plain"
        path.mkdir()
        (path / "zarr.json").write_text("{not json")
    elif damage == "format":
        _rewrite_attrs(path, format="something-else")
    elif damage == "schema":
        _rewrite_attrs(path, format_version=99, schema_version=99)
    elif damage == "rows":
        _rewrite_attrs(path, n_rows=60)  # complete, but the arrays hold only 6 rows
    elif damage == "array":
        shutil.rmtree(path / "reward")
    elif damage == "dims":
        _rewrite_attrs(path, dims={**DIMS.to_dict(), "obs_dim": 9})
    with pytest.raises(LogoError, match=message) as e:
        open_synthetic(path)
    assert "\n" not in str(e.value)


def test_a_failed_background_write_surfaces_and_leaves_the_prefix(tmp_path):
    path = tmp_path / "buf.zarr"
    with pytest.raises(OSError, match="disk full"):
        with SyntheticWriter(path, {}, DIMS, chunk_rows=4) as w:
            w.append(*make_rows(4, 0))
            w.drain()
            real = w._write

            def failing(block):
                real({k: v[:0] for k, v in block.items()})  # nothing lands
                raise OSError("disk full")

            w._write = failing
            w.append(*make_rows(4, 1))  # queued; the error shows at the next drain
            w.append(*make_rows(4, 2))
    buf = open_synthetic(path, allow_incomplete=True)
    assert not buf.complete and buf.n == 4
    assert "disk full" in buf.attrs["interrupted"]
