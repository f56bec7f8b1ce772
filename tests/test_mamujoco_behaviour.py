"""Continuous behaviour ladders (Gaussian MAPPO on MaMuJoCo HalfCheetah-2x3, tiny budgets): the
learner's math on known cases, a tiny real ladder, every collect quality with its reference returns,
evaluate's normalised score, and one-line refusals that write nothing."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
import torch

pytest.importorskip("gymnasium_robotics")

from cli_checks import ok, one_line_error

from logo_cli.algos.online_ppo import gae_arrays  # noqa: E402
from logo_cli.algos.online_ppo_gaussian import (  # noqa: E402
    GaussianPPOConfig,
    GaussianPPOTrainer,
    RunningStats,
    gaussian_entropy,
    gaussian_log_prob,
)
from logo_cli.cli import app  # noqa: E402

ENV, LIMIT = "mamujoco:HalfCheetah-2x3", 40
TINY_PPO = GaussianPPOConfig(num_envs=4, rollout_len=32, epochs=2, minibatches=2, hidden=16, layers=1)


# ---- the learner's math ---------------------------------------------------------------------------
def test_gaussian_log_prob_and_entropy_match_torch_distributions():
    gen = torch.Generator().manual_seed(0)
    mean, log_std = torch.randn(5, 2, 3, generator=gen), torch.randn(5, 2, 3, generator=gen) * 0.5
    action = torch.randn(5, 2, 3, generator=gen)
    ref = torch.distributions.Normal(mean, log_std.exp())
    assert torch.allclose(gaussian_log_prob(mean, log_std, action), ref.log_prob(action).sum(-1), atol=1e-5)
    assert torch.allclose(gaussian_entropy(log_std), ref.entropy().sum(-1), atol=1e-5)


def test_gae_bootstraps_time_outs_and_stops_at_terminations():
    # one env, 3 steps: the episode times out after step 0 (bootstrap from V(final state) = 10),
    # then a new one terminates after step 2 (no bootstrap).
    gamma, lam = 0.9, 0.5
    reward = torch.tensor([[1.0], [2.0], [3.0]])
    value = torch.tensor([[4.0], [5.0], [6.0]])
    next_value = torch.tensor([[10.0], [6.0], [99.0]])
    terminated = torch.tensor([[False], [False], [True]])
    done = torch.tensor([[True], [False], [True]])
    adv, target = gae_arrays(reward, value, next_value, terminated, done, gamma, lam)
    d0, d1, d2 = 1 + 0.9 * 10 - 4, 2 + 0.9 * 6 - 5, 3 - 6
    expected = torch.tensor([[d0], [d1 + gamma * lam * d2], [d2]])
    assert torch.allclose(adv, expected) and torch.allclose(target, expected + value)


def test_running_stats_equal_the_pooled_mean_and_variance():
    rng = np.random.default_rng(0)
    parts = [rng.normal(3, 2, (n, 4)) for n in (5, 17, 40)]
    stats = RunningStats(4)
    for p in parts:
        stats.update(p)
    pooled = np.concatenate(parts)
    assert np.allclose(stats.mean, pooled.mean(0), atol=1e-4)
    assert np.allclose(stats.var, pooled.var(0), rtol=1e-3)


def test_a_saved_snapshot_acts_exactly_as_the_trainer(tmp_path):
    from logo_cli.envs import make_env
    from logo_cli.policies.torch_policy import load_policy, save_policy

    env = make_env(ENV, num_envs=2, max_steps=LIMIT)
    trainer = GaussianPPOTrainer(env, TINY_PPO, seed=0, total_updates=2)
    stats = trainer.iterate()
    assert np.isfinite(stats["policy_loss"]) and np.isfinite(stats["value_loss"])
    # the log-std is state-independent: its output rows' weights never move
    last = trainer.actor.net[-1]
    assert torch.count_nonzero(last.weight[3:]) == 0 and not torch.allclose(last.bias[3:], torch.tensor(-0.5))
    path = tmp_path / "snap.pt"
    save_policy(path, trainer.actor, "gaussian", trainer.dims, 16, 1, {}, obs_norm=trainer.obs_norm())
    loaded = load_policy(path)
    obs = torch.as_tensor(trainer.current.obs)
    for a, b in zip(trainer.policy.distribution(obs), loaded.distribution(obs), strict=True):
        assert torch.allclose(a, b)
    env.close()


# ---- a tiny real ladder ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_ladder(tmp_path_factory):
    from logo_cli.stages.behaviour import BehaviourConfig, train_ladder

    out = tmp_path_factory.mktemp("hcbeh") / "mamujoco_HalfCheetah-2x3"
    cfg = BehaviourConfig(env=ENV, train_steps=4 * 32 * 4, snapshot_every=4 * 32, eval_episodes=2,
                          finalists=2, final_eval_episodes=4, episode_limit=LIMIT,
                          gaussian_ppo=TINY_PPO)  # fmt: skip
    return out, train_ladder(cfg, out)


def test_tiny_ladder_ranks_by_return_and_records_reference_returns(tiny_ladder):
    from logo_cli.policies.torch_policy import load_policy
    from logo_cli.stages.behaviour import load_ladder

    out, ladder = tiny_ladder
    assert [s["env_steps"] for s in ladder["snapshots"]] == [0, 128, 256, 384, 512]
    assert all(s["greedy"]["win_rate"] is None for s in ladder["snapshots"])  # nothing is won
    refs = ladder["reference_returns"]
    assert np.isfinite(refs["random"]) and refs["expert"] > refs["random"]
    loaded = load_ladder(out, ENV)
    assert loaded.reference_returns() == (refs["random"], refs["expert"])
    expert = loaded.by_name[loaded.expert]
    finals = [s for s in ladder["snapshots"] if "greedy_final" in s]
    assert expert["greedy_final"]["return_mean"] == max(s["greedy_final"]["return_mean"] for s in finals)
    assert load_policy(out / expert["file"]).mode == "gaussian"


@pytest.mark.parametrize("quality", ["expert", "medium", "medium_replay", "mixed", "random"])
def test_collect_every_quality_from_the_ladder_with_reference_attrs(tiny_ladder, runner, tmp_path, quality):
    out, ladder = tiny_ladder
    data = tmp_path / f"hc_{quality}.h5"
    args = ["collect", "--env", ENV, "--quality", quality, "--episodes", "4", "--num-envs", "2",
            "--episode-limit", str(LIMIT), "--behaviour", str(out), "--out", str(data), "--json"]  # fmt: skip
    res = json.loads(ok(runner.invoke(app, args)).stdout)
    refs = ladder["reference_returns"]
    assert res["episodes"] == 4 and res["quality"] == quality
    assert res["win_rate"] is None and res["n_wins"] is None  # nothing is won in MaMuJoCo
    assert res["reference_returns"] == {"random": refs["random"], "expert": refs["expert"]}
    expected = 100 * (res["return_mean"] - refs["random"]) / (refs["expert"] - refs["random"])
    assert res["normalised_score"] == pytest.approx(expected)
    with h5py.File(data, "r") as f:
        assert f.attrs["reference_return_random"] == refs["random"]
        assert f.attrs["reference_return_expert"] == refs["expert"]
        assert f.attrs["quality"] == quality
        acts = f["actions"][:]
        assert acts.dtype == np.float32 and np.abs(acts).max() <= 1.0
    used = {s["policy"] for s in res["sources"]}
    want = {"expert": {ladder["expert"]}, "medium": {ladder["medium"]}, "random": {"random"},
            "mixed": {ladder["medium"], ladder["expert"]}}.get(quality)  # fmt: skip
    if want is not None:
        assert used == want


def test_collect_leaves_out_references_measured_at_another_episode_limit(tiny_ladder, runner, tmp_path):
    out, _ = tiny_ladder
    data = tmp_path / "short.h5"
    args = ["collect", "--env", ENV, "--quality", "random", "--episodes", "2", "--num-envs", "2",
            "--episode-limit", "10", "--behaviour", str(out), "--out", str(data), "--json"]  # fmt: skip
    res = json.loads(ok(runner.invoke(app, args)).stdout)
    assert res["reference_returns"] is None and res["normalised_score"] is None
    with h5py.File(data, "r") as f:
        assert "reference_return_random" not in f.attrs and "reference_return_expert" not in f.attrs


def test_collect_trains_a_ladder_on_its_own_episodes(runner, tmp_path):
    from logo_cli.stages.behaviour import load_ladder

    lad, data = tmp_path / "lad", tmp_path / "medium.h5"
    args = ["collect", "--env", ENV, "--quality", "medium", "--episodes", "2", "--num-envs", "2",
            "--episode-limit", "10", "--train-behaviour", "--train-steps", "4096", "--behaviour", str(lad),
            "--out", str(data), "--json"]  # fmt: skip
    res = json.loads(ok(runner.invoke(app, args)).stdout)
    ladder = load_ladder(lad, ENV)
    assert ladder.data["episode_limit"] == 10 and ladder.data["env_steps"] == 4096
    assert res["behaviour_dir"] == str(lad) and res["length_mean"] == 10
    random, expert = ladder.reference_returns()
    assert res["reference_returns"] == {"random": random, "expert": expert}


def test_the_shipped_ladder_collects_with_its_reference_returns(runner, tmp_path):
    from logo_cli.stages.behaviour import load_ladder, shipped_behaviour_dir

    path = shipped_behaviour_dir(ENV)
    assert path is not None and path.name == "mamujoco_HalfCheetah-2x3"
    ladder = load_ladder(path, ENV)
    random, expert = ladder.reference_returns()
    assert random < 0 < expert  # a random cheetah goes nowhere and pays for its control
    data = tmp_path / "mixed.h5"
    args = ["collect", "--env", ENV, "--quality", "mixed", "--episodes", "2", "--num-envs", "2",
            "--behaviour", str(path), "--out", str(data), "--json"]  # fmt: skip
    res = json.loads(ok(runner.invoke(app, args)).stdout)
    assert [s["policy"] for s in res["sources"]] == [ladder.medium, ladder.expert]
    assert res["length_mean"] == 1000 and res["reference_returns"] == {"random": random, "expert": expert}
    assert 0 < res["normalised_score"] < 150
    with h5py.File(data, "r") as f:
        assert f.attrs["reference_return_expert"] == expert


def test_collect_refuses_a_ladder_of_another_env(runner, tmp_path):
    from logo_cli.stages.behaviour import shipped_behaviour_dir

    smax = shipped_behaviour_dir("smax:3m")
    if smax is None:
        pytest.skip("no shipped smax:3m ladder")
    data = tmp_path / "x.h5"
    args = ["collect", "--env", ENV, "--quality", "medium", "--behaviour", str(smax), "--out", str(data)]
    one_line_error(runner.invoke(app, args), "a ladder for smax:3m, not mamujoco:HalfCheetah-2x3")
    assert list(tmp_path.iterdir()) == []


def test_collect_refuses_garbled_reference_returns(tiny_ladder, runner, tmp_path):
    out, _ = tiny_ladder
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    data = json.loads((bad / "ladder.json").read_text())
    data["reference_returns"]["expert"] = "lots"
    (bad / "ladder.json").write_text(json.dumps(data))
    target = tmp_path / "out" / "x.h5"
    target.parent.mkdir()
    args = ["collect", "--env", ENV, "--quality", "expert", "--episodes", "2", "--num-envs", "2",
            "--episode-limit", str(LIMIT), "--behaviour", str(bad), "--out", str(target)]  # fmt: skip
    one_line_error(runner.invoke(app, args), "reference return (expert) 'lots' is not a number")
    assert list(target.parent.iterdir()) == []


# ---- evaluate's normalised score ------------------------------------------------------------------
def test_normalised_score_on_a_known_case():
    from logo_cli.stages.evaluate import add_normalised_score

    result = {"return_mean": 150.0, "return_ci95": [100.0, 200.0]}
    add_normalised_score(result, ((-50.0, 350.0), "test"))
    assert result["normalised_score"] == pytest.approx(50.0)  # 200 of the 400 between random and expert
    assert result["normalised_score_ci95"] == pytest.approx([37.5, 62.5])
    assert result["reference_returns"] == {"random": -50.0, "expert": 350.0, "source": "test"}
    assert add_normalised_score({"return_mean": 1.0}, None)["normalised_score"] is None


def test_evaluate_reports_the_normalised_score(tiny_ladder, runner, tmp_path):
    out, ladder = tiny_ladder
    snap = out / ladder["snapshots"][0]["file"]
    base = ["evaluate", "--env", ENV, "--episodes", "2", "--num-envs", "2", "--episode-limit", str(LIMIT),
            "--json", "--workspace", str(tmp_path / "ws")]  # fmt: skip
    res = json.loads(
        ok(runner.invoke(app, [*base, "--policy", str(snap), "--reference-returns", "-10,30"])).stdout
    )
    assert res["normalised_score"] == pytest.approx(100 * (res["return_mean"] + 10) / 40)
    assert res["reference_returns"]["source"] == "--reference-returns"
    assert len(res["normalised_score_ci95"]) == 2
    plain = json.loads(ok(runner.invoke(app, [*base, "--policy", str(snap), "--overwrite"])).stdout)
    assert plain["normalised_score"] is None and plain["reference_returns"] is None


def test_evaluate_takes_the_references_of_the_training_dataset(tiny_ladder, runner, tmp_path):
    out, ladder = tiny_ladder
    data = tmp_path / "hc_medium.h5"
    collect = ["collect", "--env", ENV, "--quality", "medium", "--episodes", "2", "--num-envs", "2",
               "--episode-limit", str(LIMIT), "--behaviour", str(out), "--out", str(data)]  # fmt: skip
    ok(runner.invoke(app, collect))
    run_dir = tmp_path / "bc"
    args = ["train-policy", "--data", str(data), "--algo", "bc", "--mode", "real-only", "--steps", "5",
            "--batch-size", "16", "--hidden", "8", "--layers", "1", "--device", "cpu",
            "--out", str(run_dir)]  # fmt: skip
    ok(runner.invoke(app, args))
    ev = ["evaluate", "--policy", str(run_dir), "--episodes", "2", "--num-envs", "2", "--json",
          "--episode-limit", str(LIMIT), "--workspace", str(tmp_path / "ws")]  # fmt: skip
    res = json.loads(ok(runner.invoke(app, ev)).stdout)
    refs = ladder["reference_returns"]
    assert res["env"] == ENV and res["reference_returns"]["source"] == "dataset"
    assert res["reference_returns"]["random"] == refs["random"]
    expected = 100 * (res["return_mean"] - refs["random"]) / (refs["expert"] - refs["random"])
    assert res["normalised_score"] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("abc", "--reference-returns abc: expected RANDOM,EXPERT"),
        ("1,2,3", "expected RANDOM,EXPERT"),
        ("5,1", "random 5 >= expert 1"),
        ("nan,1", "is not finite"),
    ],
)
def test_evaluate_refuses_bad_reference_returns(runner, tmp_path, value, fragment):
    target = tmp_path / "ev.json"
    args = ["evaluate", "--policy", "random", "--env", ENV, "--episodes", "1", "--out", str(target),
            f"--reference-returns={value}", "--workspace", str(tmp_path / "ws")]  # fmt: skip
    one_line_error(runner.invoke(app, args), fragment)
    assert not target.exists()
