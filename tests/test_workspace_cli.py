"""The workspace through the real CLI: stages chain by themselves, `logo status`, staleness, isolation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_rollout_cli import write_data

import logo_cli.envs
from logo_cli.cli import app
from logo_cli.data.zarr_store import open_synthetic
from logo_cli.envs.base import EnvObs, EnvSpec, EnvStep

SHIPPED = Path(__file__).resolve().parents[1] / "datasets" / "smax_3m_medium.h5"
TINY_WM = ["--batch-size", "32", "--hidden", "16", "--latent", "8", "--holdout", "0.25", "--device", "cpu"]
TINY_POLICY = [
    "--batch-size",
    "16",
    "--hidden",
    "16",
    "--layers",
    "1",
    "--cql-samples",
    "4",
    "--device",
    "cpu",
]
TINY_ROLLOUT = [
    "--n-starts",
    "20",
    "--horizon",
    "3",
    "--bc-steps",
    "5",
    "--batch-size",
    "16",
    "--device",
    "cpu",
]


class Smax3m:
    """A stand-in simulator with SMAX 3m's dims: every episode lasts two steps and is won."""

    def __init__(self, num_envs: int):
        self.num_envs, self.t = num_envs, 0
        self.spec = EnvSpec("smax:3m", 3, 75, 72, 8, True, 2, noop_action=4)

    def _obs(self) -> EnvObs:
        b = self.num_envs
        return EnvObs(
            np.zeros((b, 3, 75), np.float32), np.zeros((b, 72), np.float32), np.ones((b, 3, 8), bool)
        )

    def reset(self, seed: int) -> EnvObs:
        self.t = 0
        return self._obs()

    def step(self, actions: np.ndarray) -> EnvStep:
        self.t += 1
        done = np.full(self.num_envs, self.t % 2 == 0)
        reward = np.ones(self.num_envs, np.float32)
        return EnvStep(self._obs(), reward, done, np.zeros_like(done), done, self._obs())

    def close(self) -> None:
        pass


def ok(res):
    assert res.exit_code == 0, res.output
    return res


def using_lines(res) -> list[str]:
    return [line for line in res.stderr.splitlines() if line.startswith("using ")]


def one_line_error(res, *needles):
    """Exit code 2 and exactly one line on stderr (no progress bar, no blank line before it)."""
    assert res.exit_code == 2, res.output
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert all(n in lines[0] for n in needles), lines[0]
    assert res.stdout == ""


def status(runner, *args) -> dict:
    res = ok(runner.invoke(app, ["status", "--json", *args]))
    return {row["stage"]: row for row in json.loads(res.stdout)["stages"]}


