"""Tracking: metrics.jsonl of pretrain, TensorBoard / W&B trackers, plain progress lines off a terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_models_dynamics import NOOP, episodes
from test_train_policy_resume import write_data

from logo_cli.cli import app
from logo_cli.data.h5 import write_dataset

SMALL = ["--hidden", "32", "--latent", "8", "--batch-size", "64", "--device", "cpu"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("tracking") / "toy_medium.h5"
    write_dataset(path, episodes(40, seed=0), {"map_name": "toy", "noop_action": NOOP})
    return path


def lines(run_dir: Path, kind: str) -> list[dict]:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [x for x in rows if x["kind"] == kind]


def scalars(tb_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series in a TensorBoard log folder, read by TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_pretrain_writes_metrics_jsonl(runner, data, tmp_path):
    out = tmp_path / "run"
    res = runner.invoke(
        app, ["pretrain", "--data", str(data), "--out", str(out), "--max-epochs", "3", "--log-every", "5",
              *SMALL, "--json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    total = json.loads(res.stdout)["train_steps"]
    train, evals = lines(out, "train"), lines(out, "eval")
    assert (
        [x["step"] for x in train] == [*range(5, total, 5), total]
        if total % 5
        else list(range(5, total + 1, 5))
    )
    assert all(x["loss"] > 0 and x["steps_per_s"] > 0 and x["wall_time"] > 1.6e9 for x in train)
    times = [x["wall_time"] for x in train]
    assert times == sorted(times)
    manifest = json.loads((out / "manifest.json").read_text())
    # one eval line per evaluation, the same numbers as the manifest's history
    assert [(x["step"], x["heldout_loss"]) for x in evals] == [
        (h["step"], h["heldout_loss"]) for h in manifest["history"]
    ]
    assert evals[-1]["best_heldout_loss"] == min(x["heldout_loss"] for x in evals)
    (final,) = lines(out, "final")  # the best weights' held-out metrics, as the manifest has them
    assert final["step"] == total and final["next_state_rmse"] == manifest["metrics"]["next_state_rmse"]
    assert final["reward_mae"] == manifest["metrics"]["reward_mae"] and final["parameters"] > 0


def test_pretrain_resume_drops_lines_after_the_checkpoint(data, tmp_path):
    """An interrupted + resumed run logs the lines (and TensorBoard points) of an uninterrupted one."""
    from logo_cli.stages.pretrain import PretrainConfig, run

    kw = dict(data=data, hidden=32, latent=8, batch_size=64, max_steps=30, log_every=3, logger="tensorboard")
    run(PretrainConfig(out=tmp_path / "whole", **kw))

    def stop(step, total, info):
        if step >= 20:
            raise KeyboardInterrupt

    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        run(PretrainConfig(out=cut, **kw), progress=stop)
    # the interrupted session logged past nothing it will not redo; make it look like it had
    with open(cut / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 21, "kind": "train", "loss": -1.0}) + "\n")
    assert max(x["step"] for x in lines(cut, "train")) == 21
    run(PretrainConfig(out=cut, **kw))

    def numbers(run_dir, kind):
        # timings differ, and an eval's train_loss is the mean since the session (re)started
        skip = ("wall_time", "steps_per_s", "train_loss")
        return [{k: v for k, v in x.items() if k not in skip} for x in lines(run_dir, kind)]

    assert numbers(cut, "train") == numbers(tmp_path / "whole", "train")
    assert numbers(cut, "eval") == numbers(tmp_path / "whole", "eval")
    tb = scalars(cut / "tb")
    steps = [s for s, _ in tb["train/loss"]]
    assert steps == [x["step"] for x in lines(cut, "train")]  # each step once, in order
    assert [v for _, v in tb["train/loss"]] == pytest.approx([x["loss"] for x in lines(cut, "train")])


def test_a_pretrain_killed_before_its_first_checkpoint_starts_afresh(runner, data, tmp_path):
    out = tmp_path / "run"
    (out / "tb").mkdir(parents=True)  # what a run killed (kill -9) before its first checkpoint leaves
    (out / "tb" / "events.out.tfevents.1.host.1.0").write_bytes(b"")
    (out / "metrics.jsonl").write_text(json.dumps({"step": 3, "kind": "train", "loss": 9.0}) + "\n")
    res = runner.invoke(app, ["pretrain", "--data", str(data), "--out", str(out), "--steps", "4",
                              "--log-every", "2", *SMALL])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert [x["step"] for x in lines(out, "train")] == [2, 4] and not (out / "tb").exists()


def test_pretrain_tensorboard_event_files(runner, data, tmp_path):
    out = tmp_path / "run"
    res = runner.invoke(
        app, ["pretrain", "--data", str(data), "--out", str(out), "--max-epochs", "2", "--log-every", "4",
              "--logger", "tensorboard", *SMALL],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert list((out / "tb").glob("events.out.tfevents.*"))
    tb = scalars(out / "tb")
    assert {"train/loss", "train/steps_per_s", "eval/heldout_loss", "eval/best_heldout_loss"} <= set(tb)
    assert {"final/next_state_rmse", "final/reward_mae", "final/termination_accuracy"} <= set(tb)
    train = lines(out, "train")
    assert [s for s, _ in tb["train/loss"]] == [x["step"] for x in train]
    assert [v for _, v in tb["train/loss"]] == pytest.approx([x["loss"] for x in train], rel=1e-6)
    assert [s for s, _ in tb["eval/heldout_loss"]] == [x["step"] for x in lines(out, "eval")]


def test_train_policy_tensorboard_event_files(runner, tmp_path):
    data = write_data(tmp_path / "toy.h5")
    out = tmp_path / "policy"
    res = runner.invoke(
        app, ["train-policy", "--data", str(data), "--mode", "real-only", "--out", str(out),
              "--steps", "12", "--batch-size", "16", "--hidden", "16", "--layers", "1", "--cql-samples", "4",
              "--log-every", "4", "--device", "cpu", "--logger", "tensorboard"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "policy.partial").exists()  # the event files moved with the finished run
    tb = scalars(out / "tb")
    assert {"train/loss", "train/td_loss", "train/cql_gap", "train/steps_per_s"} <= set(tb)
    train = lines(out, "train")
    assert [x["step"] for x in train] == [4, 8, 12] and all(x["wall_time"] > 1.6e9 for x in train)
    assert [s for s, _ in tb["train/td_loss"]] == [4, 8, 12]
    assert [v for _, v in tb["train/td_loss"]] == pytest.approx([x["td_loss"] for x in train], rel=1e-6)


def test_train_policy_resumed_with_tensorboard_logs_each_step_once(tmp_path):
    """Interrupted at step 20 (after its step-16 checkpoint) and resumed: the event files and
    metrics.jsonl hold steps 4..24 once each, with an uninterrupted run's losses."""
    from test_train_policy_resume import base_cfg

    from logo_cli.stages.train_policy import partial_dir, run

    data = write_data(tmp_path / "toy.h5")
    run(base_cfg(data, tmp_path / "whole"))

    def interrupt(phase, done, total, info):
        if phase == "train" and done == 20:
            raise KeyboardInterrupt

    run_ = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        run(base_cfg(data, run_, logger="tensorboard"), progress=interrupt)
    assert list((partial_dir(run_) / "tb").glob("events.out.tfevents.*"))  # written in <out>.partial
    run(base_cfg(data, run_, logger="tensorboard"))
    assert not partial_dir(run_).exists()
    tb = scalars(run_ / "tb")
    steps = [x["step"] for x in lines(run_, "train")]
    assert steps == [4, 8, 12, 16, 20, 24] and [s for s, _ in tb["train/loss"]] == steps
    whole = lines(tmp_path / "whole", "train")
    assert [v for _, v in tb["train/loss"]] == pytest.approx([x["loss"] for x in whole], rel=1e-6)


