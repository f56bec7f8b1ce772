"""`logo train-policy` and `logo evaluate` end to end: SMAX evaluation, in-memory world-model rollouts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from logo_cli.cli import app
from logo_cli.stages.train_policy import TrainPolicyConfig, partial_dir, run

TINY = ["--batch-size", "16", "--hidden", "16", "--layers", "1", "--cql-samples", "4", "--device", "cpu"]


def write_data(path, n_agents, obs_dim, state_dim, n_actions, limit, n_episodes=12):
    from logo_cli.data.h5_write import write_dataset
    from logo_cli.data.synthetic import random_episodes

    eps = random_episodes(n_episodes, n_agents=n_agents, obs_dim=obs_dim, state_dim=state_dim,
                          n_actions=n_actions, episode_limit=limit, seed=0)  # fmt: skip
    write_dataset(path, eps, {"map_name": path.stem, "quality": "medium"})
    return path


def one_line_error(res, *needles):
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and all(n in lines[0] for n in needles), res.output


def test_train_then_evaluate_on_smax(runner, tmp_path):
    pytest.importorskip("jaxmarl")
    data = write_data(tmp_path / "smax_3m_medium.h5", 3, 75, 72, 8, 20)  # SMAX 3m dims
    run_dir = tmp_path / "run"
    args = ["train-policy", "--data", str(data), "--steps", "8", "--log-every", "4", "--out", str(run_dir)]
    args += ["--env", "smax:3m", "--eval-every", "8", "--eval-episodes", "3", "--json", *TINY]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["mode"] == "real-only" and summary["steps"] == 8
    assert summary["final_eval"]["episodes"] == 3 and 0.0 <= summary["final_eval"]["win_rate"] <= 1.0
    assert {p.name for p in run_dir.iterdir()} == {"policy.pt", "manifest.json", "metrics.jsonl"}
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["evals"][0]["step"] == 8

    for policy in (str(run_dir), "random"):
        res = runner.invoke(app, ["evaluate", "--policy", policy, "--env", "smax:3m", "--episodes", "3",
                                  "--num-envs", "3", "--json", "--device", "cpu"])  # fmt: skip
        assert res.exit_code == 0, res.output
        ev = json.loads(res.stdout)
        assert ev["episodes"] == 3 and len(ev["return_ci95"]) == 2 and ev["length_mean"] >= 1
    # Returns of a random team on 3m are small (normalised enemy health removed, no wins expected).
    assert 0.0 <= ev["return_mean"] < 1.0


def test_cfcql_train_evaluate_export(runner, tmp_path):
    """A CFCQL run is a q-mode policy with a mixer: evaluate and export treat it as MACQL's."""
    pytest.importorskip("jaxmarl")
    data = write_data(tmp_path / "smax_3m_medium.h5", 3, 75, 72, 8, 20)  # SMAX 3m dims
    run_dir = tmp_path / "cfcql"
    args = ["train-policy", "--data", str(data), "--algo", "cfcql", "--steps", "8", "--log-every", "4"]
    args += ["--cfcql-bc-steps", "6", "--cfcql-temperature", "2", "--out", str(run_dir), "--json", *TINY]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["algo"] == "cfcql" and summary["steps"] == 8
    assert {"td_loss", "cql_gap", "lambda_max", "behaviour_kl"} <= set(summary["final"])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["policy"] == {"file": "policy.pt", "mode": "q", "algo": "cfcql"}
    assert manifest["config"]["cfcql_temperature"] == 2.0 and manifest["config"]["cfcql_bc_steps"] == 6
    assert manifest["timers"]["behaviour_s"] > 0
    payload = torch.load(run_dir / "policy.pt", weights_only=True)
    assert payload["mode"] == "q" and payload["meta"]["algo"] == "cfcql" and "mixer" in payload
    assert not any(k.startswith("behaviour") for k in payload["state_dict"])  # β stays out of the policy

    res = runner.invoke(app, ["evaluate", "--policy", str(run_dir), "--env", "smax:3m", "--episodes", "3",
                              "--num-envs", "3", "--json", "--device", "cpu"])  # fmt: skip
    assert res.exit_code == 0, res.output
    ev = json.loads(res.stdout)
    assert ev["episodes"] == 3 and 0.0 <= ev["win_rate"] <= 1.0

    res = runner.invoke(app, ["export", str(run_dir), "--out", str(tmp_path / "exported"), "--json"])
    assert res.exit_code == 0, res.output
    exported = json.loads(res.stdout)
    assert exported["mode"] == "q" and exported["algo"] == "cfcql" and exported["mixer"] is True
    assert exported["round_trip"]["greedy_actions_equal"]
    assert {p.name for p in (tmp_path / "exported").iterdir()} == {
        "agent.pt", "mixer.pt", "export.json", "manifest.json"
    }  # fmt: skip


