"""The root command's help: -h everywhere, flags without a value type, completion offered."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from logo_cli import __version__
from logo_cli.cli import app

COMMANDS = ["collect", "inspect", "status", "pretrain", "rollout", "calibrate", "train-policy", "evaluate"]


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_version_flag():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"logo-cli {__version__}"


@pytest.mark.parametrize("command", COMMANDS)
def test_short_help_matches_long_help(command):
    runner = CliRunner()
    short = runner.invoke(app, [command, "-h"], terminal_width=200)
    long = runner.invoke(app, [command, "--help"], terminal_width=200)
    assert short.exit_code == 0 and long.exit_code == 0
    assert short.output == long.output
    assert "Usage: logo " + command in _plain(short.output)


def test_flags_show_no_value_type_but_valued_options_do():
    out = _plain(CliRunner().invoke(app, ["evaluate", "--help"], terminal_width=200).output)
    json_line = next(line for line in out.splitlines() if "--json" in line)
    episodes_line = next(line for line in out.splitlines() if "--episodes" in line)
    assert "<bool>" not in json_line
    assert "<int>" in episodes_line
    assert "<bool>" not in out


def test_completion_is_offered():
    out = _plain(CliRunner().invoke(app, ["--help"], terminal_width=200).output)
    assert "--install-completion" in out and "--show-completion" in out
