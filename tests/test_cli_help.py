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


def test_algo_lists_exactly_the_learners_and_the_registries_take_their_lists_from_the_enums():
    from logo_cli.choices import Agent, WorldModelKind, values
    from logo_cli.commands._common import CHOICES
    from logo_cli.commands.train_policy import ALGOS
    from logo_cli.models.world_model import KINDS
    from logo_cli.train.registry import AGENTS

    assert CHOICES == {"algo": ALGOS}  # --algo is a checked string whose list is the learner registry
    assert set(values(WorldModelKind)) == set(KINDS)  # also refused at import when they disagree
    assert values(Agent) == AGENTS


@pytest.mark.parametrize(
    "argv, values",
    [
        (["train-policy", "--mode", "bogus"], "'weight', 'penalty', 'uniform', 'real-only'"),
        (["train-policy", "--cql-synthetic", "bogus"], "'data', 'combo', 'none'"),
        (["train-policy", "--weight-by", "bogus"], "'cumulative', 'step'"),
        (["train-policy", "--agent", "bogus"], "'mlp', 'gru'"),
        (["rollout", "--termination", "bogus"], "'sample', 'threshold'"),
        (["pretrain", "--kind", "bogus"], "'logo', 'global', 'ensemble', 'oracle'"),
        (["pretrain", "--local-action", "bogus"], "'joint', 'own'"),
        (["pretrain", "--logger", "bogus"], "'none', 'tensorboard', 'wandb'"),
        (["collect", "--quality", "bogus"], "'expert', 'medium', 'medium_replay', 'mixed', 'random'"),
        (["convert", "x", "--from", "bogus"], "'omiga', 'ogmarl'"),
    ],
)
def test_enumerated_options_show_their_values_and_refuse_others(argv, values):
    runner = CliRunner()
    help_text = _plain(runner.invoke(app, [argv[0], "-h"], terminal_width=250).output)
    name = argv[-2]
    line = next(x for x in help_text.splitlines() if re.search(rf"^│ (\*\s+)?{name}\s", x))
    shown = "<" + values.replace("'", "").replace(", ", "|") + ">"
    assert shown in line, line  # the values, e.g. <weight|penalty|...>
    result = runner.invoke(app, argv)
    assert result.exit_code == 2  # before the command runs
    assert result.output == f"error: {name} bogus: expected one of {values.replace(chr(39), '')}\n"


def test_algo_refuses_another_value_in_one_line(tmp_path):
    result = CliRunner().invoke(app, ["train-policy", "--algo", "bogus", "--workspace", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.strip() == "error: --algo bogus: expected one of macql, cfcql, bc, td3bc, icql"


def test_enumerated_values_complete_in_the_shell():
    import typer.main

    command = typer.main.get_command(app).commands["train-policy"]
    mode = next(p for p in command.params if p.name == "mode")
    ctx = command.make_context("train-policy", [], resilient_parsing=True)
    assert [c.value for c in mode.shell_complete(ctx, "re")] == ["real-only"]


def test_train_policy_takes_the_same_env_option_as_evaluate():
    import typer.main

    command = typer.main.get_command(app)
    train = command.commands["train-policy"]
    evaluate = command.commands["evaluate"]
    eval_env = next(p for p in train.params if p.name == "eval_env")
    env = next(p for p in evaluate.params if p.name == "env")
    assert eval_env.opts == ["--env"] and "--env" in env.opts  # --eval-env: tests/test_vocabulary.py


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
