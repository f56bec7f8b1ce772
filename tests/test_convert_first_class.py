"""Converted data is first-class: the env a converter records opens (or is refused in one line), a
raw OMIGA file or OG-MARL vault given to a stage says to run `logo convert`, and probabilities a
converter filled with zeros show as absent."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from cli_checks import ok, one_line_error
from test_convert import write_vault
from test_data_omiga import _omiga_file
from test_models_dynamics import NOOP, episodes

from logo_cli.cli import app
from logo_cli.data.h5 import open_dataset, write_dataset
from logo_cli.data.ogmarl import ogmarl_env_name
from logo_cli.data.omiga import omiga_env_name
from logo_cli.envs import make_env, parse_env_name
from logo_cli.errors import LogoError

# OMIGA's MaMuJoCo tasks (its file names) and the agents their conf makes.
OMIGA_TASKS = {"HalfCheetah-v2-6x1": 6, "Ant-v2-2x4": 2, "Hopper-v2-3x1": 3, "Walker2d-v2-2x3": 2}


@pytest.mark.parametrize("task", OMIGA_TASKS)
def test_omiga_env_names_are_ones_the_env_parser_accepts(task):
    name = omiga_env_name(task)
    assert name == "mamujoco:" + task.replace("-v2", "")
    assert parse_env_name(name) == ("mamujoco", task.replace("-v2", ""))


def test_omiga_names_of_another_form_record_no_env():
    assert omiga_env_name("some-odd-file-name") is None


def test_ogmarl_env_names(tmp_path):
    assert ogmarl_env_name(tmp_path / "vaults" / "smac_v1" / "3m.vlt" / "Good") == "smacv2:3m"
    assert parse_env_name("smacv2:3m") == ("smacv2", "3m")
    assert ogmarl_env_name(tmp_path / "vaults" / "pettingzoo" / "pursuit.vlt" / "Good") is None


def _opens_or_refuses(name: str) -> int | None:
    """The env's agent count, or None when it was refused with one line naming it."""
    try:
        env = make_env(name)
    except LogoError as e:
        assert "\n" not in str(e) and name.split(":")[1] in str(e), str(e)
        return None
    try:
        return env.spec.n_agents
    finally:
        getattr(env, "close", lambda: None)()


@pytest.mark.parametrize("task", OMIGA_TASKS)
def test_every_omiga_env_opens_with_its_agents_or_is_refused_clearly(task):
    agents = _opens_or_refuses(omiga_env_name(task))
    assert agents in (None, OMIGA_TASKS[task])


def test_ogmarl_smac_env_opens_or_is_refused_clearly(tmp_path):
    agents = _opens_or_refuses(ogmarl_env_name(tmp_path / "vaults" / "smac_v1" / "3m.vlt" / "Good"))
    assert agents in (None, 3)


def test_convert_omiga_records_the_env_evaluate_opens(runner, tmp_path):
    src = tmp_path / "HalfCheetah-v2-6x1-medium.hdf5"
    _omiga_file(src)
    out = tmp_path / "hc.h5"
    ok(runner.invoke(app, ["convert", str(src), "--from", "omiga", "--out", str(out)]))
    attrs = json.loads(ok(runner.invoke(app, ["inspect", str(out), "--json"])).stdout)["attrs"]
    assert attrs["env"] == "mamujoco:HalfCheetah-6x1" and attrs["map_name"] == "HalfCheetah-v2-6x1"
    parse_env_name(attrs["env"])


def test_convert_refuses_an_env_name_evaluate_would_refuse(runner, tmp_path):
    src = tmp_path / "HalfCheetah-v2-6x1-medium.hdf5"
    _omiga_file(src)
    res = runner.invoke(
        app, ["convert", str(src), "--from", "omiga", "--out", str(tmp_path / "x.h5"),
              "--env", "mamujoco:HalfCheetah-v2-6x1"],
    )  # fmt: skip
    one_line_error(res, "mamujoco:HalfCheetah-v2-6x1", "valid forms")


@pytest.mark.parametrize("command", ["pretrain", "train-policy"])
def test_a_raw_omiga_file_given_to_a_stage_says_to_convert_it(runner, tmp_path, command):
    src = tmp_path / "HalfCheetah-v2-6x1-medium.hdf5"
    _omiga_file(src)
    res = runner.invoke(app, [command, "--data", str(src)])
    hint = f"logo convert {src} --from omiga --out HalfCheetah-v2-6x1-medium.h5"
    one_line_error(res, str(src), "an OMIGA dataset", hint)


def test_an_ogmarl_vault_given_to_a_stage_says_to_convert_it(runner, tmp_path):
    vault, _ = write_vault(tmp_path)
    res = runner.invoke(app, ["pretrain", "--data", str(vault)])
    one_line_error(res, "OG-MARL vault", f"logo convert {vault} --from ogmarl --out 3m.h5")
    res = runner.invoke(app, ["pretrain", "--data", str(vault.parent)])  # the <map>.vlt folder above it
    one_line_error(res, "OG-MARL vaults (Good)", f"logo convert {vault} --from ogmarl")


def test_a_plain_folder_still_says_no_part_files(runner, tmp_path):
    (tmp_path / "empty").mkdir()
    one_line_error(runner.invoke(app, ["pretrain", "--data", str(tmp_path / "empty")]), "no part_*.h5 files")


def test_a_vault_converted_without_probabilities_shows_them_absent(runner, tmp_path):
    vault, _ = write_vault(tmp_path)
    out = tmp_path / "3m_expert.h5"
    ok(runner.invoke(app, ["convert", str(vault), "--from", "ogmarl", "--out", str(out)]))
    with open_dataset(out) as ds:
        assert ds.layout.has_probs  # the canonical layout stores the key, filled with zeros
    summary = json.loads(ok(runner.invoke(app, ["inspect", str(out), "--json"])).stdout)
    assert summary["has_probs"] is False and summary["probs_stored_as_zeros"] is True
    table = ok(runner.invoke(app, ["inspect", str(out)], terminal_width=120)).stdout
    line = next(x for x in table.splitlines() if "behaviour probs" in x)
    assert "no (the file's probs are all zeros)" in line


def test_recorded_probabilities_show_as_present(runner, tmp_path):
    eps = episodes(6, seed=0)
    n_actions = eps.avail_actions.shape[-1]
    probs = np.zeros((*eps.avail_actions.shape[:-1], n_actions), np.float32)
    probs[2, 0, 1, 3] = 0.25  # one nonzero entry is enough
    path = tmp_path / "toy_medium.h5"
    write_dataset(path, dataclasses.replace(eps, probs=probs), {"map_name": "toy", "noop_action": NOOP})
    summary = json.loads(ok(runner.invoke(app, ["inspect", str(path), "--json"])).stdout)
    assert summary["has_probs"] is True and summary["probs_stored_as_zeros"] is False
