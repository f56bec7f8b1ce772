"""`--config FILE` on every stage: TOML / YAML options, the command line wins, a run's manifest repeats it."""

from __future__ import annotations

import json

import pytest
from test_models_dynamics import NOOP, episodes

from logo_cli.cli import app
from logo_cli.data.h5 import write_dataset

STAGES = ("collect", "pretrain", "rollout", "calibrate", "train-policy", "evaluate")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "toy.h5"
    write_dataset(path, episodes(12, seed=0), {"noop_action": NOOP})
    return path


def config_of(run) -> dict:
    return json.loads((run / "manifest.json").read_text())["config"]


def ok(res):
    assert res.exit_code == 0, res.output
    return res


def test_a_recorded_config_repeats_the_run(runner, data, tmp_path, monkeypatch):
    # made with relative paths from one folder, repeated from another
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "toy.h5").write_bytes(data.read_bytes())
    monkeypatch.chdir(tmp_path / "a")
    args = ["--data", "toy.h5", "--out", "first", "--kind", "global", "--hidden", "24", "--layers", "1",
            "--batch-size", "32", "--lr", "0.003", "--steps", "6", "--seed", "3",
            "--device", "cpu"]  # fmt: skip
    first = json.loads(ok(runner.invoke(app, ["pretrain", *args, "--json"])).stdout)
    monkeypatch.chdir(tmp_path)
    for source, out in (("a/first", "again"), ("a/first/manifest.json", "again2")):
        again = json.loads(
            ok(runner.invoke(app, ["pretrain", "--config", source, "--out", out, "--json"])).stdout
        )
        recorded, repeated = config_of(tmp_path / "a" / "first"), config_of(tmp_path / out)
        assert repeated.pop("out") == out and recorded.pop("out") == "first"
        assert repeated.pop("data") == str(tmp_path / "a" / "toy.h5") and recorded.pop("data") == "toy.h5"
        assert repeated == recorded
        assert again["train_steps"] == 6 and again["next_state_rmse"] == first["next_state_rmse"]  # same run


def test_toml_and_yaml_options_and_the_command_line_wins(runner, data, tmp_path):
    (tmp_path / "c.toml").write_text(
        f'data = "{data}"\nmax-steps = 4\n"--hidden" = 16\nlatent = 8\nbatch_size = 32\ndevice = "cpu"\n'
        "share_local = true\n"
    )
    ok(runner.invoke(app, ["pretrain", "--config", str(tmp_path / "c.toml"), "--out", str(tmp_path / "t"),
                           "--hidden", "20"]))  # fmt: skip
    cfg = config_of(tmp_path / "t")
    assert (cfg["max_steps"], cfg["hidden"], cfg["latent"], cfg["batch_size"], cfg["share_local"]) == (
        4, 20, 8, 32, True)  # fmt: skip
    assert cfg["lr"] == 1e-3  # neither given: the built-in default
    pytest.importorskip("yaml")
    (tmp_path / "c.yaml").write_text(f"data: {data}\nmax_steps: 3\nhidden: 16\nlatent: 8\ndevice: cpu\n")
    ok(runner.invoke(app, ["pretrain", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "y")]))
    cfg = config_of(tmp_path / "y")
    assert (cfg["max_steps"], cfg["hidden"], cfg["batch_size"]) == (3, 16, 256)


@pytest.mark.parametrize(
    ("text", "name", "fragment"),
    [
        ("foo = 3\n", "c.toml", "'foo' is not an option of `logo pretrain`"),
        ("eval_size = 3\n", "c.toml",
         "'eval_size' = 3 cannot be set from the command line (it is always 20000)"),
        ("hidden = [\n", "c.toml", "not valid TOML ("),  # then the parser's own words
        ("hidden = [1, 2]\n", "c.toml", "'hidden' is a list, expected one value"),
        ('hidden = "abc"\n', "c.toml", "--hidden 'abc': "),
        ("share_local = 3\n", "c.toml", "--share-local 3: "),
        ("[1, 2]", "c.json", "expected a table of options, found list"),
        ("hidden: 3", "c.ini", "expected a .toml, .yaml, .yml or .json file"),
        ('{"stage": "evaluate", "config": {"episodes": 3}}', "manifest.json",
         "a 'evaluate' run's config, not a 'pretrain' one"),
    ],
)  # fmt: skip
def test_a_bad_config_file_is_one_line(runner, data, tmp_path, text, name, fragment):
    (tmp_path / name).write_text(text)
    res = runner.invoke(app, ["pretrain", "--data", str(data), "--config", str(tmp_path / name),
                              "--out", str(tmp_path / "r")])  # fmt: skip
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --config {tmp_path / name}: {fragment}"), lines
    assert not (tmp_path / "r").exists()
    res = runner.invoke(app, ["pretrain", "--config", str(tmp_path / "nope.toml")])
    assert (
        res.exit_code == 2 and res.stderr.strip() == f"error: --config {tmp_path / 'nope.toml'}: no such file"
    )


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_has_config(runner, stage):
    res = ok(runner.invoke(app, [stage, "--help"], env={"COLUMNS": "200"}))
    assert "--config" in res.stdout and "Options on the command line win" in " ".join(res.stdout.split())


def test_per_command_tables_each_command_takes_its_own_and_the_shared_keys(runner, data, tmp_path):
    import typer.main

    from logo_cli.config_file import default_map

    path = tmp_path / "pipeline.toml"
    path.write_text(
        f'data = "{data}"\ndevice = "cpu"\nseed = 2\n'
        "[pretrain]\nsteps = 3\nhidden = 16\nlatent = 8\nbatch-size = 32\n"
        '[train-policy]\nsteps = 2\nhidden = 8\nmode = "real-only"\n'
        "[evaluate]\nepisodes = 4\n"
    )
    ok(runner.invoke(app, ["pretrain", "--config", str(path), "--out", str(tmp_path / "wm")]))
    cfg = config_of(tmp_path / "wm")
    assert (cfg["max_steps"], cfg["hidden"], cfg["latent"], cfg["seed"], cfg["data"]) == (
        3,
        16,
        8,
        2,
        str(data),
    )

    commands = typer.main.get_command(app).commands
    assert default_map(commands["train-policy"], "train-policy", path) == {
        "data": str(data), "device": "cpu", "seed": 2, "steps": 2, "hidden": 8, "mode": "real-only",
    }  # fmt: skip
    # evaluate has no --data: a shared key it does not have is left to the commands that do
    assert default_map(commands["evaluate"], "evaluate", path) == {"device": "cpu", "seed": 2, "episodes": 4}
    # old spellings of a value or an option, as a file may still hold them, are read as the new ones
    old = tmp_path / "old.toml"
    old.write_text('[train-policy]\nmode = "real_only"\nc = 0.5\neval-env = "smax:3m"\n')
    from logo_cli.deprecated import VALUES, option_aliases

    got = default_map(commands["train-policy"], "train-policy", old, option_aliases("train-policy"),
                      VALUES["train-policy"])  # fmt: skip
    assert got == {"mode": "real-only", "c": 0.5, "eval_env": "smax:3m"}
    # a command's own table is checked like a file of its own
    path.write_text('device = "cpu"\n[pretrain]\nhiden = 16\n')
    res = runner.invoke(app, ["pretrain", "--config", str(path)])
    assert res.exit_code == 2 and "'hiden' is not an option of `logo pretrain`" in res.output