def test_cli_refusals(runner, tmp_path):
    data = write_data(tmp_path / "toy_medium.h5", 2, 4, 6, 5, 8)
    base = ["train-policy", "--data", str(data), "--out", str(tmp_path / "r"), "--steps", "2", *TINY]
    one_line_error(runner.invoke(app, [*base, "--mode", "weight"]), "--mode weight", "--synthetic or --model")
    one_line_error(runner.invoke(app, [*base, "--algo", "sac"]), "--algo sac")
    one_line_error(
        runner.invoke(app, [*base, "--algo", "cfcql", "--cfcql-temperature", "-1"]), "--cfcql-temperature"
    )
    one_line_error(
        runner.invoke(app, [*base, "--algo", "cfcql", "--cfcql-bc-steps", "0"]), "--cfcql-bc-steps"
    )
    one_line_error(
        runner.invoke(app, [*base, "--synthetic", "x.zarr", "--model", "m"]), "--synthetic / --model"
    )
    one_line_error(runner.invoke(app, [*base, "--synthetic", str(tmp_path / "none.zarr")]), "not found")
    one_line_error(runner.invoke(app, [*base, "--algo", "cfcql", "--cql-greedy"]), "--cql-greedy", "macql")
    assert not (tmp_path / "r").exists() and not partial_dir(tmp_path / "r").exists()


def test_in_memory_rollouts_refresh_and_resume_exactly(runner, tmp_path):
    data = write_data(tmp_path / "toy_medium.h5", 2, 4, 6, 5, 8, n_episodes=16)
    wm = tmp_path / "wm"
    res = runner.invoke(app, ["pretrain", "--data", str(data), "--kind", "logo", "--out", str(wm),
                              "--steps", "10", "--batch-size", "32", "--hidden", "16", "--latent", "8",
                              "--holdout", "0.25", "--device", "cpu"])  # fmt: skip
    assert res.exit_code == 0, res.output

    def cfg(out):
        small = dict(batch_size=16, hidden=16, layers=1, cql_samples=4, log_every=3, device="cpu")
        rollouts = dict(refresh_every=4, horizon=3, rollout_starts=24, bc_steps=5)
        return TrainPolicyConfig(
            data, out, model=wm, mode="weight", steps=12, checkpoint_every=6, **small, **rollouts
        )

    full = run(cfg(tmp_path / "full"))
    lines = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if x["kind"] == "refresh"] == [4, 8]
    assert full.manifest["synthetic"]["kind"] == "model" and set(full.manifest["inputs"]) == {"data", "model"}
    assert full.c is not None and full.c > 0

    def interrupt(phase, done, total, info):
        if phase == "train" and done == 9:  # after the step-6 checkpoint, whose buffer came at step 4
            raise KeyboardInterrupt

    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        run(cfg(out), progress=interrupt)
    resumed = run(cfg(out))
    assert resumed.resumed_from == 6
    wa = torch.load(tmp_path / "full" / "policy.pt", weights_only=True)["state_dict"]
    wb = torch.load(out / "policy.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert np.isclose(resumed.c, full.c)
