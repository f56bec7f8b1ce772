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
    line = next(x for x in help_text.splitlines() if re.search(rf"^│ (\*\s+)?(--[a-z-]+, ?)?{name}[\s,]", x))
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


def _option_names(command: str) -> list[str]:
    import typer.main

    click_command = typer.main.get_command(app).commands[command]
    return [o for p in click_command.params for o in (*p.opts, *p.secondary_opts) if o.startswith("-")]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_at_80_columns_shows_every_option_name_whole(command):
    out = _plain(CliRunner().invoke(app, [command, "--help"], terminal_width=80).output)
    lines = out.splitlines()
    assert max(len(x) for x in lines) <= 80
    words = set(re.findall(r"(?<![\w-])-{1,2}[a-z][a-z0-9-]*", out))
    for name in _option_names(command):
        assert name in words, f"{name} not shown whole in `logo {command} --help`"
    # a name is never cut: no word that starts like an option ends in an ellipsis
    assert not re.search(r"(?<![\w-])--[a-z][a-z0-9-]*…", out), out


def test_train_policy_help_is_grouped_and_short_at_80_columns():
    out = _plain(CliRunner().invoke(app, ["train-policy", "--help"], terminal_width=80).output)
    assert len(out.splitlines()) < 200  # 528 lines when every option shared one panel
    titles = re.findall(r"╭─ (.+?) ─", out)
    assert titles[:2] == ["Options", "Inputs"]
    assert {"Learner", "Synthetic data", "Output", "Runtime"} <= set(titles)
    steps = next(x for x in out.splitlines() if "--steps " in x)
    assert re.search(r"--steps +<int> .*\[default: 10000\]", steps), steps  # type, help, default, one line


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_is_in_a_named_panel(command):
    import typer.main

    click_command = typer.main.get_command(app).commands[command]
    for param in click_command.params:
        if param.param_type_name == "option" and param.name != "help":
            assert getattr(param, "rich_help_panel", None), f"{command} {param.opts}: no help panel"


def test_readme_explains_shell_completion():
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert "logo --install-completion" in readme
