"""Ladder training stops and goes on: the same ladder as an uninterrupted run (SMAX), an honest
record where the simulator's state cannot be saved (MaMuJoCo), refusals of other settings."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from logo_cli.algos.online_ppo import PPOConfig
from logo_cli.errors import LogoError
from logo_cli.stages.behaviour import BehaviourConfig, train_ladder
from logo_cli.stages.ladder_resume import RESUME_FILE, work_dir

pytest.importorskip("jaxmarl")

# 4 updates of 8 envs x 16 steps; a snapshot (and a checkpoint) every second update
PPO = PPOConfig(num_envs=8, rollout_len=16, epochs=1, minibatches=1, hidden=16, layers=1)
CFG = BehaviourConfig(train_steps=8 * 16 * 4, snapshot_every=8 * 16 * 2, eval_episodes=8,
                      finalists=2, final_eval_episodes=8, ppo=PPO)  # fmt: skip


class Interrupted(Exception):
    pass


def stop_after(env_steps: int):
    def progress(done: int, total: int, info: dict) -> None:
        if done >= env_steps:
            raise Interrupted

    return progress


def comparable(ladder: dict) -> dict:
    """A ladder without its wall times and resume record."""
    out = {k: v for k, v in ladder.items() if k not in ("wall_time_s", "resumes")}
    out["snapshots"] = [{k: v for k, v in s.items() if k != "wall_s"} for s in ladder["snapshots"]]
    return out


def test_an_interrupted_smax_ladder_resumes_to_the_same_ladder(tmp_path):
    whole = train_ladder(CFG, tmp_path / "whole")
    out = tmp_path / "resumed"
    # stopped after the third update: the last checkpoint is the second update's snapshot, so the
    # resumed run redoes the third update from the saved state
    with pytest.raises(Interrupted):
        train_ladder(CFG, out, stop_after(8 * 16 * 3))
    assert not out.exists()  # nothing half-written under the ladder's name
    work = work_dir(out)
    assert (work / RESUME_FILE).is_file()
    assert sorted(p.name for p in work.glob("snap_*.pt")) == ["snap_0000.pt", "snap_0001.pt"]
    seen: list[int] = []
    resumed = train_ladder(CFG, out, lambda done, total, info: seen.append(done))
    assert seen == [8 * 16 * 3, 8 * 16 * 4]  # only the updates after the checkpoint
    assert resumed["resumes"] == [{"env_steps": 8 * 16 * 2, "exact": True}]
    assert comparable(resumed) == comparable(whole)  # evaluations, rungs and file hashes
    assert json.loads((out / "ladder.json").read_text()) == resumed
    assert not work.exists()
    for snap in whole["snapshots"]:
        if snap["file"]:
            assert (out / snap["file"]).read_bytes() == (tmp_path / "whole" / snap["file"]).read_bytes()


def test_a_resume_with_other_settings_is_refused_and_the_work_kept(tmp_path, runner):
    from logo_cli.cli import app

    out = tmp_path / "ladder"
    with pytest.raises(Interrupted):
        train_ladder(CFG, out, stop_after(8 * 16 * 2))
    # `logo inspect` of the ladder's path finds the interrupted training beside it
    res = runner.invoke(app, ["inspect", str(out), "--json"])
    assert res.exit_code == 0, res.output
    seen = json.loads(res.stdout)
    assert (seen["kind"], seen["env"], seen["env_steps"], seen["snapshots"]) == (
        "interrupted_ladder", "smax:3m", 8 * 16 * 2, 2)  # fmt: skip
    assert seen["budget"] == CFG.train_steps and seen["ladder"] == str(out)
    other = BehaviourConfig(**{**CFG.__dict__, "seed": 1})
    with pytest.raises(LogoError, match=r"other settings.*remove .*\.partial to start over"):
        train_ladder(other, out)
    ckpt = work_dir(out) / RESUME_FILE
    assert ckpt.is_file()
    payload = torch.load(ckpt, weights_only=True)
    torch.save({**payload, "version": 99}, ckpt)  # from a newer logo-cli
    with pytest.raises(LogoError, match="ladder checkpoint format version 99"):
        train_ladder(CFG, out)
    ckpt.write_bytes(b"not a checkpoint")
    with pytest.raises(LogoError, match="not a valid logo checkpoint.*start over"):
        train_ladder(CFG, out)


def test_smax_state_round_trip_and_refusal():
    from logo_cli.envs import make_env

    env = make_env("smax:3m", num_envs=4)
    cur = env.reset(3)
    rng = np.random.default_rng(0)

    def actions(avail):
        return np.array([[rng.choice(np.flatnonzero(a)) for a in team] for team in avail])

    for _ in range(4):
        cur = env.step(actions(cur.avail_actions)).reset
    saved = env.save_state()
    act = actions(cur.avail_actions)
    first = env.step(act)
    other = make_env("smax:3m", num_envs=4)
    other.reset(99)
    other.load_state(saved)
    again = other.step(act)
    np.testing.assert_array_equal(first.next.obs, again.next.obs)
    np.testing.assert_array_equal(first.reward, again.reward)
    wider = make_env("smax:3m", num_envs=5)
    wider.reset(0)
    with pytest.raises(LogoError, match="saved state array 0 is uint32"):
        wider.load_state(saved)


def test_a_mamujoco_ladder_resumes_with_fresh_episodes_and_says_so(tmp_path):
    pytest.importorskip("gymnasium_robotics")
    from logo_cli.algos.online_ppo_gaussian import GaussianPPOConfig

    tiny = GaussianPPOConfig(num_envs=4, rollout_len=32, epochs=1, minibatches=1, hidden=16)
    cfg = BehaviourConfig(env="mamujoco:HalfCheetah-2x3", train_steps=4 * 32 * 3, snapshot_every=4 * 32,
                          eval_episodes=2, finalists=2, final_eval_episodes=2, episode_limit=40,
                          gaussian_ppo=tiny)  # fmt: skip
    out = tmp_path / "hc"
    with pytest.raises(Interrupted):
        train_ladder(cfg, out, stop_after(4 * 32))
    ladder = train_ladder(cfg, out)
    assert [s["env_steps"] for s in ladder["snapshots"]] == [0, 128, 256, 384]
    assert ladder["resumes"] == [{"env_steps": 128, "exact": False}]
    assert "reference_returns" in ladder
    assert not work_dir(out).exists()
