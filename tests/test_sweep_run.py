"""`logo sweep` on a real local Ray (2 CPUs, one instance for the module): the tiny shipped grid runs,
shared work runs once, a rerun does nothing, a changed option reruns only what it reaches, a killed
worker's task is retried, and a broken dataset skips only its dependants."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from logo_cli.cli import app

ray = pytest.importorskip("ray")

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "scripts" / "grids" / "smax_3m_tiny.toml"


@pytest.fixture(scope="module", autouse=True)
def local_ray(request):
    """One local Ray for every test here: its workers stay warm (torch imported, SMAX compiled), and
    every worker reads the SMAX step from one JAX compilation cache, kept in pytest's cache folder
    so that later test runs skip most of the compilation."""
    from logo_cli.sweep.execute import start_ray

    with pytest.MonkeyPatch.context() as mp:  # workers inherit the environment Ray starts with
        mp.setenv("JAX_COMPILATION_CACHE_DIR", str(request.config.cache.mkdir("sweep-jax-cache")))
        start_ray(None, 2)
    yield
    ray.shutdown()


def sweep(grid: Path, root: Path, *extra: str) -> tuple[int, dict, str]:
    result = CliRunner().invoke(app, ["sweep", str(grid), "--root", str(root), "--json", *extra])
    summary = (
        json.loads((root / "sweep_summary.json").read_text())
        if (root / "sweep_summary.json").exists()
        else {}
    )
    return result.exit_code, summary, result.output


def variant(tmp_path: Path, old: str, new: str) -> Path:
    """The tiny grid with one part changed; its dataset paths made absolute, so the datasets' keys
    stay the shipped grid's."""
    text = TINY.read_text().replace('"../../datasets/', f'"{REPO}/datasets/')
    assert old in text
    path = tmp_path / "grid.toml"
    path.write_text(text.replace(old, new))
    return path


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    """The tiny grid run once for the tests below; the first attempt of one task (copying the
    medium dataset) kills its worker process, as an OOM kill or a lost node would."""
    root = tmp_path_factory.mktemp("sweep") / "tiny"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LOGO_SWEEP_TEST_CRASH", "dataset:medium")
        code, summary, output = sweep(TINY, root)
    assert code == 0, output
    return root, summary


def test_the_tiny_grid_completes_with_shared_work_run_once(tiny_root):
    root, summary = tiny_root
    assert summary["complete"] and summary["failed"] == 0
    # 2 datasets, a world model per dataset x seed (logo-weight's; bc needs none), 2 x 2 x 2 policies
    assert summary["executed"] == {"dataset": 2, "pretrain": 4, "train-policy": 8, "evaluate": 8}
    for t in summary["tasks"]:
        assert t["node_id"] and t["attempts"] == (2 if t["label"] == "medium" else 1)
        assert (root / t["stage"] / t["key"] / "task.json").is_file()
    ev = next(t for t in summary["tasks"] if t["stage"] == "evaluate")
    result = json.loads((root / "evaluate" / ev["key"] / "eval.json").read_text())
    assert result["episodes"] == 2 and result["config"]["seed"] == 10000 + int(ev["label"][-1])
    logs = list((root / "logs").glob("*.log"))
    assert len(logs) == 22 and any("logo train-policy" in p.read_text() for p in logs)


def test_a_rerun_does_no_work(tiny_root):
    root, _ = tiny_root
    code, summary, output = sweep(TINY, root)
    assert code == 0, output
    assert summary["executed"] == {"dataset": 0, "pretrain": 0, "train-policy": 0, "evaluate": 0}
    assert all(t["status"] == "cached" for t in summary["tasks"])


def test_a_changed_policy_option_reruns_only_policies_and_evaluations(tiny_root, tmp_path):
    root, _ = tiny_root
    grid = variant(tmp_path, "[evaluate]", "[train-policy.bc]\nlr = 0.01\n\n[evaluate]")
    code, summary, output = sweep(grid, root)
    assert code == 0, output
    # bc's 2 qualities x 2 seeds; nothing shared and no logo-weight policy is redone
    assert summary["executed"] == {"dataset": 0, "pretrain": 0, "train-policy": 4, "evaluate": 4}
    ran = {t["label"] for t in summary["tasks"] if t["status"] == "ran"}
    assert ran == {f"{q}/bc/s{s}" for q in ("medium", "expert") for s in (0, 1)}


