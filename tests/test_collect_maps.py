"""Every shipped behaviour ladder (datasets/behaviour/*/): valid and pruned as the ladder code
prunes; the SMAX ones, including the heterogeneous maps (2s3z: two unit types; 5m_vs_6m, 3s_vs_5z,
6h_vs_8z: more enemies than allies, so more attack actions than agents), usable by `logo collect`
(the MaMuJoCo one: tests/test_mamujoco_behaviour.py)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from logo_cli.stages.behaviour import LADDER_FILE, load_ladder, sanitise

BEHAVIOUR = Path(__file__).resolve().parents[1] / "datasets" / "behaviour"
LADDERS = sorted(p.parent for p in BEHAVIOUR.glob(f"*/{LADDER_FILE}"))
IDS = [p.name for p in LADDERS]


def _env(path: Path) -> str:
    return json.loads((path / LADDER_FILE).read_text())["env"]


def test_ladders_are_shipped():
    assert {"smax_3m", "smax_2s3z", "smax_5m_vs_6m", "smax_3s_vs_5z", "smax_6h_vs_8z"} <= set(IDS)


@pytest.mark.parametrize("path", LADDERS, ids=IDS)
def test_shipped_ladder_is_valid_and_pruned(path):
    env = _env(path)
    assert path.name == sanitise(env)  # the folder collect looks for
    ladder = load_ladder(path, env)
    names = [s["name"] for s in ladder.data["snapshots"]]
    assert names.index(ladder.medium) < names.index(ladder.expert)
    assert ladder.replay_names() == names[: names.index(ladder.medium) + 1]
    # only the files a quality uses are kept, each with its recorded hash
    kept = {p.name for p in path.glob("*.pt")}
    assert kept == {f"{n}.pt" for n in {*ladder.replay_names(), ladder.expert}}
    for name in (ladder.medium, ladder.expert):
        ladder.policy(name)  # checks the hash
    expert = ladder.by_name[ladder.expert]
    medium = ladder.by_name[ladder.medium]
    assert expert["stochastic"]["return_mean"] > medium["stochastic"]["return_mean"]
    assert "greedy_final" in expert  # chosen after the re-evaluation


# 3m: tests/test_collect_cli.py; MaMuJoCo: tests/test_mamujoco_behaviour.py
OTHER_MAPS = [p for p in LADDERS if p.name.startswith("smax_") and p.name != "smax_3m"]


@pytest.mark.parametrize("path", OTHER_MAPS, ids=[p.name for p in OTHER_MAPS])
def test_collect_with_a_shipped_ladder(runner, tmp_path, path):
    pytest.importorskip("jaxmarl")
    from logo_cli.cli import app
    from logo_cli.data.h5 import open_dataset
    from logo_cli.envs.smax import STOP_ACTION

    env = _env(path)
    out = tmp_path / "mixed.h5"
    args = ["collect", "--env", env, "--quality", "mixed", "--episodes", "8", "--num-envs", "8",
            "--behaviour", str(path), "--out", str(out), "--json"]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    res = json.loads(res.stdout)
    dims = json.loads((path / LADDER_FILE).read_text())["dims"]
    with open_dataset(out) as ds:
        assert ds.n_episodes == 8
        assert ds.dims.n_agents == dims["n_agents"] and ds.dims.n_actions == dims["n_actions"]
        np.testing.assert_array_equal(ds.won, ds.terminated_mask & (ds.returns >= 1.0))
        assert int(ds.won.sum()) == res["n_wins"]
    with h5py.File(out) as f:
        filled = f["filled"][:, :, 0].astype(bool)
        actions, avail = f["actions"][:, :, :, 0], f["avail_actions"][:]
    # every recorded action is available, attack actions included (5.. up to 5 + enemies - 1)
    e, t = np.nonzero(filled)
    a = actions[e, t]
    assert (np.take_along_axis(avail[e, t], a[..., None].astype(np.int64), -1) == 1).all()
    assert a.max() < dims["n_actions"] and STOP_ACTION < dims["n_actions"]