def test_the_three_lines_then_train_policy_and_evaluate_in_an_empty_folder(runner, tmp_path, monkeypatch):
    work = tmp_path / "empty"
    work.mkdir()
    shutil.copy(SHIPPED, work / "smax_3m_medium.h5")
    monkeypatch.chdir(work)
    monkeypatch.delenv("LOGO_WORKSPACE")  # the default: ./runs
    assert [p.name for p in work.iterdir()] == ["smax_3m_medium.h5"]

    ok(runner.invoke(app, "pretrain --data smax_3m_medium.h5 --steps 5 --hidden 16 --latent 8".split()))
    res = ok(runner.invoke(app, "rollout --horizon 15".split()))
    assert using_lines(res) == [
        "using runs/pretrain/smax_3m_medium-logo-s0 (newest pretrain run) for --model",
        "using smax_3m_medium.h5 (the dataset runs/pretrain/smax_3m_medium-logo-s0 was trained on) "
        "for --data",
    ]
    res = ok(runner.invoke(app, ["calibrate"]))
    assert len(using_lines(res)) == 2

    buf = open_synthetic(work / "runs" / "rollout" / "smax_3m_medium-logo-s0-h15-s0.zarr")
    assert buf.complete and buf.n > 0 and buf.attrs["horizon"] == 15
    assert buf.attrs["model"]["run"] == "runs/pretrain/smax_3m_medium-logo-s0"
    assert buf.attrs["source_data"]["path"] == "smax_3m_medium.h5" and buf.attrs["data_matches_pretrain"]
    assert buf.attrs["defaults"] == {
        "model": "runs/pretrain/smax_3m_medium-logo-s0",
        "data": "smax_3m_medium.h5",
    }
    cal = work / "runs" / "calibrate" / "smax_3m_medium-logo-s0"
    metrics = json.loads((cal / "metrics.json").read_text())
    assert metrics["data"]["episodes"] == "episodes held out by every run"  # the run's held-out split
    assert [m["run"] for m in metrics["models"]] == ["runs/pretrain/smax_3m_medium-logo-s0"]
    manifest = json.loads((cal / "manifest.json").read_text())
    assert manifest["defaults"] == {
        "model": "runs/pretrain/smax_3m_medium-logo-s0",
        "data": "smax_3m_medium.h5",
    }

    # train-policy and evaluate chain the same way
    res = ok(runner.invoke(app, ["train-policy", "--steps", "3", *TINY_POLICY]))
    assert using_lines(res)[0] == (
        "using runs/rollout/smax_3m_medium-logo-s0-h15-s0.zarr (newest rollout buffer) for --synthetic"
    )
    policy = work / "runs" / "policy" / "smax_3m_medium-macql-weight-s0"
    manifest = json.loads((policy / "manifest.json").read_text())
    assert manifest["config"]["synthetic"] == "runs/rollout/smax_3m_medium-logo-s0-h15-s0.zarr"
    assert manifest["config"]["data"] == "smax_3m_medium.h5" and manifest["config"]["mode"] == "weight"
    assert manifest["defaults"] == {
        "synthetic": "runs/rollout/smax_3m_medium-logo-s0-h15-s0.zarr",
        "data": "smax_3m_medium.h5",
    }
    asked = []  # the simulator is a stand-in with SMAX 3m's dims (the real one is covered in
    # test_train_policy_cli; its start-up would triple this test's time): this checks the chaining
    monkeypatch.setattr(
        logo_cli.envs, "make_env", lambda name, num_envs=1, **kw: asked.append(name) or Smax3m(num_envs)
    )
    res = ok(runner.invoke(app, ["evaluate", "--episodes", "2", "--num-envs", "2", "--device", "cpu"]))
    assert using_lines(res) == [
        "using runs/policy/smax_3m_medium-macql-weight-s0 (newest train-policy run) for --policy",
        "using smax:3m (named by the dataset runs/policy/smax_3m_medium-macql-weight-s0 was trained on) "
        "for --env",
    ]
    assert asked == ["smax:3m"]
    ev = json.loads(
        (work / "runs" / "evaluate" / "smax_3m_medium-macql-weight-s0-smax_3m-s0.json").read_text()
    )
    assert ev["stage"] == "evaluate" and ev["env"] == "smax:3m" and ev["episodes"] == 2 == ev["wins"]
    # inputs are recorded absolute and relative to the result's folder (found from any directory)
    policy_pt = "policy/smax_3m_medium-macql-weight-s0/policy.pt"
    assert ev["inputs"]["policy"]["path"] == str(work / "runs" / policy_pt)
    assert ev["inputs"]["policy"]["relative"] == f"../{policy_pt}"
    assert ev["defaults"] == {"policy": "runs/policy/smax_3m_medium-macql-weight-s0", "env": "smax:3m"}

    rows = status(runner)
    assert {s: (r["state"], r["stale"]) for s, r in rows.items()} == {
        s: ("complete", False) for s in ("pretrain", "rollout", "train-policy", "evaluate", "calibrate")
    }
    assert rows["rollout"]["inputs"]["model"]["from"]["artifact"] == "runs/pretrain/smax_3m_medium-logo-s0"
    index = json.loads((work / "runs" / "index.json").read_text())
    assert index["latest"]["train-policy"] == "policy/smax_3m_medium-macql-weight-s0"


