"""Fault injection, inputs: hostile or damaged files read by a command.

Manifests that are not objects or have fields of the wrong type, zarr buffers with impossible values
or damaged chunks, checkpoints with NaN weights, absurd sizes, unknown modes, other format versions
or an older layout, h5 attributes that disagree with the arrays. Every case: exit code 2 and one
line naming the file, the damaged input unchanged, nothing written.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch
from faults_kit import (
    edit_checkpoint,
    edit_zarr_attrs,
    invoke,
    leftovers,
    model_copy,
    one_line_fault,
    rewrite_zarr_array,
    rollout_args,
    snapshot,
    train_args,
    write_data,
)

# ---- manifests --------------------------------------------------------------------------------------

MANIFESTS = {
    "not_an_object": lambda m: "[1, 2, 3]",
    "not_json": lambda m: "{stage: pretrain",
    "not_utf8": lambda m: b"\xff\xfe{}",
    "inputs_a_string": lambda m: json.dumps({**m, "inputs": "data.h5"}),
    "input_not_path_hash": lambda m: json.dumps({**m, "inputs": {"data": ["x"]}}),
    "config_a_list": lambda m: json.dumps({**m, "config": [1]}),
    "wall_time_a_string": lambda m: json.dumps({**m, "wall_time_s": "slow"}),
    "no_stage": lambda m: json.dumps({k: v for k, v in m.items() if k != "stage"}),
    "future_version": lambda m: json.dumps({**m, "format_version": 7}),
    "a_folder": None,
}
MESSAGES = {
    "not_an_object": "expected an object",
    "not_json": "unreadable manifest",
    "not_utf8": "unreadable manifest",
    "inputs_a_string": "'inputs' is a string, expected an object",
    "input_not_path_hash": "input 'data' is not {path, hash}",
    "config_a_list": "'config' is a list",
    "wall_time_a_string": "'wall_time_s' is a string",
    "no_stage": "no 'stage'",
    "future_version": "manifest format version 7, but logo-cli",
    "a_folder": "not a readable file",
}


@pytest.mark.parametrize("damage", list(MANIFESTS))
def test_a_hostile_manifest_is_one_line_for_every_reader(kit, tmp_path, damage):
    run = model_copy(kit, tmp_path / "wm")
    manifest = run / "manifest.json"
    good = json.loads(manifest.read_text())
    manifest.unlink()
    if MANIFESTS[damage] is None:
        manifest.mkdir()
    else:
        text = MANIFESTS[damage](good)
        manifest.write_bytes(text if isinstance(text, bytes) else text.encode())
    before = snapshot(run)
    needle = MESSAGES[damage]
    one_line_fault(invoke(*rollout_args(kit, tmp_path / "b.zarr", "--model", run)), "manifest", needle)
    one_line_fault(invoke("calibrate", "--model", run, "--data", kit.data, "--out", tmp_path / "c"), needle)
    one_line_fault(invoke("inspect", run), needle)
    one_line_fault(invoke("evaluate", "--policy", run), needle)  # a run directory as --policy
    assert snapshot(run) == before and not (tmp_path / "b.zarr").exists() and not (tmp_path / "c").exists()


# ---- zarr buffers -----------------------------------------------------------------------------------


def bad_actions(a):
    a[3, 0] = 99
    return a


def nan_at(row):
    def fn(x):
        x[row] = np.nan
        return x

    return fn


def negative_at(row):
    def fn(x):
        x[row] = -1
        return x

    return fn


def unavailable(kit_buf):
    import zarr

    g = zarr.open_group(kit_buf, mode="r")
    taken = np.asarray(g["actions"][:])

    def fn(avail):
        avail[5, 0, taken[5, 0]] = False
        return avail

    return fn


BUFFERS = {
    "action_out_of_range": ("actions", bad_actions, "'actions' holds an action outside 0..4 (row 3)"),
    "nan_reward": ("reward", nan_at(7), "'reward' holds NaN or inf (row 7)"),
    "nan_next_obs": ("next_obs", nan_at(2), "'next_obs' holds NaN or inf (row 2)"),
    "inf_state": ("state", lambda x: x * np.float32(np.inf), "'state' holds NaN or inf"),
    "negative_step": ("step", negative_at(4), "'step' is negative (row 4)"),
    "step_beyond_horizon": ("step", lambda x: x + 10, "'step' is not below the buffer's horizon 3"),
    "negative_uncertainty": ("uncertainty", negative_at(1), "'uncertainty' is negative (row 1)"),
    "nan_uncertainty": ("uncertainty", nan_at(0), "'uncertainty' holds NaN or inf (row 0)"),
    "negative_branch": ("branch", negative_at(9), "'branch' is negative (row 9)"),
    "unavailable_action": ("avail_actions", None, "marks unavailable"),
}


@pytest.mark.parametrize("damage", list(BUFFERS))
def test_a_buffer_with_impossible_values_is_refused(kit, tmp_path, damage):
    buf = kit.copy("buf", tmp_path / "b.zarr")
    name, fn, needle = BUFFERS[damage]
    rewrite_zarr_array(buf, name, fn if fn is not None else unavailable(buf))
    before = snapshot(buf)
    out = tmp_path / "run"
    one_line_fault(invoke(*train_args(kit, out, "--synthetic", buf)), buf, needle)
    assert not out.exists() and not (tmp_path / "run.partial").exists()
    if name in ("reward", "step", "uncertainty", "branch"):  # what inspect reads
        one_line_fault(invoke("inspect", buf), buf, needle)
    assert snapshot(buf) == before


def test_a_corrupt_or_lost_chunk_is_one_line(kit, tmp_path):
    buf = kit.copy("buf", tmp_path / "b.zarr")
    chunk = buf / "reward" / "c" / "1"
    chunk.write_bytes(b"\x00garbage\x00" * 4)
    one_line_fault(invoke("inspect", buf), buf, "array 'reward' is unreadable", "corrupt chunk")
    one_line_fault(
        invoke(*train_args(kit, tmp_path / "r", "--synthetic", buf)), "array 'reward' is unreadable"
    )
    chunk.unlink()  # zarr would read a missing chunk as zeros
    one_line_fault(invoke("inspect", buf), buf, "array 'reward' lost chunk 1")


def test_garbled_array_metadata(kit, tmp_path):
    buf = kit.copy("buf", tmp_path / "b.zarr")
    (buf / "reward" / "zarr.json").write_text("{garbage")
    one_line_fault(invoke("inspect", buf), buf, "unreadable array metadata")
    one_line_fault(invoke(*train_args(kit, tmp_path / "r", "--synthetic", buf)), buf, "garbled buffer")


@pytest.mark.parametrize(
    "attrs, needle",
    [
        ({"n_rows": -5}, "n_rows -5"),
        ({"n_rows": "lots"}, "n_rows 'lots'"),
        ({"dims": {"n_agents": 2, "obs_dim": 4, "state_dim": 6, "n_actions": 10**9, "discrete": True}},
         "dims.n_actions"),
        ({"complete": "yes"}, "complete 'yes'"),
        ({"format_version": 3}, "synthetic buffer format version 3, but logo-cli"),
    ],
)  # fmt: skip
def test_garbled_buffer_attributes(kit, tmp_path, attrs, needle):
    buf = kit.copy("buf", tmp_path / "b.zarr")
    edit_zarr_attrs(buf, **attrs)
    one_line_fault(invoke("inspect", buf), buf, needle)
    one_line_fault(invoke(*train_args(kit, tmp_path / "r", "--synthetic", buf)), buf, needle)


# ---- checkpoints ------------------------------------------------------------------------------------


def nan_weight(payload):
    key = next(k for k in payload["state_dict"] if k.endswith("weight"))
    payload["state_dict"][key] = payload["state_dict"][key].clone().fill_(float("nan"))
    return payload


def test_a_model_with_nan_weights_is_refused_by_rollout_and_calibrate(kit, tmp_path):
    run = model_copy(kit, tmp_path / "wm", nan_weight)
    model = run / "model.pt"
    one_line_fault(invoke(*rollout_args(kit, tmp_path / "b.zarr", "--model", run)), model, "NaN or inf")
    res = invoke("calibrate", "--model", run, "--data", kit.data, "--out", tmp_path / "cal")
    one_line_fault(res, model, "NaN or inf")  # never a metrics.json full of NaN
    assert not (tmp_path / "b.zarr").exists() and not (tmp_path / "cal").exists()
    assert leftovers(tmp_path) == []


POLICIES = {
    "absurd_hidden": (lambda p: {**p, "hparams": {"hidden": 2**30, "layers": 1}}, "hidden 1073741824"),
    "hidden_not_matching": (lambda p: {**p, "hparams": {"hidden": 4096, "layers": 1}}, "do not fit"),
    "unknown_mode": (lambda p: {**p, "mode": "greedy"}, "unknown mode 'greedy'"),
    "nan_weights": (nan_weight, "NaN or inf"),
    "garbled_dims": (lambda p: {**p, "dims": {**p["dims"], "n_agents": "two"}}, "dims.n_agents 'two'"),
    "future_version": (lambda p: {**p, "format_version": 2}, "policy checkpoint format version 2"),
    "not_a_dict": (lambda p: [1, 2], "not a logo policy checkpoint"),
}  # fmt: skip


@pytest.mark.parametrize("damage", list(POLICIES))
def test_a_hostile_policy_file_is_refused_before_use(kit, tmp_path, damage):
    fn, needle = POLICIES[damage]
    pol = edit_checkpoint(kit.pol, tmp_path / "p.pt", fn)
    before = snapshot(pol)
    one_line_fault(invoke(*rollout_args(kit, tmp_path / "b.zarr", "--policy", pol)), pol, needle)
    one_line_fault(invoke("evaluate", "--policy", pol), pol, needle)  # refused before any episode
    assert snapshot(pol) == before and not (tmp_path / "b.zarr").exists()


class _Payload:
    """Unpickling this would run a shell command: a checkpoint must never do that."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_holding_code_is_never_run(kit, tmp_path):
    marker = tmp_path / "pwned"
    pol = tmp_path / "p.pt"
    torch.save({"format": "logo-policy", "mode": _Payload(marker)}, pol)
    line = one_line_fault(invoke(*rollout_args(kit, tmp_path / "b.zarr", "--policy", pol)), pol)
    assert "not plain data" in line and not marker.exists()
    one_line_fault(invoke("inspect", pol), pol, "not plain data")
    assert not marker.exists()