def test_a_task_whose_worker_dies_is_retried_and_the_grid_completes(tiny_root):
    _, summary = tiny_root  # run with the medium dataset's first attempt killing its worker
    crashed = next(t for t in summary["tasks"] if t["stage"] == "dataset" and t["label"] == "medium")
    assert crashed["status"] == "ran" and crashed["attempts"] == 2
    assert summary["complete"] and summary["failed"] == 0


def test_a_broken_dataset_skips_its_dependants_and_the_rest_completes(tmp_path):
    broken = tmp_path / "broken.h5"
    broken.write_bytes(b"not an hdf5 file" * 64)
    grid = variant(tmp_path, f'expert = "{REPO}/datasets/smax_3m_expert.h5"', f'expert = "{broken}"')
    text = grid.read_text().replace(
        'methods = ["logo-weight", "bc"]\nseeds = [0, 1]', 'methods = ["bc"]\nseeds = [0]'
    )
    grid.write_text(text)
    code, summary, output = sweep(grid, tmp_path / "root")
    assert code == 2
    status = {(t["stage"], t["label"]): t["status"] for t in summary["tasks"]}
    assert status == {
        ("dataset", "medium"): "ran",
        ("dataset", "expert"): "failed",
        ("train-policy", "medium/bc/s0"): "ran",
        ("train-policy", "expert/bc/s0"): "skipped",
        ("evaluate", "medium/bc/s0"): "ran",
        ("evaluate", "expert/bc/s0"): "skipped",
    }
    failed = next(t for t in summary["tasks"] if t["status"] == "failed")
    assert str(broken) in failed["error"] and Path(failed["log"]).is_file()
    assert f"failed: dataset expert: {failed['error']}" in output and failed["log"] in output
    assert output.strip().splitlines()[-1].startswith("error: 1 task(s) failed, 2 skipped")


def test_the_report_aggregates_the_finished_evaluations(tiny_root, tmp_path):
    root, _ = tiny_root
    shutil.rmtree(root / "report", ignore_errors=True)
    result = CliRunner().invoke(app, ["sweep", str(TINY), "--root", str(root), "--dry-run", "--report"])
    assert result.exit_code == 0, result.output
    doc = json.loads((root / "results.json").read_text())
    assert len(doc["runs"]) == 8 and not doc["missing"]
    assert {(c["quality"], c["method"], c["n"]) for c in doc["cells"]} == {
        (q, m, 2) for q in ("medium", "expert") for m in ("logo-weight", "bc")
    }
    assert not [r for r in doc["runs"] if r["problems"]]  # each policy's manifest matches its method
    assert doc["wall_time"]["steps_ran"] >= 22


def test_ctrl_c_stops_the_running_tasks_and_a_rerun_continues(tmp_path):
    """A real Ctrl-C (SIGINT to a `logo sweep` process with its own local Ray): exit 130 within
    seconds, no Ray process of it left, the finished artifacts kept for the rerun."""
    import os
    import signal
    import subprocess
    import sys
    import time

    root = tmp_path / "root"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    grid = variant(
        tmp_path, 'methods = ["logo-weight", "bc"]\nseeds = [0, 1]', 'methods = ["bc"]\nseeds = [0]'
    )
    cmd = [sys.executable, "-m", "logo_cli", "sweep", str(grid), "--root", str(root), "--num-cpus", "2"]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        for line in proc.stderr:  # a plain line whenever the counts change (stderr is a pipe)
            if " 2 ran," in line or time.monotonic() > deadline:
                break
        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        rest = proc.stderr.read()
        assert proc.wait(timeout=60) == 130
        assert time.monotonic() - t0 < 30 and rest.strip().splitlines()[-1] == "interrupted"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    finished = {p.parent.name for p in root.glob("*/*/task.json")}
    assert len(finished) >= 2
    code, summary, output = sweep(grid, root)  # on this module's Ray
    assert code == 0, output
    cached = {t["key"] for t in summary["tasks"] if t["status"] == "cached"}
    assert cached == finished and summary["complete"]
