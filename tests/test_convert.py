"""`logo convert`: OG-MARL vaults (written by flashbax itself) and OMIGA files -> canonical h5."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from test_data_omiga import _omiga_file

from logo_cli.cli import app
from logo_cli.data.h5 import open_dataset

N, O, A, S = 2, 3, 5, 4  # noqa: E741 (the layout letters)
# Three episodes back to back: a real end (rows 0-4), a time-out (rows 5-9), one the vault cuts (10-13).
T, TERMINAL_ROW, TRUNCATED_ROW = 14, 4, 9


def one_line(res, *needles):
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and all(n in lines[0] for n in needles), res.output


def _experience(drop: str | None = None):
    t = np.arange(T, dtype=np.float32)
    rng = np.random.default_rng(0)
    actions = rng.integers(0, A, size=(1, T, N)).astype(np.int32)
    legals = (rng.random((1, T, N, A)) < 0.6).astype(np.float32)
    np.put_along_axis(legals, actions[..., None], 1.0, axis=-1)  # the action taken is legal
    terminals = np.zeros((1, T, N), np.float32)
    terminals[0, TERMINAL_ROW] = 1
    terminals[0, 7, 0] = 1  # one agent only: not an episode end (OG-MARL needs all agents)
    truncations = np.zeros((1, T, N), np.float32)
    truncations[0, TRUNCATED_ROW] = 1
    exp = {
        "observations": (t[None, :, None, None] + np.arange(N)[:, None] / 10 + np.zeros(O)).astype(
            np.float32
        ),
        "actions": actions,
        "rewards": np.stack([t / 10, -t], axis=-1)[None].astype(np.float32),  # agent 1's differs
        "terminals": terminals,
        "truncations": truncations,
        "infos": {"legals": legals, "state": np.repeat(t[None, :, None], S, -1) * 2},
    }
    if drop:
        exp.pop(drop)
    return exp


def write_vault(root, uid="Good", drop=None):
    """A vault as OG-MARL makes one: a flashbax trajectory buffer written by flashbax's Vault."""
    flashbax = pytest.importorskip("flashbax")
    from flashbax.vault import Vault

    exp = _experience(drop)
    first = {
        k: ({kk: vv[0, 0] for kk, vv in v.items()} if isinstance(v, dict) else v[0, 0])
        for k, v in exp.items()
    }
    buffer = flashbax.make_trajectory_buffer(
        add_batch_size=1,
        max_length_time_axis=2 * T,
        min_length_time_axis=1,
        sample_batch_size=1,
        sample_sequence_length=1,
        period=1,
    )
    state = buffer.add(buffer.init(first), exp)
    vault = Vault(
        "3m.vlt", experience_structure=state.experience, rel_dir=str(root / "vaults"), vault_uid=uid
    )
    assert vault.write(state) == T
    return root / "vaults" / "3m.vlt" / uid, exp


def test_ogmarl_vault_converts_step_for_step(runner, tmp_path):
    vault, exp = write_vault(tmp_path)
    out = tmp_path / "3m_expert.h5"
    res = runner.invoke(app, ["convert", str(vault), "--from", "ogmarl", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["episodes"] == 3 and summary["transitions"] == 5 + 4 + 3 and summary["terminated"] == 1
    assert (summary["n_agents"], summary["obs_dim"], summary["n_actions"], summary["state_dim"]) == (
        N,
        O,
        A,
        S,
    )
    with open_dataset(out) as ds:
        assert ds.map_name == "3m" and ds.quality == "expert" and ds.attrs["original_quality"] == "Good"
        assert ds.dims.discrete and ds.episode_limit == 5
        np.testing.assert_array_equal(ds.lengths, [5, 4, 3])
        np.testing.assert_array_equal(ds.terminated_mask, [True, False, False])
        tr = ds.transitions()
    # Every step but the time-out's and the cut episode's last rows, in order.
    rows = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12])
    nxt = np.array([1, 2, 3, 4, 4, 6, 7, 8, 9, 11, 12, 13])  # the real end's final row repeats row 4
    np.testing.assert_array_equal(tr.state[:, 0], rows * 2)
    np.testing.assert_array_equal(tr.next_state[:, 0], nxt * 2)
    np.testing.assert_allclose(tr.obs[:, 1, 0], rows + 0.1)
    np.testing.assert_array_equal(tr.actions, exp["actions"][0, rows])
    np.testing.assert_allclose(tr.reward, rows / 10, rtol=1e-6)  # agent 0's reward, as OG-MARL reads it
    np.testing.assert_array_equal(tr.avail_actions, exp["infos"]["legals"][0, rows].astype(bool))
    np.testing.assert_array_equal(tr.next_avail_actions, exp["infos"]["legals"][0, nxt].astype(bool))
    np.testing.assert_array_equal(tr.terminated, rows == TERMINAL_ROW)

    res = runner.invoke(app, ["inspect", str(out), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["episodes"] == 3


def test_ogmarl_refusals(runner, tmp_path):
    out = tmp_path / "x.h5"
    args = ["--from", "ogmarl", "--out", str(out)]
    (tmp_path / "empty").mkdir()
    one_line(runner.invoke(app, ["convert", str(tmp_path / "empty"), *args]), "not a flashbax vault")
    vault, _ = write_vault(tmp_path, uid="Poor", drop="truncations")
    one_line(runner.invoke(app, ["convert", str(vault), *args]), "Poor", "missing OG-MARL key(s) truncations")
    vault, _ = write_vault(tmp_path / "b", uid="Medium")
    one_line(
        runner.invoke(app, ["convert", str(vault), *args, "--episode-limit", "3"]),
        "exceeds --episode-limit 3",
    )
    (vault / "metadata.json").write_text("{not json")
    one_line(runner.invoke(app, ["convert", str(vault), *args]), "metadata.json", "unreadable vault metadata")
    one_line(runner.invoke(app, ["convert", str(vault), "--from", "d4rl", "--out", str(out)]), "--from d4rl")
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".x.h5")]


