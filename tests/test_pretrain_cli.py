"""`logo pretrain` end to end on a tiny h5 of the toy dynamics, and its one-line refusals."""

from __future__ import annotations

import json

import pytest
from test_models_dynamics import NOOP, episodes

from logo_cli.artifacts import file_hash, load_checkpoint, read_manifest, save_checkpoint
from logo_cli.cli import app
from logo_cli.data.h5 import write_dataset
from logo_cli.models.world_model import world_model_from_checkpoint

SMALL = ["--hidden", "32", "--latent", "8", "--batch-size", "64", "--device", "cpu"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pretrain")
    path = tmp / "toy_medium.h5"
    write_dataset(path, episodes(40, seed=0), {"map_name": "toy", "quality": "medium", "noop_action": NOOP})
    other = tmp / "toy4_medium.h5"  # 4 agents: other dims
    write_dataset(other, episodes(10, n_agents=4, seed=1), {"noop_action": NOOP})
    return path, other


def pretrain(runner, *args: str):
    return runner.invoke(app, ["pretrain", *args])


def one_line_error(res, *fragments: str) -> None:
    assert res.exit_code == 2, res.output
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error:"), res.stderr
    assert sum(line.startswith("error:") for line in lines) == 1
    for fragment in fragments:
        assert fragment in res.stderr, res.stderr


def test_pretrain_logo_writes_model_and_manifest(runner, data, tmp_path):
    path, _ = data
    out = tmp_path / "run"
    res = pretrain(runner, "--data", str(path), "--out", str(out), "--max-epochs", "3", *SMALL, "--json")
    assert res.exit_code == 0, res.output
    metrics = json.loads(res.stdout)
    assert metrics["kind"] == "logo" and metrics["metrics_on"] == "heldout"
    assert metrics["train_steps"] > 0 and metrics["parameters"] > 0 and metrics["train_steps_per_s"] > 0
    for key in (
        "next_state_rmse",
        "next_state_rmse_norm",
        "next_obs_rmse",
        "next_obs_rmse_norm",
        "reward_mae",
    ):
        assert metrics[key] >= 0
    assert 0 <= metrics["termination_accuracy"] <= 1 and 0 <= metrics["avail_accuracy"] <= 1
    manifest = read_manifest(out, stage="pretrain")
    assert manifest["inputs"]["data"]["hash"] == file_hash(path)
    assert manifest["dims"] == {"n_agents": 3, "obs_dim": 9, "state_dim": 9, "n_actions": 5, "discrete": True}
    assert manifest["config"]["model"] == "logo" and manifest["hparams"]["noop_action"] == NOOP
    assert manifest["metrics"]["next_state_rmse"] == metrics["next_state_rmse"]
    assert len(manifest["history"]) == 3  # one evaluation per epoch
    payload = load_checkpoint(out / "model.pt")
    model = world_model_from_checkpoint(payload, "model.pt")
    assert (
        model.kind == "logo" and model.noop_action == NOOP and payload["meta"]["data_hash"] == file_hash(path)
    )
    assert (out / "checkpoint.pt").exists()
    # a finished run is never silently retrained: the same command is up to date, another is refused
    before = (out / "model.pt").stat().st_mtime_ns
    again = pretrain(runner, "--data", str(path), "--out", str(out), "--max-epochs", "3", *SMALL)
    assert (
        again.exit_code == 0
        and again.output.strip() == f"up to date: {out} (same options and inputs; --overwrite runs it again)"
    ), again.output
    assert (out / "model.pt").stat().st_mtime_ns == before
    again = pretrain(runner, "--data", str(path), "--out", str(out), "--max-epochs", "4", *SMALL)
    one_line_error(again, "finished pretrain run", "--max-epochs: 3 -> 4", "--overwrite")
    again = pretrain(
        runner, "--data", str(path), "--out", str(out), "--steps", "2", "--overwrite", *SMALL, "--json"
    )
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["train_steps"] == 2


def test_pretrain_pooled_arch_is_recorded_and_rebuilt(runner, data, tmp_path):
    path, _ = data
    out = tmp_path / "pooled"
    res = pretrain(
        runner,
        "--data",
        str(path),
        "--out",
        str(out),
        "--max-steps",
        "4",
        "--arch",
        "pooled",
        "--pool-rank",
        "16",
        *SMALL,
    )
    assert res.exit_code == 0, res.output
    manifest = read_manifest(out, stage="pretrain")
    assert manifest["hparams"]["arch"] == "pooled" and manifest["config"]["arch"] == "pooled"
    model = world_model_from_checkpoint(load_checkpoint(out / "model.pt"))
    assert model.hp["arch"] == "pooled" and model.hp["pool_rank"] == 16 and model.pooled is not None
    assert model.pooled.obs_proj.out_dim == 16
    bad = pretrain(runner, "--data", str(path), "--out", str(tmp_path / "bad"), "--arch", "graph", *SMALL)
    one_line_error(bad, "--arch graph")


def test_pretrain_total_uncertainty_is_recorded_and_rebuilt(runner, data, tmp_path):
    path, _ = data
    out = tmp_path / "total"
    total = ("--uncertainty", "total")
    res = pretrain(runner, "--data", str(path), "--out", str(out), "--steps", "2", *total, *SMALL)
    assert res.exit_code == 0, res.output
    manifest = read_manifest(out, stage="pretrain")
    assert manifest["hparams"]["uncertainty"] == manifest["config"]["uncertainty"] == "total"
    assert world_model_from_checkpoint(load_checkpoint(out / "model.pt")).uncertainty == "total"
    bad = pretrain(runner, "--data", str(path), "--out", str(tmp_path / "bad"), "--uncertainty", "x", *SMALL)
    one_line_error(bad, "--uncertainty")


@pytest.mark.parametrize("kind", ["global", "ensemble"])
def test_pretrain_baselines_and_default_out(runner, data, tmp_path, monkeypatch, kind):
    path, _ = data
    monkeypatch.chdir(tmp_path)
    extra = ["--members", "3", "--elites", "2"] if kind == "ensemble" else []
    res = pretrain(
        runner, "--data", str(path), "--kind", kind, "--steps", "12", "--seed", "4", *SMALL, *extra
    )
    assert res.exit_code == 0, res.output
    assert "next-state RMSE" in res.stdout
    out = tmp_path / "runs" / "pretrain" / f"toy_medium-{kind}-s4"
    manifest = read_manifest(out, stage="pretrain")
    assert manifest["kind"] == kind and manifest["metrics"]["train_steps"] == 12
    model = world_model_from_checkpoint(load_checkpoint(out / "model.pt"))
    if kind == "ensemble":
        assert len(manifest["metrics"]["elites"]) == 2 == len(model.elite_idx)
        assert model.elite_idx.tolist() == manifest["metrics"]["elites"]


def test_pretrain_refuses_bad_inputs_in_one_line(runner, data, tmp_path):
    path, other = data
    one_line_error(
        pretrain(runner, "--data", str(tmp_path / "nope.h5"), "--out", str(tmp_path / "r")), "nope.h5"
    )
    one_line_error(
        pretrain(runner, "--data", str(path), "--kind", "mlp", "--out", str(tmp_path / "r")), "--kind mlp"
    )
    one_line_error(
        pretrain(runner, "--data", str(path), "--holdout", "1.5", "--out", str(tmp_path / "r")), "--holdout"
    )
    bad_noop = tmp_path / "noop.h5"
    write_dataset(bad_noop, episodes(4, seed=3), {"noop_action": 9})
    one_line_error(pretrain(runner, "--data", str(bad_noop), "--out", str(tmp_path / "r")), "noop_action 9")
    assert not (tmp_path / "r").exists()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    one_line_error(
        pretrain(runner, "--data", str(path), "--out", str(busy), "--overwrite"), "not a pretrain run"
    )
    assert (busy / "notes.txt").read_text() == "mine"


def test_resume_refuses_other_dims_data_or_options(runner, data, tmp_path):
    from logo_cli.stages.pretrain import CHECKPOINT, PretrainConfig, run

    path, other = data
    out = tmp_path / "run"
    cfg = PretrainConfig(data=path, out=out, hidden=32, latent=8, batch_size=64, max_steps=40)

    def stop(step, total, info):
        if step >= 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(cfg, progress=stop)
    assert (out / CHECKPOINT).exists() and not (out / "manifest.json").exists()
    base = ["--out", str(out), *SMALL, "--steps", "40"]
    one_line_error(pretrain(runner, "--data", str(other), *base), "dims do not match", "n_agents 3 vs 4")
    copy = tmp_path / "copy.h5"
    write_dataset(copy, episodes(40, seed=7), {"noop_action": NOOP})
    one_line_error(pretrain(runner, "--data", str(copy), *base), "not the dataset")
    one_line_error(pretrain(runner, "--data", str(path), *base, "--lr", "0.01"), "--lr 0.01", "used 0.001")
    one_line_error(pretrain(runner, "--data", str(path), *base, "--no-resume"), "unfinished run")
    state = load_checkpoint(out / CHECKPOINT)
    for name in ("arch", "pool_rank"):
        del state["config"][name]  # a run started before these options existed
    save_checkpoint(out / CHECKPOINT, state)
    one_line_error(
        pretrain(runner, "--data", str(path), *base, "--arch", "pooled"), "--arch pooled", "used concat"
    )
    # the same command resumes, and may extend the budget
    res = pretrain(runner, "--data", str(path), *[a if a != "40" else "45" for a in base], "--json")
    assert res.exit_code == 0, res.output
    assert f"resumed {out} from step 10" in " ".join(res.stderr.split())
    assert json.loads(res.stdout)["train_steps"] == 45


class _FullDisk:
    """A file on a disk that fills after `room` bytes: write(2) then fails with ENOSPC."""

    def __init__(self, path, room: int):
        self.f, self.room = open(path, "wb"), room  # noqa: SIM115 (closed by __exit__)

    def write(self, data) -> int:
        if len(data) > self.room:
            import errno

            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.f.close()


def test_a_full_disk_while_saving_is_one_line_naming_the_file(runner, data, tmp_path, monkeypatch):
    import builtins

    from logo_cli import artifacts

    def full_open(path, mode="r", *args, **kwargs):
        if "w" in mode and "b" in mode:
            return _FullDisk(path, room=4096)  # torch's writer gets this far, then the disk is full
        return builtins.open(path, mode, *args, **kwargs)

    monkeypatch.setattr(artifacts, "open", full_open, raising=False)
    out = tmp_path / "run"
    res = pretrain(runner, "--data", str(data[0]), "--out", str(out), "--steps", "20", *SMALL)
    one_line_error(res, "checkpoint.pt", "No space left on device (ENOSPC)")
    assert "internal error" not in res.output and "inline_container" not in res.output
