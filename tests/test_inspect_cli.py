"""`logo inspect` through the real CLI: the numbers it reports and its one-line errors on bad files."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from logo_cli.cli import app
from logo_cli.data.h5 import EpisodeArrays, make_episode, write_dataset
from logo_cli.data.synthetic import random_episodes

LIMIT = 5


def _constructed(path):
    """Four SMAX-style episodes with known returns: win (l=2), loss (l=3), time-out, time-out."""
    N, Od, S, A = 2, 3, 4, 3
    specs = [  # (rewards, terminated)
        ([0.5, 1.25], True),  # a win: +1 on the last step
        ([0.25, 0.25, 0.5], True),  # a loss
        ([0.1] * LIMIT, False),
        ([0.0] * LIMIT, False),
    ]
    eps = []
    for rewards, term in specs:
        n = len(rewards)
        eps.append(
            make_episode(
                states=np.ones((n + 1, S), np.float32),
                obs=np.ones((n + 1, N, Od), np.float32),
                actions=np.zeros((n, N), np.int64),
                rewards=np.asarray(rewards, np.float32),
                terminated=term,
                episode_limit=LIMIT,
                avail_actions=np.ones((n + 1, N, A), np.int32),
            )
        )
    write_dataset(path, EpisodeArrays.concat(eps), {"env": "smax:3m", "source": "logo-cli collect"})


def test_inspect_json_numbers(runner, tmp_path):
    path = tmp_path / "smax_3m_medium.h5"
    _constructed(path)
    result = runner.invoke(app, ["inspect", str(path), "--json"])
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)  # stdout holds only the JSON
    returns = np.array([1.75, 1.0, 0.5, 0.0])
    assert d["kind"] == "dataset" and d["episodes"] == 4 and d["transitions"] == 2 + 3 + 5 + 5
    assert (d["n_agents"], d["obs_dim"], d["state_dim"], d["n_actions"]) == (2, 3, 4, 3)
    assert d["episode_limit"] == LIMIT and d["discrete"] is True
    assert d["episode_length"] == {"mean": 3.75, "min": 2, "max": 5}
    assert d["return"]["mean"] == pytest.approx(returns.mean())
    assert d["return"]["std"] == pytest.approx(returns.std())
    assert (d["return"]["min"], d["return"]["max"]) == (pytest.approx(0.0), pytest.approx(1.75))
    assert d["win_rate"] == pytest.approx(0.25)
    assert d["terminations"] == {"terminated": 2, "timeouts": 2, "cut_short": 0}
    assert (d["map_name"], d["quality"]) == ("3m", "medium")
    assert d["attrs"]["env"] == "smax:3m" and d["attrs"]["episode_limit"] == LIMIT


def test_inspect_table_and_no_win_rate_without_smax(runner, tmp_path):
    path = tmp_path / "5m_vs_6m_expert.h5"
    write_dataset(
        path, random_episodes(6, n_agents=5, obs_dim=4, state_dim=6, n_actions=7, episode_limit=9), {}
    )
    result = runner.invoke(app, ["inspect", str(path)])
    assert result.exit_code == 0, result.output
    for text in ("5m_vs_6m / expert", "episodes", "transitions", "discrete, 7 per agent", "win rate", "n/a"):
        assert text in result.stdout, text
    d = json.loads(runner.invoke(app, ["inspect", str(path), "--json"]).stdout)
    assert d["win_rate"] is None


def test_inspect_part_folder(runner, tmp_path):
    dims = dict(n_agents=2, obs_dim=3, state_dim=4, n_actions=3, episode_limit=6)
    for i in range(2):
        write_dataset(tmp_path / f"part_{i}.h5", random_episodes(3, seed=i, **dims), {}, compression="gzip")
    d = json.loads(runner.invoke(app, ["inspect", str(tmp_path), "--json"]).stdout)
    assert d["episodes"] == 6 and len(d["files"]) == 2


# ---- bad inputs: exit code 2, one line naming the file and the problem, nothing on stdout ----


def _valid(path, n=3):
    ep = random_episodes(n, n_agents=2, obs_dim=3, state_dim=4, n_actions=3, episode_limit=6, seed=1)
    write_dataset(path, ep, {}, compression=None)


def _replace(f, key, value):
    del f[key]
    f[key] = value


def _edit(kind):
    def edit(f):
        if kind == "missing key":
            del f["filled"]
        elif kind == "agents disagree":
            _replace(f, "obs", f["obs"][:, :, :1])
        elif kind == "episodes disagree":
            _replace(f, "reward", f["reward"][:2])
        elif kind == "nan":
            obs = f["obs"][:]
            obs[1, 0, 0, 0] = np.nan
            f["obs"][:] = obs
        elif kind == "inf":
            f["reward"][0, 0, 0] = np.inf
        elif kind == "empty":
            for key in list(f.keys()):
                _replace(f, key, f[key][:0])
        elif kind == "filled gap":
            f["filled"][1, 1, 0] = 0
        elif kind == "filled one row":
            f["filled"][2, 1:, 0] = 0
        elif kind == "filled value":
            f["filled"][0, 0, 0] = 2
        elif kind == "obs dtype":
            _replace(f, "obs", f["obs"][:].astype(np.int32))
        elif kind == "action range":
            f["actions"][0, 0, 1, 0] = 3
        elif kind == "action unavailable":
            a = int(f["actions"][0, 0, 0, 0])
            f["avail_actions"][0, 0, 0, a] = 0
        elif kind == "terminated early":
            f["terminated"][0, 0, 0] = 1
        elif kind == "attr disagrees":
            f.attrs["n_agents"] = 5

    return edit


BAD = [
    ("missing key", "missing key 'filled'"),
    ("agents disagree", "'actions' has 2 agents but 'obs' has 1"),
    ("episodes disagree", "'reward' has shape (2, 7, 1) but 'state' has 3 episodes"),
    ("nan", "'obs' has NaN or inf values (episode 1)"),
    ("inf", "'reward' has NaN or inf values (episode 0)"),
    ("empty", "empty dataset (0 episodes)"),
    ("filled gap", "'filled' of episode 1 is not a prefix"),
    ("filled one row", "episode 2 has 1 filled rows"),
    ("filled value", "'filled' of episode 0 holds values other than 0 and 1"),
    ("obs dtype", "'obs' has dtype int32, expected a float type"),
    ("action range", "action 3 of agent 1 at step 0 of episode 0 is out of range [0, 3)"),
    ("action unavailable", "of agent 0 at step 0 of episode 0 is unavailable"),
    ("terminated early", "'terminated' of episode 0 is set on a row other than its last step"),
    ("attr disagrees", "attribute n_agents=5 disagrees with the arrays (2)"),
]


def _assert_one_line_error(result, path, problem):
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith(f"error: {path}: ") and problem in lines[0], lines[0]


@pytest.mark.parametrize(("kind", "problem"), BAD, ids=[k for k, _ in BAD])
def test_bad_file_one_line_error(runner, tmp_path, kind, problem):
    path = tmp_path / "bad.h5"
    _valid(path)
    with h5py.File(path, "r+") as f:
        _edit(kind)(f)
    _assert_one_line_error(runner.invoke(app, ["inspect", str(path)]), path, problem)


def test_not_hdf5_missing_path_and_unknown_kind(runner, tmp_path):
    text = tmp_path / "bad.h5"
    text.write_text("episode,return\n1,2.0\n")
    _assert_one_line_error(runner.invoke(app, ["inspect", str(text)]), text, "not an HDF5 file")
    gone = tmp_path / "gone.h5"
    _assert_one_line_error(runner.invoke(app, ["inspect", str(gone), "--json"]), gone, "no such file")
    folder = tmp_path / "empty_dir"
    folder.mkdir()
    _assert_one_line_error(
        runner.invoke(app, ["inspect", str(folder)]), folder, "not an artifact logo can inspect"
    )


def test_bad_part_in_a_folder_is_named(runner, tmp_path):
    _valid(tmp_path / "part_0.h5")
    _valid(tmp_path / "part_1.h5")
    with h5py.File(tmp_path / "part_1.h5", "r+") as f:
        f["state"][0, 0, 0] = np.nan
    result = runner.invoke(app, ["inspect", str(tmp_path)])
    _assert_one_line_error(result, tmp_path / "part_1.h5", "'state' has NaN or inf values")
