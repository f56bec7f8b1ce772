"""Evaluation: intervals, unbiased batched episode quotas on a scripted env, policy resolution, CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from logo_cli.cli import app
from logo_cli.data.transitions import Dims
from logo_cli.envs.base import EnvObs, EnvSpec, EnvStep
from logo_cli.errors import LogoError
from logo_cli.models.agent_net import AgentNet
from logo_cli.policies.random_policy import RandomPolicy
from logo_cli.policies.torch_policy import save_policy
from logo_cli.stages.evaluate import mean_interval, resolve_policy, run_episodes, wilson_interval

N, OD, S, A = 2, 3, 4, 3


class ScriptedEnv:
    """Slot b's episodes last b+1 steps, pay 0.5 per step, and are won when b is even.

    Action 2 is never available; action 1 is available only to agent 0.
    """

    def __init__(self, num_envs: int, n_agents: int = N, obs_dim: int = OD):
        self.num_envs = num_envs
        self.spec = EnvSpec("fake:scripted", n_agents, obs_dim, S, A, True, 10, noop_action=0)
        self.t = np.zeros(num_envs, np.int64)
        self.actions_seen: list[np.ndarray] = []

    def _obs(self) -> EnvObs:
        b, n = self.num_envs, self.spec.n_agents
        avail = np.zeros((b, n, A), bool)
        avail[:, :, 0] = True
        avail[:, 0, 1] = True
        obs = np.broadcast_to(self.t[:, None, None], (b, n, self.spec.obs_dim)).astype(np.float32)
        return EnvObs(obs, np.zeros((b, S), np.float32), avail)

    def reset(self, seed: int) -> EnvObs:
        self.t[:] = 0
        return self._obs()

    def step(self, actions: np.ndarray) -> EnvStep:
        self.actions_seen.append(actions.copy())
        self.t += 1
        done = self.t >= np.arange(self.num_envs) + 1
        won = done & (np.arange(self.num_envs) % 2 == 0)
        nxt = self._obs()
        self.t[done] = 0
        return EnvStep(
            nxt, np.full(self.num_envs, 0.5, np.float32), done, np.zeros_like(done), won, self._obs()
        )

    def close(self) -> None:
        pass


class AlwaysAction:
    def __init__(self, a: int):
        self.a = a

    def act(self, obs, state, avail, *, greedy, rng):
        return np.full(avail.shape[:2], self.a, np.int64)


def test_wilson_and_t_intervals_match_reference_values():
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    assert wilson_interval(20, 20)[1] == 1.0
    lo, hi = mean_interval(np.array([1.0, 2.0, 3.0]))
    half = 4.302653 / math.sqrt(3)  # t(0.975, df=2) * sd 1 / sqrt(3)
    assert lo == pytest.approx(2 - half, abs=1e-5) and hi == pytest.approx(2 + half, abs=1e-5)
    assert mean_interval(np.array([1.0])) is None


def test_each_slot_plays_its_quota_so_short_episodes_are_not_over_counted():
    env = ScriptedEnv(num_envs=3)
    calls = []
    res = run_episodes(env, AlwaysAction(0), episodes=7, seed=0, progress=lambda *a: calls.append(a))
    # Quotas 3, 2, 2: slot 0 (1 step, won) x3, slot 1 (2 steps, lost) x2, slot 2 (3 steps, won) x2.
    assert res["episodes"] == 7 and res["wins"] == 5
    assert sorted(res["lengths"]) == [1, 1, 1, 2, 2, 3, 3]
    assert res["return_mean"] == pytest.approx(0.5 * 13 / 7)
    assert res["length_mean"] == pytest.approx(13 / 7)
    assert res["win_rate"] == pytest.approx(5 / 7)
    assert list(res["win_rate_ci95"]) == pytest.approx(list(wilson_interval(5, 7)))
    assert calls[-1][0] == 7 and calls[-1][1] == 7


def test_random_and_learned_policies_never_pick_unavailable_actions():
    env = ScriptedEnv(num_envs=4)
    run_episodes(env, RandomPolicy(), episodes=40, seed=1, greedy=False)
    seen = np.concatenate(env.actions_seen)
    assert (seen != 2).all() and (seen[:, 1] != 1).all() and (seen[:, 0] == 1).any()
    from logo_cli.policies.torch_policy import AgentNetPolicy

    torch.manual_seed(0)
    net = AgentNet(OD, N, A, hidden=8, layers=1)
    with torch.no_grad():
        net.net[-1].bias[:] = torch.tensor([0.0, 5.0, 50.0])  # unavailable actions score highest
    for mode, eps, greedy in (("q", 1.0, False), ("q", 0.0, True), ("logits", 0.0, False)):
        env = ScriptedEnv(num_envs=4)
        run_episodes(
            env, AgentNetPolicy(net, mode, Dims(N, OD, S, A), epsilon=eps), 20, seed=2, greedy=greedy
        )
        seen = np.concatenate(env.actions_seen)
        assert (seen != 2).all() and (seen[:, 1] == 0).all()


def test_a_policy_choosing_unavailable_actions_is_refused():
    with pytest.raises(LogoError, match="unavailable"):
        run_episodes(ScriptedEnv(2), AlwaysAction(2), episodes=2, seed=0)


def test_resolve_policy_forms(tmp_path, monkeypatch):
    net = AgentNet(OD, N, A, hidden=8, layers=1)
    save_policy(tmp_path / "p.pt", net, "q", Dims(N, OD, S, A), hidden=8, layers=1)
    policy, info, dims = resolve_policy(str(tmp_path / "p.pt"), "fake:scripted")
    assert info["kind"] == "checkpoint" and info["mode"] == "q" and info["hash"].startswith("sha256:")
    assert dims == Dims(N, OD, S, A)
    assert resolve_policy("random", "smax:3m")[1] == {"kind": "random"}
    folder = tmp_path / "datasets" / "behaviour" / "smax_3m"
    folder.mkdir(parents=True)
    for name in ("snap_0000", "snap_0001", "snap_0002"):
        save_policy(folder / f"{name}.pt", net, "logits", Dims(N, OD, S, A), hidden=8, layers=1)
    snaps = [{"name": f"snap_000{i}", "file": f"snap_000{i}.pt"} for i in range(3)]
    ladder = {"format": "logo-behaviour-ladder", "version": 1, "env": "smax:3m", "snapshots": snaps,
              "expert": "snap_0002", "medium": "snap_0001"}  # fmt: skip
    (folder / "ladder.json").write_text(json.dumps(ladder))
    monkeypatch.chdir(tmp_path)
    _, info, _ = resolve_policy("behaviour:expert", "smax:3m")
    assert info["kind"] == "behaviour" and info["path"].endswith("snap_0002.pt") and info["mode"] == "logits"
    assert resolve_policy("behaviour:snap_0000", "smax:3m")[1]["snapshot"] == "snap_0000"
    with pytest.raises(LogoError, match="known: expert, medium, snap_0000"):
        resolve_policy("behaviour:best", "smax:3m")
    with pytest.raises(LogoError, match="no such file"):
        resolve_policy(str(tmp_path / "missing.pt"), "smax:3m")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(LogoError, match="not a valid logo checkpoint"):
        resolve_policy(str(tmp_path / "junk.pt"), "smax:3m")


def test_evaluate_cli_json_out_file_and_dims_refusal(runner, tmp_path, monkeypatch):
    import logo_cli.envs

    monkeypatch.setattr(logo_cli.envs, "make_env", lambda name, num_envs=1, **kw: ScriptedEnv(num_envs))
    net = AgentNet(OD, N, A, hidden=8, layers=1)
    save_policy(tmp_path / "p.pt", net, "q", Dims(N, OD, S, A), hidden=8, layers=1)
    out = tmp_path / "metrics.json"
    args = ["evaluate", "--policy", str(tmp_path / "p.pt"), "--env", "smax:3m", "--episodes", "6"]
    res = runner.invoke(app, [*args, "--num-envs", "2", "--json", "--out", str(out), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["episodes"] == 6 and summary["wins"] == 3 and "returns" not in summary
    saved = json.loads(out.read_text())
    assert len(saved["returns"]) == 6 and saved["config"]["episodes"] == 6

    save_policy(tmp_path / "wide.pt", AgentNet(OD + 1, N, A, 8, 1), "q", Dims(N, OD + 1, S, A), 8, 1)
    res = runner.invoke(app, ["evaluate", "--policy", str(tmp_path / "wide.pt"), "--episodes", "2"])
    assert res.exit_code == 2
    assert "dims do not match" in res.output and "obs_dim" in res.output
    assert len(res.output.strip().splitlines()) == 1