def test_wandb_offline_run_files(runner, data, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_DISABLE_CODE", "true")
    out = tmp_path / "run"
    res = runner.invoke(
        app, ["pretrain", "--data", str(data), "--out", str(out), "--steps", "8", "--log-every", "4",
              "--logger", "wandb", *SMALL],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, list((out / "wandb").iterdir())
    assert list(runs[0].glob("*.wandb"))  # the run's record, for `wandb sync`
    assert os.environ.get("WANDB_MODE") == "offline"


def test_missing_tracker_package_is_one_line(runner, data, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a)
    )
    out = tmp_path / "run"
    res = runner.invoke(
        app, ["pretrain", "--data", str(data), "--out", str(out), "--logger", "wandb", *SMALL]
    )
    assert res.exit_code == 2
    assert res.stderr.strip().splitlines() == [
        "error: --logger wandb: the wandb package is not installed (pip install 'logo-cli[tracking]')"
    ]
    assert not out.exists()
    res = runner.invoke(
        app, ["pretrain", "--data", str(data), "--out", str(out), "--logger", "mlflow", *SMALL]
    )
    assert res.exit_code == 2 and "--logger mlflow: expected one of none, tensorboard, wandb" in res.stderr


def test_plain_progress_lines_when_stderr_is_not_a_terminal(data, tmp_path):
    """A real process with stderr redirected to a file prints progress lines while it trains."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LOGO_PROGRESS_EVERY": "0",
           "PYTHONPATH": str(Path(__file__).parents[1] / "src")}  # fmt: skip
    log = tmp_path / "stderr.log"
    with open(log, "w") as f:
        proc = subprocess.run(
            [sys.executable, "-m", "logo_cli", "pretrain", "--data", str(data),
             "--out", str(tmp_path / "run"), "--steps", "40", *SMALL],
            env=env, stdout=subprocess.DEVNULL, stderr=f, timeout=300,
        )  # fmt: skip
    assert proc.returncode == 0, log.read_text()
    import re

    pattern = re.compile(r"^pretrain logo: (\d+)/40 \(\d+%\), ([\d.,]+|\?)/s, ETA [\d:?]+ \| loss [\d.e+-]+")
    found = [pattern.match(line) for line in log.read_text().splitlines()]
    steps = [int(m.group(1)) for m in found if m]
    assert len(steps) >= 3 and steps == sorted(steps) and steps[0] < 40, log.read_text()
    command = json.loads((tmp_path / "run" / "manifest.json").read_text())["provenance"]["command"]
    assert command[1:4] == ["pretrain", "--data", str(data)]  # the real process's command line