@pytest.fixture
def toy(runner, tmp_path):
    """A toy dataset and two finished pretrain runs in this test's workspace (tmp_path/runs)."""
    data = write_data(tmp_path / "toy_medium.h5")
    for kind in ("global", "logo"):  # logo is the newest
        args = ["pretrain", "--data", str(data), "--kind", kind, "--steps", "4", *TINY_WM]
        ok(runner.invoke(app, args))
    return (
        data,
        tmp_path / "runs" / "pretrain" / "toy_medium-global-s0",
        tmp_path / "runs" / "pretrain" / "toy_medium-logo-s0",
    )


def test_an_explicit_option_overrides_the_default(runner, toy, tmp_path):
    data, older, newest = toy
    res = ok(runner.invoke(app, ["rollout", "--model", str(older), *TINY_ROLLOUT]))
    assert len(using_lines(res)) == 1 and "for --data" in using_lines(res)[0]  # only --data defaulted
    buf = open_synthetic(tmp_path / "runs" / "rollout" / "toy_medium-global-s0-h3-s0.zarr")
    assert buf.attrs["model"]["run"] == str(older) and buf.attrs["defaults"] == {"data": str(data)}

    out = tmp_path / "elsewhere" / "buf.zarr"  # --out anywhere still works, and becomes the newest
    res = ok(runner.invoke(app, ["rollout", "--data", str(data), "--out", str(out), *TINY_ROLLOUT]))
    assert using_lines(res) == [f"using {newest} (newest pretrain run) for --model"]
    assert open_synthetic(out).attrs["defaults"] == {"model": str(newest)}
    assert status(runner)["rollout"]["artifact"] == str(out)

    res = ok(runner.invoke(app, ["status", "--all", "--json"]))
    every = [(r["stage"], r["artifact"]) for r in json.loads(res.stdout)["stages"] if r["artifact"]]
    assert every[:2] == [("pretrain", str(newest)), ("pretrain", str(older))]

    # calibrate compares the newest run of each kind made from the same data and split
    res = ok(runner.invoke(app, ["calibrate", "--horizon", "2", "--device", "cpu", "--json"]))
    assert [m["kind"] for m in json.loads(res.stdout)["models"]] == ["logo", "global"]
    res = ok(runner.invoke(app, ["calibrate", "--model", str(older), "--horizon", "2", "--device", "cpu"]))
    manifest = json.loads(
        (tmp_path / "runs" / "calibrate" / "toy_medium-global-s0" / "manifest.json").read_text()
    )
    assert manifest["config"]["models"] == [str(older)] and manifest["defaults"] == {"data": str(data)}

    # --mode real-only adds no synthetic source; the newest buffer still names the dataset
    res = ok(runner.invoke(app, ["train-policy", "--mode", "real-only", "--steps", "2", *TINY_POLICY]))
    assert using_lines(res) == [f"using {data} (the dataset {out} was made from) for --data"]
    # a dataset nothing was made from: no default model for rollout, real data only for train-policy
    other = write_data(tmp_path / "other_medium.h5", seed=1)
    one_line_error(
        runner.invoke(app, ["rollout", "--data", str(other), *TINY_ROLLOUT]),
        f"no finished pretrain run made from {other}",
        f"run `logo pretrain --data {other}` first",
    )
    res = ok(
        runner.invoke(app, ["train-policy", "--data", str(other), "--steps", "2", "--json", *TINY_POLICY])
    )
    assert json.loads(res.stdout)["mode"] == "real-only" and using_lines(res) == []


def test_train_policy_falls_back_to_the_world_model_and_skips_an_interrupted_run(runner, toy, tmp_path):
    data, older, newest = toy
    (newest / "manifest.json").unlink()  # as if interrupted: checkpoint.pt without manifest.json
    args = ["train-policy", "--steps", "2", "--refresh-every", "0", "--rollout-starts", "8", "--horizon", "2"]
    res = ok(runner.invoke(app, [*args, "--bc-steps", "2", *TINY_POLICY]))
    assert using_lines(res)[0] == (
        f"using {older} (newest pretrain run, rolled out in memory; {newest} is interrupted: "
        "rerun its command to finish it) for --model"
    )
    manifest = json.loads(
        (tmp_path / "runs" / "policy" / "toy_medium-macql-weight-s0" / "manifest.json").read_text()
    )
    assert manifest["synthetic"]["kind"] == "model" and manifest["config"]["model"] == str(older)
    assert status(runner)["pretrain"]["state"] == "interrupted"


