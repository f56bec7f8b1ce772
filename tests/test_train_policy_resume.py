"""train-policy stage: exact resume, synthetic buffers, refusals (tiny data, a few dozen steps)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from logo_cli.data.transitions import Dims
from logo_cli.errors import LogoError
from logo_cli.stages.train_policy import TrainPolicyConfig, partial_dir, run

N, OD, S, A, LIMIT = 2, 4, 6, 5, 8


def write_data(path, n_episodes: int = 16, seed: int = 0, obs_dim: int = OD):
    from logo_cli.data.h5_write import write_dataset
    from logo_cli.data.synthetic import random_episodes

    eps = random_episodes(
        n_episodes, n_agents=N, obs_dim=obs_dim, state_dim=S, n_actions=A, episode_limit=LIMIT, seed=seed
    )
    write_dataset(path, eps, {"map_name": "toy", "quality": "medium"})
    return path


def write_buffer(path, data_path, n: int = 200, obs_dim: int = OD):
    """A synthetic buffer made of dataset transitions with made-up uncertainties."""
    from logo_cli.data.h5 import open_dataset
    from logo_cli.data.zarr_store import SyntheticWriter

    with open_dataset(data_path) as ds:
        rows = ds.transitions()
    rows = rows.select(np.arange(n) % len(rows))
    if obs_dim != OD:
        pad = np.zeros((n, N, obs_dim - OD), np.float32)
        rows = replace(
            rows, obs=np.concatenate([rows.obs, pad], -1), next_obs=np.concatenate([rows.next_obs, pad], -1)
        )
    unc = np.linspace(0.0, 2.0, n).astype(np.float32)
    with SyntheticWriter(path, {"stage": "test"}, rows.dims, chunk_rows=64) as w:
        w.append(rows, unc, np.zeros(n, np.int16), np.arange(n))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tp")
    d = write_data(tmp / "toy_medium.h5")
    return d, write_buffer(tmp / "buf.zarr", d)


def base_cfg(data_path, out, **kw) -> TrainPolicyConfig:
    small = dict(steps=24, batch_size=16, hidden=16, layers=1, log_every=4, checkpoint_every=8, cql_samples=4)
    small.update(target_update_every=5, mode="real-only")
    small.update(kw)
    return TrainPolicyConfig(data=data_path, out=out, device="cpu", **small)


def weights(run_dir) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "policy.pt", weights_only=True)["state_dict"]


def train_lines(run_dir) -> list[dict]:
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    timing = ("steps_per_s", "wall_time")
    return [{k: v for k, v in x.items() if k not in timing} for x in lines if x["kind"] == "train"]


@pytest.mark.parametrize(
    "kw",
    [
        dict(mode="real-only"),
        dict(mode="weight", synthetic=True),
        dict(mode="penalty", synthetic=True, algo="bc"),
        dict(mode="real-only", algo="cfcql", cfcql_bc_steps=5),
        dict(mode="weight", synthetic=True, algo="cfcql", cfcql_bc_steps=5, cql_synthetic="data"),
    ],
    ids=["macql-real-only", "macql-weight", "bc-penalty", "cfcql-real-only", "cfcql-weight"],
)
def test_interrupted_run_resumes_to_identical_weights(data, tmp_path, kw):
    data_path, buf = data
    kw = dict(kw, synthetic=buf if kw.get("synthetic") else None)
    full = run(base_cfg(data_path, tmp_path / "full", **kw))

    def interrupt(phase, done, total, info):
        if phase == "train" and done == 20:  # after the step-16 checkpoint
            raise KeyboardInterrupt

    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        run(base_cfg(data_path, out, **kw), progress=interrupt)
    assert not out.exists() and (partial_dir(out) / "checkpoint.pt").is_file()
    resumed = run(base_cfg(data_path, out, **kw))
    assert resumed.resumed_from == 16 and not partial_dir(out).exists()
    wa, wb = weights(tmp_path / "full"), weights(out)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert train_lines(tmp_path / "full") == train_lines(out)  # the log has no gap and no repeats
    assert resumed.c == full.c
    if kw.get("algo") == "cfcql":  # β came from the checkpoint, not a second fit: the same in both runs
        ckpt_nets = torch.load(out / "policy.pt", weights_only=True)
        assert ckpt_nets["mode"] == "q" and ckpt_nets["meta"]["algo"] == "cfcql" and "mixer" in ckpt_nets
        assert resumed.manifest["timers"]["behaviour_s"] == 0.0 and full.manifest["timers"]["behaviour_s"] > 0
    if kw["mode"] == "real-only":  # another seed differs: the equality above is not vacuous
        other = run(base_cfg(data_path, tmp_path / "other", seed=1, **kw))
        assert not all(torch.equal(wa[k], weights(other.out)[k]) for k in wa)


@pytest.mark.parametrize("kw", [dict(mode="weight", synthetic=True), dict(agent="gru", seq_batch=4)],
                         ids=["macql-weight", "macql-gru"])  # fmt: skip
def test_ctrl_c_saves_a_checkpoint_and_the_resumed_run_matches_an_uninterrupted_one(data, tmp_path, kw):
    import os
    import signal

    data_path, buf = data
    kw = dict(kw, synthetic=buf if kw.get("synthetic") else None)
    run(base_cfg(data_path, tmp_path / "full", **kw))

    def ctrl_c(phase, done, total, info):
        if phase == "train" and done == 20:  # no checkpoint is due at 20 (every 8 steps)
            os.kill(os.getpid(), signal.SIGINT)

    out, handler = tmp_path / "resumed", signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        run(base_cfg(data_path, out, **kw), progress=ctrl_c)
    assert signal.getsignal(signal.SIGINT) is handler  # the run's deferred handler is gone
    state = torch.load(partial_dir(out) / "checkpoint.pt", weights_only=False)
    assert state["step"] == 20  # saved at the step boundary after the interrupt, not the step-16 one
    resumed = run(base_cfg(data_path, out, **kw))
    assert resumed.resumed_from == 20 and not partial_dir(out).exists()
    wa, wb = weights(tmp_path / "full"), weights(out)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert train_lines(tmp_path / "full") == train_lines(out)


def test_manifest_policy_file_and_sampler_record(data, tmp_path):
    data_path, buf = data
    res = run(base_cfg(data_path, tmp_path / "r", synthetic=buf, mode="weight", c=0.5))
    m = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert m["stage"] == "train-policy" and m["config"]["cql_alpha"] == 1.0
    assert set(m["inputs"]) == {"data", "synthetic"} and m["inputs"]["synthetic"]["hash"].startswith(
        "sha256:"
    )
    sampler = m["sampler"]
    keys = ("mode", "synthetic_ratio", "c", "c_source", "penalty_lambda", "weight_by")
    assert {k: sampler[k] for k in keys} == {
        "mode": "weight", "synthetic_ratio": 0.5, "c": 0.5, "c_source": "given", "penalty_lambda": 1.0,
        "weight_by": "cumulative",
    }  # fmt: skip
    assert sampler["effective_sample_size"] == pytest.approx(0.5, abs=1e-3)
    assert sampler["temperature"] > 0 and sampler["temperature_source"].startswith("solved")
    assert m["metrics"]["steps_per_s"] > 0 and "td_loss" in m["metrics"]["final"]
    payload = torch.load(tmp_path / "r" / "policy.pt", weights_only=True)
    assert payload["mode"] == "q" and Dims.from_dict(payload["dims"]) == Dims(N, OD, S, A)
    assert res.c == 0.5
    default_c = run(base_cfg(data_path, tmp_path / "d", synthetic=buf, mode="weight", steps=4))
    assert default_c.c == pytest.approx(np.quantile(np.linspace(0, 2, 200), 0.9), rel=1e-5)


def test_resume_refuses_another_configuration_and_no_resume_starts_over(data, tmp_path):
    data_path, _ = data
    out = tmp_path / "r"

    def interrupt(phase, done, total, info):
        if phase == "train" and done == 12:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(base_cfg(data_path, out), progress=interrupt)
    with pytest.raises(LogoError, match="another configuration.*lr"):
        run(base_cfg(data_path, out, lr=1e-2))
    res = run(base_cfg(data_path, out, lr=1e-2, resume=False))
    assert res.resumed_from == 0 and (out / "policy.pt").is_file()


def test_a_checkpoint_without_newer_config_fields_resumes_with_their_defaults(data, tmp_path):
    """A checkpoint written before a config field existed (here the CFCQL options) still resumes."""
    data_path, _ = data
    out = tmp_path / "old"

    def interrupt(phase, done, total, info):
        if phase == "train" and done == 12:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(base_cfg(data_path, out), progress=interrupt)
    ckpt = partial_dir(out) / "checkpoint.pt"
    state = torch.load(ckpt, weights_only=False)
    for key in ("cfcql_temperature", "cfcql_bc_steps"):
        del state["config"][key]
    torch.save(state, ckpt)
    assert run(base_cfg(data_path, out)).resumed_from == 8
    with pytest.raises(KeyboardInterrupt):  # a field at a non-default value is still a different config
        run(base_cfg(data_path, tmp_path / "old2"), progress=interrupt)
    ckpt = partial_dir(tmp_path / "old2") / "checkpoint.pt"
    state = torch.load(ckpt, weights_only=False)
    del state["config"]["cfcql_temperature"]
    torch.save(state, ckpt)
    with pytest.raises(LogoError, match="another configuration.*cfcql_temperature"):
        run(base_cfg(data_path, tmp_path / "old2", cfcql_temperature=1.0))


def test_bad_inputs_are_refused(data, tmp_path):
    data_path, buf = data
    with pytest.raises(LogoError, match="needs --synthetic or --model"):
        run(base_cfg(data_path, tmp_path / "a", mode="weight"))
    (tmp_path / "exists").mkdir()
    with pytest.raises(LogoError, match="already exists"):
        run(base_cfg(data_path, tmp_path / "exists"))
    wide = write_buffer(tmp_path / "wide.zarr", data_path, obs_dim=OD + 2)
    with pytest.raises(LogoError, match="dims do not match.*obs_dim"):
        run(base_cfg(data_path, tmp_path / "b", synthetic=wide, mode="uniform"))
    with pytest.raises(LogoError, match="no such file"):
        run(base_cfg(tmp_path / "missing.h5", tmp_path / "c"))
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()
