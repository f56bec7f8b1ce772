"""--threads (and $LOGO_THREADS) sets torch's thread count before a command's work."""

from __future__ import annotations

import os

import pytest
import torch
from cli_checks import one_line_error
from typer.testing import CliRunner

from logo_cli.cli import app
from logo_cli.threads import DEFAULT_THREADS, THREADS_ENV

TORCH_COMMANDS = ["collect", "pretrain", "rollout", "calibrate", "train-policy", "evaluate"]


@pytest.fixture(autouse=True)
def _restore_threads(monkeypatch):
    before = torch.get_num_threads()
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", THREADS_ENV):
        monkeypatch.delenv(name, raising=False)
    yield
    torch.set_num_threads(before)


def _run(args, tmp_path, **kw):
    # a dataset that does not exist: the command stops at its first check, after option parsing
    missing = str(tmp_path / "missing.h5")
    return CliRunner().invoke(app, [*args, "--workspace", str(tmp_path / "ws"), "--data", missing], **kw)


@pytest.mark.parametrize("threads", [2, 3])
def test_threads_option_sets_torchs_thread_count(threads, tmp_path):
    torch.set_num_threads(1 if threads != 1 else 2)
    res = _run(["pretrain", "--threads", str(threads)], tmp_path)
    assert res.exit_code == 2 and "missing.h5" in res.output  # the command ran, then refused its input
    assert torch.get_num_threads() == threads
    assert os.environ["OMP_NUM_THREADS"] == str(threads)  # libraries loaded later follow it


def test_default_is_one_thread_and_the_env_var_overrides_it(tmp_path, monkeypatch):
    assert DEFAULT_THREADS == 1
    torch.set_num_threads(2)
    _run(["train-policy"], tmp_path)
    assert torch.get_num_threads() == 1
    monkeypatch.setenv(THREADS_ENV, "3")
    _run(["train-policy"], tmp_path)
    assert torch.get_num_threads() == 3
    _run(["train-policy", "--threads", "2"], tmp_path)  # the option wins over the variable
    assert torch.get_num_threads() == 2


def test_zero_means_one_thread_per_core(tmp_path):
    torch.set_num_threads(1)
    _run(["pretrain", "--threads", "0"], tmp_path)
    assert torch.get_num_threads() == (os.cpu_count() or 1)


def test_negative_threads_is_one_line_error(tmp_path):
    res = CliRunner().invoke(app, ["pretrain", "--threads", "-1", "--workspace", str(tmp_path)])
    one_line_error(res, "--threads -1")


@pytest.mark.parametrize("command", TORCH_COMMANDS)
def test_every_torch_command_has_the_option(command):
    import typer.main

    click_command = typer.main.get_command(app).commands[command]
    param = next(p for p in click_command.params if p.name == "threads")
    assert param.default == DEFAULT_THREADS and param.envvar == THREADS_ENV