def test_nothing_to_chain_from_names_the_command_to_run_first(runner):
    one_line_error(
        runner.invoke(app, ["rollout"]), "no finished pretrain run", "`logo pretrain --data DATA.h5`"
    )
    one_line_error(
        runner.invoke(app, ["calibrate"]), "no finished pretrain run", "`logo pretrain --data DATA.h5`"
    )
    one_line_error(runner.invoke(app, ["train-policy"]), "nothing to train on", "`logo rollout`")
    one_line_error(runner.invoke(app, ["evaluate"]), "no finished train-policy run", "`logo train-policy`")
    one_line_error(runner.invoke(app, ["pretrain"]), "--data", "no dataset recorded")
    res = ok(runner.invoke(app, ["status"]))
    assert "nothing recorded" in res.stdout


def test_a_misspelt_data_prints_one_line_before_any_progress_bar(runner, toy, tmp_path):
    data, older, newest = toy
    nope = str(tmp_path / "nope.h5")
    one_line_error(runner.invoke(app, ["pretrain", "--data", nope, "--steps", "2"]), nope, "no such file")
    one_line_error(runner.invoke(app, ["rollout", "--model", str(newest), "--data", nope]), nope)
    one_line_error(runner.invoke(app, ["rollout", "--data", nope]), nope)
    one_line_error(runner.invoke(app, ["calibrate", "--data", nope]), nope)
    one_line_error(runner.invoke(app, ["train-policy", "--data", nope, "--steps", "2"]), nope)
    # a bad input found inside the stage (not a path check) also prints alone
    res = runner.invoke(app, ["pretrain", "--data", str(data), "--out", str(newest), "--steps", "2"])
    one_line_error(res, "finished pretrain run")


def test_status_reports_a_stale_input(runner, toy, tmp_path):
    data, older, newest = toy
    ok(runner.invoke(app, ["rollout", *TINY_ROLLOUT]))
    rows = status(runner)
    assert not rows["pretrain"]["stale"] and not rows["rollout"]["stale"]
    assert rows["pretrain"]["artifact"] == str(newest)

    data.touch()  # same content, new mtime: hashed again, still up to date
    assert not status(runner)["pretrain"]["stale"]

    # retraining the world model in place makes the buffer made from it stale, and what came after
    ok(runner.invoke(app, ["pretrain", "--data", str(data), "--steps", "2", "--overwrite", *TINY_WM]))
    ok(runner.invoke(app, ["train-policy", "--steps", "2", *TINY_POLICY]))
    rows = status(runner)
    assert not rows["pretrain"]["stale"]
    assert rows["rollout"]["reasons"] == ["model changed since"]
    assert rows["rollout"]["inputs"]["model"]["state"] == "changed"
    assert rows["train-policy"]["reasons"] == ["synthetic comes from a stale rollout run"]

    write_data(data, seed=5)  # the dataset itself changes
    rows = status(runner)
    assert rows["pretrain"]["reasons"] == ["data changed since"]
    assert rows["pretrain"]["inputs"]["data"]["state"] == "changed"
    res = ok(runner.invoke(app, ["status"], env={"COLUMNS": "200"}))
    line = next(
        li for li in res.stdout.splitlines() if "pretrain/toy_medium-logo-s0" in li and "complete" in li
    )
    assert "yes: data changed since" in line
    data.unlink()
    assert status(runner)["pretrain"]["reasons"] == ["data missing since"]


