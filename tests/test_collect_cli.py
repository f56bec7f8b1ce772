"""`logo collect` end to end on SMAX 3m with the shipped behaviour ladder, and its refusals."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

pytest.importorskip("jaxmarl")

from logo_cli.cli import app  # noqa: E402
from logo_cli.data.h5 import open_dataset  # noqa: E402
from logo_cli.envs.smax import STOP_ACTION  # noqa: E402
from logo_cli.stages.behaviour import load_ladder, shipped_behaviour_dir  # noqa: E402

SHIPPED = shipped_behaviour_dir("smax:3m")


def _collect(runner, out: Path, *extra: str) -> dict:
    args = ["collect", "--env", "smax:3m", "--out", str(out), "--num-envs", "8", "--json", *extra]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_shipped_ladder_is_present_and_valid():
    assert SHIPPED is not None, "datasets/behaviour/smax_3m/ladder.json is missing"
    ladder = load_ladder(SHIPPED, "smax:3m")
    names = [s["name"] for s in ladder.data["snapshots"]]
    assert names.index(ladder.medium) < names.index(ladder.expert)
    assert ladder.replay_names()[0] == names[0] and ladder.replay_names()[-1] == ladder.medium


def test_expert_collection_matches_the_file_and_inspect(runner, tmp_path):
    out = tmp_path / "smax_3m_expert.h5"
    res = _collect(runner, out, "--quality", "expert", "--episodes", "32", "--seed", "3",
                   "--behaviour", str(SHIPPED))  # fmt: skip
    assert res["episodes"] == 32 and res["quality"] == "expert"
    assert res["win_rate"] > 0.5  # the shipped expert wins most games; random wins none

    with open_dataset(out) as ds:
        assert ds.n_episodes == 32 and ds.dims.n_agents == 3 and ds.episode_limit == 100
        np.testing.assert_allclose(ds.returns.mean(), res["return_mean"], rtol=1e-5)
        np.testing.assert_allclose(ds.returns.std(), res["return_sd"], rtol=1e-4)
        assert int(ds.won.sum()) == res["n_wins"]
        # the stored per-episode win flags agree with the rule "a real end with reward >= 1"
        np.testing.assert_array_equal(ds.won, ds.terminated_mask & (ds.returns >= 1.0))
        attrs = ds.attrs
    for key, value in {"env": "smax:3m", "map_name": "3m", "quality": "expert", "n_agents": 3,
                       "n_actions": 8, "episode_limit": 100, "noop_action": STOP_ACTION,
                       "source": "logo-cli collect", "seed": 3, "n_wins": res["n_wins"]}.items():  # fmt: skip
        assert attrs[key] == value, key
    assert attrs["generator"].startswith("logo-cli ") and attrs["format_version"] == 1
    assert attrs["behaviour_hash"].startswith("sha256:")

    insp = runner.invoke(app, ["inspect", str(out), "--json"])
    assert insp.exit_code == 0, insp.output
    info = json.loads(insp.stdout)
    assert info["episodes"] == 32
    np.testing.assert_allclose(info["win_rate"], res["win_rate"])
    np.testing.assert_allclose(info["return"]["mean"], res["return_mean"], rtol=1e-5)


def test_rows_follow_the_canonical_time_semantics(runner, tmp_path):
    out = tmp_path / "smax_3m_mixed.h5"
    _collect(runner, out, "--quality", "mixed", "--episodes", "12", "--behaviour", str(SHIPPED))
    with h5py.File(out) as f:
        filled = f["filled"][:, :, 0]
        actions, avail = f["actions"][:, :, :, 0], f["avail_actions"][:]
        obs, reward, term = f["obs"][:], f["reward"][:, :, 0], f["terminated"][:, :, 0]
        behaviour = json.loads(f.attrs["behaviour"])
        won = np.asarray(f.attrs["won"], dtype=bool)
    assert [b["episodes"] for b in behaviour] == [6, 6]  # half medium, half expert
    e = np.arange(len(filled))
    length = filled.sum(1) - 1
    assert (length >= 1).all() and (length <= 100).all()
    np.testing.assert_array_equal(actions[e, length], STOP_ACTION)  # the dummy action of row l
    assert avail[e, length, :, STOP_ACTION].all()
    # the final observation is stored (a won episode has a live ally, whose obs is not all zero;
    # dead agents observe zeros in SMAX, so a lost episode's final row may be zero)
    assert won.any() and (np.abs(obs[e, length]).sum((1, 2)) > 0)[won].all()
    assert (reward[e, length] == 0).all()
    for i, n in enumerate(length):
        assert not obs[i, n + 1 :].any() and not avail[i, n + 1 :].any()
        assert not term[i, : n - 1].any() and not term[i, n:].any()
        assert term[i, n - 1] == (n < 100)  # 3m episodes end for real before the limit
        taken = np.take_along_axis(avail[i, :n], actions[i, :n, :, None], -1)
        assert taken.all()  # every executed action was available when taken


def test_same_seed_same_file_other_seed_differs(runner, tmp_path):
    a, b, c = (tmp_path / f"{n}.h5" for n in "abc")
    for path, seed in ((a, "5"), (b, "5"), (c, "6")):
        _collect(runner, path, "--quality", "medium_replay", "--episodes", "10", "--seed", seed,
                 "--behaviour", str(SHIPPED))  # fmt: skip
    with h5py.File(a) as fa, h5py.File(b) as fb, h5py.File(c) as fc:
        for key in ("obs", "actions", "reward", "filled"):
            np.testing.assert_array_equal(fa[key][:], fb[key][:])
        assert not np.array_equal(fa["state"][:, 0], fc["state"][:, 0])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--quality", "great"], "--quality great: expected one of"),
        (["--quality", "expert", "--episodes", "0"], "--episodes 0: must be at least 1"),
        (["--quality", "expert", "--out", "x.csv"], "expected a .h5 file name"),
        (["--quality", "expert", "--behaviour", "nowhere"], "--behaviour nowhere: no ladder.json"),
        (["--quality", "expert", "--env", "smax:9zz"], "unknown SMAX scenario"),
        (["--quality", "expert", "--env", "atari:pong"], "not a known environment name"),
    ],
)
def test_bad_options_are_one_line_errors(runner, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["collect", "--out", "d.h5", "--num-envs", "8", *args])
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], res.output
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_existing_output_needs_overwrite(runner, tmp_path):
    out = tmp_path / "r.h5"
    out.write_bytes(b"keep me")
    res = runner.invoke(app, ["collect", "--quality", "random", "--out", str(out), "--episodes", "4"])
    assert res.exit_code == 2 and "already exists" in res.output
    assert out.read_bytes() == b"keep me"
    # --overwrite replaces only an .h5 dataset, never another file
    res = runner.invoke(
        app, ["collect", "--quality", "random", "--out", str(out), "--episodes", "4", "--overwrite"]
    )
    assert res.exit_code == 2 and "not an .h5 dataset" in res.output
    assert out.read_bytes() == b"keep me"
    out.unlink()
    _collect(runner, out, "--quality", "random", "--episodes", "4")
    res = _collect(runner, out, "--quality", "random", "--episodes", "8", "--overwrite")
    assert res["win_rate"] == 0.0 and res["episodes"] == 8
    # the same command again: up to date, the file untouched; other settings: refused, naming them
    before = out.stat().st_mtime_ns
    args = ["collect", "--env", "smax:3m", "--out", str(out), "--num-envs", "8", "--quality", "random"]
    res = runner.invoke(app, [*args, "--episodes", "8"])
    assert res.exit_code == 0 and res.stdout == "", res.output
    assert res.stderr == f"up to date: {out} (same options and inputs; --overwrite runs it again)\n"
    res = runner.invoke(app, [*args, "--episodes", "4"])
    assert res.exit_code == 2 and res.stderr.startswith("error: ") and len(res.stderr.splitlines()) == 1
    assert "a finished dataset with other settings (--episodes: 8 -> 4)" in res.stderr, res.stderr
    assert out.stat().st_mtime_ns == before
