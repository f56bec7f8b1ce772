"""`logo export`: TorchScript files that reproduce the policy (and mixer) without logo-cli."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from logo_cli.cli import app
from logo_cli.data.transitions import Dims
from logo_cli.policies.torch_policy import load_policy

TINY = ["--batch-size", "16", "--hidden", "16", "--layers", "1", "--cql-samples", "4", "--device", "cpu"]
N, OD, S, A = 3, 5, 7, 6

# Runs in `python -I` (no PYTHONPATH, no user site) with logo_cli made unimportable: only torch.
LOADER = r"""
import json, sys
class _NoLogo:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "logo_cli":
            raise ImportError("logo_cli must not be needed")
sys.meta_path.insert(0, _NoLogo())
import torch
folder, inputs, result = sys.argv[1], sys.argv[2], sys.argv[3]
x = torch.load(inputs)
extra = {"logo_export.json": ""}
agent = torch.jit.load(folder + "/agent.pt", _extra_files=extra)
meta = json.loads(extra["logo_export.json"])
values, actions = agent(x["obs"], x["avail"])
out = {"values": values, "actions": actions, "act": agent.act(x["obs"], x["avail"]),
       "unmasked": agent.act(x["obs"], None), "meta": meta}
try:
    mixer = torch.jit.load(folder + "/mixer.pt")
except ValueError:  # no such file: a policy without a mixer
    mixer = None
if mixer is not None:
    out["q_tot"] = mixer(values.gather(-1, actions.unsqueeze(-1)).squeeze(-1), x["state"])
# inference modules: no output tracks gradients, no parameter asks for them
modules = [agent] + ([mixer] if mixer is not None else [])
out["tracks_grad"] = [values.requires_grad] + ([out["q_tot"].requires_grad] if mixer is not None else []) + [
    p.requires_grad for m in modules for p in m.parameters()]
try:
    agent(x["obs"][:, :, :-1], None)
    out["bad_shape"] = "accepted"
except Exception as e:
    out["bad_shape"] = str(e)
torch.save(out, result)
assert not any(m.split(".")[0] == "logo_cli" for m in sys.modules)
"""


def write_data(path):
    from logo_cli.data.h5_write import write_dataset
    from logo_cli.data.synthetic import random_episodes

    eps = random_episodes(10, n_agents=N, obs_dim=OD, state_dim=S, n_actions=A, episode_limit=8, seed=0)
    write_dataset(path, eps, {"map_name": "toy", "quality": "medium"})
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny MACQL run (q mode, with mixer) and a tiny BC run (logits mode)."""
    from typer.testing import CliRunner

    root = tmp_path_factory.mktemp("export")
    data = write_data(root / "toy_medium.h5")
    out = {}
    for algo in ("macql", "bc"):
        run_dir = root / algo
        res = CliRunner().invoke(app, ["train-policy", "--data", str(data), "--algo", algo, "--steps", "4",
                                       "--log-every", "2", "--out", str(run_dir), *TINY])  # fmt: skip
        assert res.exit_code == 0, res.output
        out[algo] = run_dir
    return out


def _inputs(tmp_path, seed=1):
    gen = torch.Generator().manual_seed(seed)
    obs = torch.randn(64, N, OD, generator=gen) * 2
    avail = torch.rand(64, N, A, generator=gen) > 0.5
    avail[:, :, 0] |= ~avail.any(-1)  # every agent has an available action, as environments give
    state = torch.randn(64, S, generator=gen) * 3
    path = tmp_path / "inputs.pt"
    torch.save({"obs": obs, "avail": avail, "state": state}, path)
    return obs, avail, state, path


