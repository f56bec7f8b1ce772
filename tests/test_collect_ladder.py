"""The behaviour ladder: choosing rungs, splitting qualities, a tiny real training, refusals."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from logo_cli.algos.online_ppo import PPOConfig
from logo_cli.errors import LogoError
from logo_cli.stages.behaviour import BehaviourConfig, Ladder, choose_rungs, load_ladder, train_ladder
from logo_cli.stages.collect import split_sources


def _snap(name: str, greedy_win: float, stoch_ret: float, final: float | None = None) -> dict:
    s = {"name": name, "greedy": {"win_rate": greedy_win}, "stochastic": {"return_mean": stoch_ret}}
    if final is not None:
        s["greedy_final"] = {"win_rate": final}
    return s


def test_choose_rungs_expert_best_and_medium_half_its_return():
    snaps = [_snap("s0", 0.0, 0.2), _snap("s1", 0.4, 0.8), _snap("s2", 0.5, 0.95),
             _snap("s3", 0.9, 1.9), _snap("s4", 0.8, 1.9), _snap("s5", 0.95, 1.7)]  # fmt: skip
    assert choose_rungs(snaps) == (5, 1)  # half of 1.7 is 0.85: s1 (0.8) is closer than s2 (0.95)
    # re-evaluated finalists outrank the short evaluation: s5's 0.95 was luck
    snaps[3]["greedy_final"] = {"win_rate": 0.88}
    snaps[5]["greedy_final"] = {"win_rate": 0.84}
    assert choose_rungs(snaps) == (3, 2)  # half of 1.9 is 0.95: s2


def test_split_sources_per_quality():
    steps = [0, 100, 200, 300, 400, 500]
    data = {"snapshots": [{"name": f"s{i}", "env_steps": k} for i, k in enumerate(steps)],
            "expert": "s5", "medium": "s2"}  # fmt: skip
    ladder = Ladder(None, data)
    assert split_sources(ladder, "expert", 10) == [("s5", 10)]
    assert split_sources(ladder, "medium", 10) == [("s2", 10)]
    assert split_sources(ladder, "mixed", 11) == [("s2", 5), ("s5", 6)]
    assert split_sources(ladder, "medium_replay", 10) == [("s0", 4), ("s1", 3), ("s2", 3)]
    assert split_sources(ladder, "medium_replay", 2) == [("s0", 1), ("s1", 1)]
    assert split_sources(None, "random", 7) == [("random", 7)]
    # snapshots further apart acted for longer and get more episodes: 100, 300, 100 steps
    for snap, k in zip(data["snapshots"], [0, 100, 400, 500, 600, 700], strict=True):
        snap["env_steps"] = k
    assert split_sources(ladder, "medium_replay", 10) == [("s0", 2), ("s1", 6), ("s2", 2)]


@pytest.fixture(scope="module")
def tiny_ladder(tmp_path_factory):
    pytest.importorskip("jaxmarl")
    import torch

    threads = torch.get_num_threads()
    out = tmp_path_factory.mktemp("beh") / "smax_3m"
    ppo = PPOConfig(num_envs=8, rollout_len=16, epochs=1, minibatches=1, hidden=16, layers=1)
    cfg = BehaviourConfig(train_steps=8 * 16 * 3, snapshot_every=8 * 16, eval_episodes=8,
                          finalists=2, final_eval_episodes=8, ppo=ppo)  # fmt: skip
    seen: list[int] = []
    ladder = train_ladder(cfg, out, lambda done, total, info: seen.append(done))
    assert torch.get_num_threads() == threads  # the stage restores the caller's setting
    return out, ladder, seen


def test_tiny_training_writes_a_loadable_ladder(tiny_ladder, runner, tmp_path):
    from logo_cli.cli import app
    from logo_cli.data.h5 import open_dataset

    out, ladder, seen = tiny_ladder
    assert seen == [128, 256, 384]
    names = [s["name"] for s in ladder["snapshots"]]
    assert names == ["snap_0000", "snap_0001", "snap_0002", "snap_0003"]
    assert [s["env_steps"] for s in ladder["snapshots"]] == [0, 128, 256, 384]
    assert json.loads((out / "ladder.json").read_text()) == ladder
    assert json.loads((out / "manifest.json").read_text())["stage"] == "behaviour"
    loaded = load_ladder(out, "smax:3m")
    kept = {p.name for p in out.glob("*.pt")}
    assert kept == {f"{n}.pt" for n in {*loaded.replay_names(), loaded.expert}}
    args = ["collect", "--quality", "medium_replay", "--episodes", "6", "--num-envs", "8"]
    res = runner.invoke(app, [*args, "--behaviour", str(out), "--out", str(tmp_path / "r.h5"), "--json"])
    assert res.exit_code == 0, res.output
    with open_dataset(tmp_path / "r.h5") as ds:
        assert ds.n_episodes == 6
        np.testing.assert_allclose(ds.returns.mean(), json.loads(res.stdout)["return_mean"], rtol=1e-5)


def test_ladder_refusals(tiny_ladder, tmp_path):
    out, ladder, _ = tiny_ladder
    with pytest.raises(LogoError, match="a ladder for smax:3m, not smax:8m"):
        load_ladder(out, "smax:8m")
    with pytest.raises(LogoError, match="no ladder.json"):
        load_ladder(tmp_path, "smax:3m")
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    (broken / f"{ladder['expert']}.pt").unlink()
    with pytest.raises(LogoError, match="policy file is missing"):
        load_ladder(broken, "smax:3m")
    tampered = tmp_path / "tampered"
    shutil.copytree(out, tampered)
    (tampered / f"{ladder['medium']}.pt").write_bytes(b"not the trained weights")
    with pytest.raises(LogoError, match="differs from the hash"):
        load_ladder(tampered, "smax:3m").policy(ladder["medium"])