def test_omiga_converts_through_the_cli(runner, tmp_path):
    src = tmp_path / "HalfCheetah-v2-2x3-medium-replay.hdf5"
    _omiga_file(src)
    out = tmp_path / "hc.h5"
    res = runner.invoke(app, ["convert", str(src), "--from", "omiga", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["quality"] == "medium_replay" and summary["map_name"] == "HalfCheetah-v2-2x3"
    assert (summary["episodes"], summary["transitions"], summary["discrete"]) == (3, 10, False)
    res = runner.invoke(app, ["inspect", str(out), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["transitions"] == 10
    # An existing output is refused, and replaced with --overwrite (here with another quality).
    res = runner.invoke(app, ["convert", str(src), "--from", "omiga", "--out", str(out)])
    assert res.exit_code == 2 and "already exists" in res.output
    res = runner.invoke(app, ["convert", str(src), "--from", "omiga", "--out", str(out), "--overwrite",
                              "--quality", "expert", "--episode-limit", "8"])  # fmt: skip
    assert res.exit_code == 0, res.output
    with open_dataset(out) as ds:
        assert ds.quality == "expert" and ds.episode_limit == 8


def test_omiga_refusals(runner, tmp_path):
    out = tmp_path / "o.h5"
    args = ["--from", "omiga", "--out", str(out)]
    text = tmp_path / "notes.hdf5"
    text.write_text("hello")
    one_line(runner.invoke(app, ["convert", str(text), *args]), "notes.hdf5", "not an HDF5 file")
    src = tmp_path / "x-expert.hdf5"
    _omiga_file(src)
    one_line(runner.invoke(app, ["convert", str(src), *args, "--episode-limit", "0"]), "--episode-limit 0")
    res = runner.invoke(app, ["convert", str(src), *args, "--env", "hopper"])
    one_line(res, "--env 'hopper'", "valid forms")
    one_line(runner.invoke(app, ["convert", str(src), "--from", "omiga", "--out", str(src)]), "same path")
    with h5py.File(src, "r+") as f:
        del f["r"]
        f["r"] = np.array([b"a"] * 13)
    one_line(runner.invoke(app, ["convert", str(src), *args]), "not numeric", "r (|S1)")
    src2 = tmp_path / "y-expert.hdf5"
    _omiga_file(src2)
    with h5py.File(src2, "r+") as f:
        o = f["o"][:]
        o[2, 0, 0] = np.nan
        f["o"][...] = o
    one_line(runner.invoke(app, ["convert", str(src2), *args]), "y-expert.hdf5", "fails validation")
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".o.h5")]


def _vault_from_dataset(root, episodes):
    """The shipped SMAX sample recorded the way OG-MARL records: one row per step (o_t, a_t, r_t for
    every agent, the episode's end flagged on its last step), episodes back to back."""
    flashbax = pytest.importorskip("flashbax")
    from flashbax.vault import Vault

    rows = {
        k: [] for k in ("observations", "actions", "rewards", "terminals", "truncations", "legals", "state")
    }
    for i in range(episodes.n_episodes):
        ell = int(episodes.lengths[i])
        n = episodes.obs.shape[2]
        ended = bool(episodes.terminated[i, ell - 1, 0])
        flag = np.zeros((ell, n), np.float32)
        flag[-1] = 1
        rows["observations"].append(episodes.obs[i, :ell])
        rows["actions"].append(episodes.actions[i, :ell, :, 0].astype(np.int32))
        rows["rewards"].append(np.repeat(episodes.reward[i, :ell], n, axis=1))
        rows["terminals"].append(flag if ended else 0 * flag)
        rows["truncations"].append(0 * flag if ended else flag)
        rows["legals"].append(episodes.avail_actions[i, :ell].astype(np.float32))
        rows["state"].append(episodes.state[i, :ell])
    exp = {k: np.concatenate(v)[None] for k, v in rows.items()}
    exp["infos"] = {"legals": exp.pop("legals"), "state": exp.pop("state")}
    first = {
        k: ({kk: vv[0, 0] for kk, vv in v.items()} if isinstance(v, dict) else v[0, 0])
        for k, v in exp.items()
    }
    steps = exp["actions"].shape[1]
    buffer = flashbax.make_trajectory_buffer(
        add_batch_size=1,
        max_length_time_axis=steps + 1,
        min_length_time_axis=1,
        sample_batch_size=1,
        sample_sequence_length=1,
        period=1,
    )
    state = buffer.add(buffer.init(first), exp)
    vault = Vault("3m.vlt", experience_structure=state.experience, rel_dir=str(root), vault_uid="Replay")
    assert vault.write(state) == steps
    return root / "3m.vlt" / "Replay"


def test_ogmarl_round_trip_of_the_smax_sample(runner, tmp_path):
    from pathlib import Path

    sample = Path(__file__).resolve().parents[1] / "datasets" / "smax_3m_medium.h5"
    with open_dataset(sample) as ds:
        picked = np.arange(12)
        original = ds.episode_arrays(picked)
        real = ds.transitions(picked)
        lengths, ended = ds.lengths[picked], ds.terminated_mask[picked]
    original.terminated[3] = 0  # one time-out, so both kinds of episode end are exercised
    ended = ended.copy()
    ended[3] = False
    vault = _vault_from_dataset(tmp_path, original)
    out = tmp_path / "back.h5"
    res = runner.invoke(
        app, ["convert", str(vault), "--from", "ogmarl", "--out", str(out), "--env", "smax:3m"]
    )
    assert res.exit_code == 0, res.output
    with open_dataset(out) as back:
        assert back.quality == "medium_replay" and back.attrs["env"] == "smax:3m"
        # a time-out loses its last step (no successor stored), a real end keeps every step
        np.testing.assert_array_equal(back.lengths, lengths - ~ended)
        np.testing.assert_array_equal(back.terminated_mask, ended)
        tr = back.transitions()
    # Row by row the same transitions, except the successor of a real end's last step.
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    keep = np.ones(len(real), bool)
    keep[starts[3] + lengths[3] - 1] = False  # the time-out's dropped step
    kept = real.select(keep)
    last_of_real_end = np.concatenate(
        [[s + n - 1 for s, n, e in zip(starts, lengths, ended, strict=True) if e]]
    )
    for name in ("state", "obs", "actions", "avail_actions", "reward"):
        np.testing.assert_array_equal(getattr(tr, name), getattr(kept, name), err_msg=name)
    succ = np.ones(len(real), bool)
    succ[last_of_real_end] = False
    np.testing.assert_array_equal(tr.next_obs[succ[keep]], kept.next_obs[succ[keep]])
    np.testing.assert_array_equal(tr.terminated, np.isin(np.nonzero(keep)[0], last_of_real_end))


def test_a_failed_write_leaves_nothing(runner, tmp_path, monkeypatch):
    import errno

    from logo_cli.data.h5_write import DatasetWriter

    def full_disk(self, episodes):
        raise OSError(errno.ENOSPC, "No space left on device")

    src = tmp_path / "src" / "Hopper-v2-3x1-expert.hdf5"
    src.parent.mkdir()
    _omiga_file(src)
    monkeypatch.setattr(DatasetWriter, "add", full_disk)
    res = runner.invoke(
        app, ["convert", str(src), "--from", "omiga", "--out", str(tmp_path / "out" / "h.h5")]
    )
    one_line(res, "No space left on device", "nothing was written")
    assert [p.name for p in (tmp_path / "out").iterdir() if not p.name.endswith(".lock")] == []