def _load_isolated(folder, inputs, tmp_path):
    result = tmp_path / "result.pt"
    proc = subprocess.run([sys.executable, "-I", "-c", LOADER, str(folder), str(inputs), str(result)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return torch.load(result, weights_only=False)


@pytest.mark.parametrize("algo", ["macql", "bc"])
def test_export_matches_the_policy_without_logo_cli(runner, runs, tmp_path, algo):
    out = tmp_path / f"{algo}-export"
    res = runner.invoke(app, ["export", str(runs[algo]), "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["mode"] == ("q" if algo == "macql" else "logits")
    assert summary["mixer"] is (algo == "macql") and summary["round_trip"]["greedy_actions_equal"]
    files = {"agent.pt", "export.json", "manifest.json"} | ({"mixer.pt"} if algo == "macql" else set())
    assert {p.name for p in out.iterdir()} == files

    obs, avail, state, inputs = _inputs(tmp_path)
    got = _load_isolated(out, inputs, tmp_path)
    policy = load_policy(runs[algo] / "policy.pt")
    rng = np.random.default_rng(0)
    expected = policy.act(obs.numpy(), state.numpy(), avail.numpy(), greedy=True, rng=rng)
    assert np.array_equal(got["actions"].numpy(), expected)
    assert np.array_equal(got["act"].numpy(), expected)
    assert avail.gather(-1, got["actions"].unsqueeze(-1)).all()  # never an unavailable action
    with torch.no_grad():
        ref_values = policy.net(obs)
    torch.testing.assert_close(got["values"], ref_values)
    assert torch.equal(got["unmasked"], ref_values.argmax(-1))
    assert not torch.equal(got["unmasked"], got["actions"])  # the mask did change some choices
    assert "obs must be" in got["bad_shape"]
    assert len(got["tracks_grad"]) > 2 and not any(got["tracks_grad"])  # inference mode

    meta = got["meta"]
    assert meta == json.loads((out / "export.json").read_text())
    assert (meta["n_agents"], meta["obs_dim"], meta["n_actions"], meta["state_dim"]) == (N, OD, A, S)
    assert meta["mode"] == summary["mode"] and "one-hot" in meta["agent_input"]
    if algo == "macql":
        # The mixer as training used it: QMixer on the state standardised with the run's statistics.
        from logo_cli.algos.macql import MacqlNets

        payload = torch.load(runs[algo] / "policy.pt", weights_only=True)
        nets = MacqlNets(Dims(N, OD, S, A), hidden=16, layers=1)
        nets.mixer.load_state_dict(payload["mixer"]["state_dict"])
        nets.state_mean.copy_(payload["mixer"]["state_mean"])
        nets.state_std.copy_(payload["mixer"]["state_std"])
        assert not torch.allclose(nets.state_std, torch.ones(S))  # standardisation is really in play
        q = ref_values.gather(-1, got["actions"].unsqueeze(-1)).squeeze(-1)
        with torch.no_grad():
            torch.testing.assert_close(got["q_tot"], nets.mixer(q, nets.norm_state(state)))
    else:
        assert "q_tot" not in got


def test_export_from_a_policy_file_and_overwrite(runner, runs, tmp_path):
    out = tmp_path / "e"
    res = runner.invoke(app, ["export", str(runs["bc"] / "policy.pt"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "agent.pt").is_file()
    res = runner.invoke(app, ["inspect", str(out), "--json"])
    assert res.exit_code == 0, res.output
    described = json.loads(res.stdout)
    assert described["stage"] == "export" and described["extra"]["export"]["files"] == ["agent.pt"]
    assert [c["format"] for c in described["checkpoints"]] == ["torchscript"]
    res = runner.invoke(app, ["export", str(runs["macql"]), "--out", str(out)])
    assert res.exit_code == 2 and "already exists" in res.output
    res = runner.invoke(app, ["export", str(runs["macql"]), "--out", str(out), "--overwrite"])
    assert res.exit_code == 0, res.output
    assert (out / "mixer.pt").is_file()


def test_bad_inputs_are_one_line(runner, runs, tmp_path):
    def one_line(args, *needles):
        res = runner.invoke(app, args)
        assert res.exit_code == 2, res.output
        lines = res.output.strip().splitlines()
        assert len(lines) == 1 and all(n in lines[0] for n in needles), res.output

    out = tmp_path / "e"
    text = tmp_path / "notes.pt"
    text.write_text("not a policy\n")
    one_line(["export", str(text), "--out", str(out)], "notes.pt", "not a valid logo checkpoint")
    data = write_data(tmp_path / "d.h5")
    one_line(["export", str(data), "--out", str(out)], "d.h5", "HDF5")
    one_line(["export", str(tmp_path / "missing.pt"), "--out", str(out)], "not found")
    pickled = tmp_path / "code.pt"
    torch.save({"format": "logo-policy", "fn": np.random.default_rng}, pickled)  # not plain data
    one_line(["export", str(pickled), "--out", str(out)], "code.pt", "not plain data")
    # A mixer whose weights do not fit the policy's dims.
    payload = torch.load(runs["macql"] / "policy.pt", weights_only=True)
    payload["mixer"]["state_mean"] = torch.zeros(S + 1)
    bad = tmp_path / "bad.pt"
    torch.save(payload, bad)
    one_line(["export", str(bad), "--out", str(out)], "bad.pt", "garbled mixer", "state_mean")
    # Something that is not an export is never replaced.
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("x")
    one_line(["export", str(runs["bc"]), "--out", str(tmp_path / "other"), "--overwrite"], "not an export")
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".e.")]


def test_a_failed_write_leaves_nothing(runner, runs, tmp_path, monkeypatch):
    import errno

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch.jit, "save", full_disk)
    out = tmp_path / "e"
    res = runner.invoke(app, ["export", str(runs["macql"]), "--out", str(out)])
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0] and "nothing was written" in lines[0]
    assert list(tmp_path.iterdir()) == [] or all(p.name.endswith(".lock") for p in tmp_path.iterdir())


def test_source_defaults_to_the_newest_train_policy_run(runner, tmp_path):
    out = tmp_path / "e"
    res = runner.invoke(app, ["export", "--out", str(out)])
    assert res.exit_code == 2 and "no finished train-policy run" in res.output, res.output
    data = write_data(tmp_path / "toy_medium.h5")
    run_dir = tmp_path / "runs" / "mine"
    res = runner.invoke(
        app, ["train-policy", "--data", str(data), "--steps", "2", "--out", str(run_dir), *TINY]
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["export", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    assert "newest train-policy run" in res.stderr
    assert json.loads(res.stdout)["policy"].endswith("mine/policy.pt")