def test_inspect_describes_a_policy_file_and_refuses_a_hostile_one(kit, tmp_path):
    res = invoke("inspect", kit.pol, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["format"] == "logo-policy"
    pol = edit_checkpoint(kit.pol, tmp_path / "p.pt", POLICIES["nan_weights"][0])
    one_line_fault(invoke("inspect", pol), pol, "NaN or inf")


def test_a_checkpoint_that_is_a_folder_or_garbage(kit, tmp_path):
    run = model_copy(kit, tmp_path / "wm")
    (run / "model.pt").unlink()
    (run / "model.pt").mkdir()
    one_line_fault(invoke(*rollout_args(kit, tmp_path / "b.zarr", "--model", run)), "model.pt", "a folder")
    shutil.rmtree(run / "model.pt")
    (run / "model.pt").write_bytes(b"PK\x03\x04 not really a zip")
    one_line_fault(
        invoke(*rollout_args(kit, tmp_path / "b.zarr", "--model", run)), "not a valid logo checkpoint"
    )


# ---- format versions and layout changes --------------------------------------------------------------


def test_world_model_of_another_format_version_names_both_versions(kit, tmp_path):
    run = model_copy(kit, tmp_path / "wm", lambda p: {**p, "format_version": 3})
    line = one_line_fault(invoke(*rollout_args(kit, tmp_path / "b.zarr", "--model", run)), "model.pt")
    assert "world-model checkpoint format version 3" in line and "reads version 1" in line


def test_a_logo_model_of_the_older_layout_is_converted(kit, tmp_path):
    """Before `layers` meant the depth of each encoder->decoder path, a LOGO model's encoders had
    `layers` hidden layers: such a file now loads as layers + dec_layers."""
    from logo_cli.data.transitions import Dims
    from logo_cli.models.world_model import (
        build_world_model,
        world_model_from_checkpoint,
        world_model_payload,
    )

    dims = Dims(2, 4, 6, 5)
    torch.manual_seed(0)
    new_layout = build_world_model("logo", dims, hidden=16, latent=8, layers=3)  # encoders: 2 layers
    payload = world_model_payload(new_layout)
    payload["hparams"] = {**payload["hparams"], "layers": 2}  # what the older version recorded
    payload.pop("format_version")
    model = world_model_from_checkpoint(payload, "old.pt")
    assert model.hp["layers"] == 3 and model.hp["converted_from_legacy_layers"] == [2, 3]
    for k, v in new_layout.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    run = model_copy(kit, tmp_path / "wm", lambda p: payload)  # and it rolls out
    res = invoke(*rollout_args(kit, tmp_path / "b.zarr", "--model", run))
    assert res.exit_code == 0, res.output


def test_a_foreign_layout_says_what_differs(kit, tmp_path):
    def rename(p):
        p["state_dict"] = {("renamed." + k if "local_enc" in k else k): v for k, v in p["state_dict"].items()}
        return p

    run = model_copy(kit, tmp_path / "wm", rename)
    line = one_line_fault(invoke(*rollout_args(kit, tmp_path / "b.zarr", "--model", run)), "model.pt")
    assert "missing weights: local_enc" in line and "unexpected weights: renamed.local_enc" in line
    assert "does not fit the logo model it declares (format version 1" in line


def test_a_train_policy_checkpoint_of_another_version_is_not_resumed(kit, tmp_path, monkeypatch):
    from logo_cli.train.learners.macql import MacqlLearner

    out = tmp_path / "run"
    real = MacqlLearner.update
    calls = {"n": 0}

    def stop(self, batch, step):
        calls["n"] += 1
        if calls["n"] > 4:
            raise KeyboardInterrupt
        return real(self, batch, step)

    monkeypatch.setattr(MacqlLearner, "update", stop)
    assert invoke(*train_args(kit, out)).exit_code == 130
    monkeypatch.undo()
    ckpt = tmp_path / "run.partial" / "checkpoint.pt"
    edit_checkpoint(ckpt, ckpt, lambda p: {**p, "format_version": 5})
    before = snapshot(ckpt)
    one_line_fault(invoke(*train_args(kit, out)), ckpt, "train-policy checkpoint format version 5")
    assert snapshot(ckpt) == before


# ---- datasets ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("attr", ["obs_dim", "state_dim", "n_agents"])
def test_an_h5_attribute_that_disagrees_with_the_arrays(tmp_path, attr):
    data = write_data(tmp_path / "toy_medium.h5", n_episodes=4, attrs={attr: 99})
    one_line_fault(invoke("inspect", data), data, f"attribute {attr}=99 disagrees with the arrays")
    one_line_fault(invoke("pretrain", "--data", data, "--out", tmp_path / "wm"), data, f"{attr}=99")
    assert not (tmp_path / "wm").exists()
