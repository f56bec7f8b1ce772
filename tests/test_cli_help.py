"""The root command's help: -h everywhere, flags without a value type, completion offered."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from logo_cli import __version__
from logo_cli.cli import app

COMMANDS = [
    "collect",
    "inspect",
    "status",
    "pretrain",
    "rollout",
    "calibrate",
    "train-policy",
    "evaluate",
    "convert",
    "export",
    "sweep",
]


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


def test_enumerated_options_list_exactly_the_values_the_stages_accept():
    from logo_cli.algos.macql import CQL_SYNTHETIC
    from logo_cli.commands._common import CHOICES
    from logo_cli.commands.train_policy import ALGOS
    from logo_cli.data.sampler import SAMPLER_MODES, WEIGHT_BY
    from logo_cli.models.world_model import KINDS
    from logo_cli.stages.collect import QUALITIES
    from logo_cli.stages.convert import SOURCES as CONVERT_SOURCES
    from logo_cli.stages.rollout import TERMINATION

    accepted = {
        "quality": QUALITIES,
        "world_model": tuple(KINDS),
        "termination": TERMINATION,
        "algo": ALGOS,
        "mode": SAMPLER_MODES,
        "weight_by": WEIGHT_BY,
        "cql_synthetic": CQL_SYNTHETIC,
        "convert_from": CONVERT_SOURCES,
    }
    assert set(CHOICES) == set(accepted)
    for name, values in accepted.items():
        assert set(CHOICES[name]) == set(values), name


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["train-policy", "--mode", "bogus"], "--mode bogus"),
        (["train-policy", "--cql-synthetic", "bogus"], "--cql-synthetic bogus"),
        (["rollout", "--termination", "bogus"], "--termination bogus"),
        (["pretrain", "--kind", "bogus"], "--kind bogus"),
        (["pretrain", "--model", "bogus"], "--kind bogus"),  # the older name of the same option
    ],
)
def test_enumerated_options_show_their_values_and_refuse_others_in_one_line(argv, needle, tmp_path):
    runner = CliRunner()
    help_text = _plain(runner.invoke(app, [argv[0], "-h"], terminal_width=250).output)
    name = argv[1]
    line = next(x for x in help_text.splitlines() if re.search(rf"^│ (\*\s+)?(--[a-z-]+,)?{name}[\s,]", x))
    assert re.search(r"<[a-z_-]+\|", line), line  # the values, e.g. <weight|penalty|...>
    result = runner.invoke(app, [*argv, "--workspace", str(tmp_path / "ws")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "expected one of" in lines[0], result.output


def test_train_policy_takes_the_same_env_option_as_evaluate():
    import typer.main

    command = typer.main.get_command(app)
    train = command.commands["train-policy"]
    evaluate = command.commands["evaluate"]
    eval_env = next(p for p in train.params if p.name == "eval_env")
    env = next(p for p in evaluate.params if p.name == "env")
    assert "--env" in eval_env.opts and "--env" in env.opts
    assert "--eval-env" in eval_env.opts  # the older name keeps working
