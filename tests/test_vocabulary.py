"""One vocabulary: --steps for a step budget, --kind for a model kind, descriptive names, choice values
spelt one way; the old spellings still work with a one-line note on stderr."""

from __future__ import annotations

import json

import pytest
from cli_checks import ok
from test_rollout_cli import write_data
from typer.testing import CliRunner

from logo_cli.cli import app
from logo_cli.deprecated import rewrite

TINY = ["--batch-size", "32", "--hidden", "16", "--latent", "8", "--device", "cpu"]


def test_pretrain_takes_steps_and_kind_and_notes_their_old_names(runner, tmp_path):
    data = write_data(tmp_path / "toy_medium.h5")
    res = ok(runner.invoke(app, ["pretrain", "--data", str(data), "--steps", "3", "--kind", "global", *TINY]))
    assert "deprecated" not in res.stderr
    new = json.loads((tmp_path / "runs/pretrain/toy_medium-global-s0/manifest.json").read_text())["config"]
    assert new["max_steps"] == 3 and new["model"] == "global"

    old = ["pretrain", "--data", str(data), "--max-steps=3", "--model", "global", *TINY, "--seed", "1"]
    res = ok(runner.invoke(app, old))
    assert res.stderr.splitlines()[:2] == [
        "note: --max-steps is deprecated; use --steps",
        "note: --model is deprecated; use --kind",
    ]
    again = json.loads((tmp_path / "runs/pretrain/toy_medium-global-s1/manifest.json").read_text())["config"]
    assert {**again, "seed": 0, "out": None} == {**new, "seed": 0, "out": None}


def test_train_policy_old_names_and_values_are_noted_then_read_as_the_new_ones():
    res = CliRunner().invoke(app, ["train-policy", "--mode", "real_only", "--c", "nan"])
    assert res.exit_code == 2
    assert res.stderr.splitlines() == [
        "note: --mode real_only is deprecated; use --mode real-only",
        "note: --c is deprecated; use --truncation",
        "error: --truncation nan: must be a finite number >= 0",
    ]


@pytest.mark.parametrize(
    "command, argv, expected",
    [
        ("train-policy", ["--eval-env", "smax:3m"], ["--env", "smax:3m"]),
        ("train-policy", ["--c=0.5", "--mode=real_only"], ["--truncation=0.5", "--mode=real-only"]),
        ("collect", ["--quality", "medium-replay"], ["--quality", "medium_replay"]),
        ("rollout", ["--model", "runs/pretrain/x"], ["--model", "runs/pretrain/x"]),  # a run, here
        ("pretrain", ["--", "--model"], ["--", "--model"]),
    ],
)
def test_rewrite(command, argv, expected, capsys):
    assert rewrite(command, argv) == expected


def test_help_lists_only_the_current_names():
    import typer.main

    commands = typer.main.get_command(app).commands
    names = {c: {o for p in cmd.params for o in p.opts} for c, cmd in commands.items()}
    assert "--steps" in names["pretrain"] and "--max-steps" not in names["pretrain"]
    assert "--kind" in names["pretrain"] and "--model" not in names["pretrain"]
    assert "--truncation" in names["train-policy"] and "--c" not in names["train-policy"]
    assert "--eval-env" not in names["train-policy"]
    # no cryptic long option of one letter anywhere (--lr, the learning rate, is the usual name)
    assert not [n for c in names.values() for n in c if n.startswith("--") and len(n) <= 3]