def test_a_lost_or_corrupt_index_is_rebuilt_by_scanning(runner, toy, tmp_path):
    data, older, newest = toy
    index = tmp_path / "runs" / "index.json"
    before = status(runner)
    index.unlink()
    res = ok(runner.invoke(app, ["status", "--json"]))
    assert json.loads(res.stdout)["source"] == "scan" and "index.json is missing" in res.stderr
    after = {row["stage"]: row for row in json.loads(res.stdout)["stages"]}
    assert after["pretrain"]["artifact"] == before["pretrain"]["artifact"] == str(newest)  # by creation time
    index.write_text("{not json")
    res = ok(runner.invoke(app, ["rollout", *TINY_ROLLOUT]))
    warnings = [line for line in res.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "unreadable" in warnings[0] and "scanning" in warnings[0]
    assert json.loads(index.read_text())["latest"] == {
        "pretrain": "pretrain/toy_medium-logo-s0",
        "rollout": "rollout/toy_medium-logo-s0-h3-s0.zarr",
    }


def test_two_workspaces_do_not_see_each_other(runner, tmp_path, monkeypatch):
    data = write_data(tmp_path / "toy_medium.h5")
    a, b = tmp_path / "ws_a", tmp_path / "ws_b"
    args = ["pretrain", "--data", str(data), "--steps", "2", *TINY_WM]
    ok(runner.invoke(app, [*args, "--workspace", str(a)]))
    assert (a / "pretrain" / "toy_medium-logo-s0" / "model.pt").is_file()
    one_line_error(runner.invoke(app, ["rollout", "--workspace", str(b)]), f"in workspace {b}")
    monkeypatch.setenv("LOGO_WORKSPACE", str(b))
    one_line_error(runner.invoke(app, ["rollout"]), f"in workspace {b}")
    assert status(runner)["pretrain"]["artifact"] is None
    ok(runner.invoke(app, args))  # same run name, in workspace b
    ok(runner.invoke(app, ["rollout", *TINY_ROLLOUT]))
    assert status(runner)["rollout"]["artifact"] == str(b / "rollout" / "toy_medium-logo-s0-h3-s0.zarr")
    assert status(runner, "--workspace", str(a))["rollout"]["artifact"] is None
    assert not (a / "rollout").exists()


def test_a_copied_project_reads_its_own_files(runner, tmp_path, monkeypatch):
    """The index stores paths relative to the workspace, outside it too (`../data.h5`), so a copy of
    a project folder (its data and its runs/) chains from and checks staleness against its own
    files; an index of absolute paths (older versions) is still read."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    write_data(a / "toy_medium.h5")
    monkeypatch.delenv("LOGO_WORKSPACE")  # the default: ./runs
    monkeypatch.chdir(a)
    ok(runner.invoke(app, ["pretrain", "--data", "toy_medium.h5", "--steps", "4", *TINY_WM]))
    entry = json.loads((a / "runs" / "index.json").read_text())["artifacts"][0]
    assert entry["path"] == "pretrain/toy_medium-logo-s0"
    assert entry["inputs"]["data"]["path"] == "../toy_medium.h5"
    assert entry["inputs"]["data"]["absolute"] == str(a / "toy_medium.h5")

    shutil.copytree(a, b)
    monkeypatch.chdir(b)
    res = ok(runner.invoke(app, ["rollout", *TINY_ROLLOUT]))
    assert using_lines(res)[1] == (
        "using toy_medium.h5 (the dataset runs/pretrain/toy_medium-logo-s0 was trained on) for --data"
    )  # the copy's file (the original would be shown as an absolute path from here)
    write_data(b / "toy_medium.h5", seed=5)  # the copy's data changes; the original's does not
    assert status(runner)["pretrain"]["reasons"] == ["data changed since"]
    monkeypatch.chdir(a)
    assert not status(runner)["pretrain"]["stale"]

    # an index written with absolute paths outside the workspace is read as it is
    index = json.loads((a / "runs" / "index.json").read_text())
    data = index["artifacts"][0]["inputs"]["data"]
    data["path"] = data.pop("absolute")
    (a / "runs" / "index.json").write_text(json.dumps(index))
    row = status(runner)["pretrain"]
    assert row["inputs"]["data"]["path"] == "toy_medium.h5" and not row["stale"]
