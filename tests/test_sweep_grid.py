"""`logo sweep` before anything runs: the grid file's checks (one line, exit 2) and the task graph's
shape and keys. No Ray needed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from logo_cli.cli import app
from logo_cli.sweep import graph
from logo_cli.sweep import grid as grid_module

METHODS = ("logo-weight", "global-weight", "bc")

REPO = Path(__file__).resolve().parents[1]
MEDIUM = REPO / "datasets" / "smax_3m_medium.h5"

BASE = f"""
env = "smax:3m"
qualities = ["medium", "small"]
methods = ["logo-weight", "global-weight", "bc"]
seeds = [0, 1]
[datasets]
small = "{MEDIUM}"
[pretrain]
max-steps = 5
[train-policy]
steps = 5
horizon = 3
[evaluate]
episodes = 2
"""


def write(tmp_path: Path, text: str, name: str = "grid.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def one_line_error(tmp_path: Path, text: str) -> str:
    result = CliRunner().invoke(app, ["sweep", str(write(tmp_path, text)), "--dry-run"])
    assert result.exit_code == 2, result.output
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize(
    "change, needle",
    [
        (lambda t: t + "\nthreads = 2\n", "unknown key 'threads'"),
        (lambda t: t.replace('"bc"]', '"bc", "dqn"]'), "unknown method 'dqn'"),
        (
            lambda t: t.replace("max-steps = 5", "max-steps = 5\nmax-stpes = 3"),
            "[pretrain]: unknown key 'max-stpes'",
        ),
        (
            lambda t: t.replace("steps = 5\nhorizon", 'steps = 5\nout = "x"\nhorizon'),
            "'out' (--out: set by the sweep)",
        ),
        (lambda t: t.replace("episodes = 2", 'episodes = "many"'), "[evaluate] episodes = 'many'"),
        (
            lambda t: t.replace(str(MEDIUM), "/nonexistent/data.h5"),
            "dataset file /nonexistent/data.h5 does not exist",
        ),
        (lambda t: t.replace('"medium", "small"]', '"tiny", "small"]'), "quality 'tiny'"),
        (lambda t: t + "\n[train-policy.dqn]\nlr = 0.1\n", "[train-policy.dqn]: unknown method"),
        (lambda t: t + "\n[evaluate\n", "not a valid TOML file"),
    ],
)
def test_a_bad_grid_file_is_one_error_line_before_anything_runs(tmp_path, change, needle):
    line = one_line_error(tmp_path, change(BASE))
    assert needle in line, line
    assert "grid.toml" in line


def test_a_missing_grid_file_is_one_error_line(tmp_path):
    result = CliRunner().invoke(app, ["sweep", str(tmp_path / "none.toml"), "--dry-run"])
    assert result.exit_code == 2 and "no such grid file" in result.output


def test_options_take_the_commands_spellings_and_relative_paths_from_the_grid_folder(tmp_path):
    text = BASE.replace("max-steps = 5", 'max_steps = 5\nmodel = "global"\nshare-local = false') + (
        '\n[collect]\nbehaviour = "ladder"\ngreedy = true\n'
    )
    with pytest.raises(
        Exception, match="'model' .--kind: set by the sweep"
    ):  # --model is --kind's older name
        grid_module.load(write(tmp_path, text))
    g = grid_module.load(write(tmp_path, text.replace('model = "global"\n', "")))
    assert g.options["pretrain"] == {"steps": ["--steps", "5"], "share-local": ["--per-agent-local"]}
    assert g.options["collect"]["behaviour"] == ["--behaviour", str(tmp_path / "ladder")]
    assert g.options["collect"]["stochastic"] == ["--greedy"]


def test_shared_work_is_one_task_each():
    g = grid_module.load(write_tmp(BASE))
    tasks = graph.expand(g)
    counts = {s: c["tasks"] for s, c in graph.counts(tasks).items()}
    # 2 datasets; world models: 2 qualities x 2 kinds (logo, global) x 2 seeds; 2 x 3 x 2 policies
    assert counts == {"dataset": 2, "pretrain": 8, "train-policy": 12, "evaluate": 12}
    assert len({t.key for t in tasks}) == len(tasks)
    order = {t.key: i for i, t in enumerate(tasks)}
    assert all(order[d] < order[t.key] for t in tasks for d in t.deps)
    bc = [t for t in tasks if t.stage == "train-policy" and t.meta["method"] == "bc"]
    assert all(len(t.deps) == 1 for t in bc)  # real data only: no world model
    assert all("--horizon" not in t.options for t in bc)  # a world-model option, left out


def test_cfcql_methods_train_cfcql_with_and_without_the_logo_world_model():
    old = 'methods = ["logo-weight", "global-weight", "bc"]'
    text = BASE.replace(old, 'methods = ["cfcql", "logo-cfcql"]')
    tasks = graph.expand(grid_module.load(write_tmp(text)))
    policies = {t.meta["method"]: t for t in tasks if t.stage == "train-policy" and t.label.endswith("s0")}
    by_key = {t.key: t for t in tasks}
    for method, mode in (("cfcql", "real-only"), ("logo-cfcql", "weight")):
        opts = list(policies[method].options)
        assert opts[opts.index("--algo") + 1] == "cfcql" and opts[opts.index("--mode") + 1] == mode
    # only LOGO + CFCQL waits for a world model, and it is the LOGO one
    assert [by_key[d].stage for d in policies["cfcql"].deps] == ["dataset"]
    wm = [by_key[d] for d in policies["logo-cfcql"].deps if by_key[d].stage == "pretrain"]
    assert len(wm) == 1 and "logo" in wm[0].label


def write_tmp(text: str) -> Path:
    import tempfile

    folder = Path(tempfile.mkdtemp())
    return write(folder, text)


def keys(text: str) -> dict[str, set[str]]:
    tasks = graph.expand(grid_module.load(write_tmp(text)))
    out: dict[str, set[str]] = {}
    for t in tasks:
        out.setdefault(t.stage, set()).add(t.key)
    return out


@pytest.mark.parametrize(
    "change, changed",
    [
        (lambda t: t.replace("steps = 5\nhorizon", "steps = 6\nhorizon"), {"train-policy", "evaluate"}),
        (lambda t: t.replace("max-steps = 5", "max-steps = 6"), {"pretrain", "train-policy", "evaluate"}),
        (lambda t: t.replace("episodes = 2", "episodes = 3"), {"evaluate"}),
        (lambda t: t.replace("steps = 5\nhorizon", "horizon"), {"train-policy", "evaluate"}),
    ],
)
def test_a_changed_option_changes_the_keys_of_its_stage_and_those_after_it_only(change, changed):
    before, after = keys(BASE), keys(change(BASE))
    assert {s for s in graph.STAGES if before[s] != after[s]} == changed
    first = next(s for s in graph.STAGES if s in changed)
    assert not before[first] & after[first]  # a stage table applies to every task of the stage


def test_a_world_model_option_does_not_touch_the_real_data_only_policies():
    before, after = graph.expand(grid_module.load(write_tmp(BASE))), None
    after = graph.expand(grid_module.load(write_tmp(BASE.replace("horizon = 3", "horizon = 4"))))
    same = {t.key for t in before} & {t.key for t in after}
    for t in before:
        real_only = t.stage in ("train-policy", "evaluate") and t.label.split("/")[1] == "bc"
        assert (t.key in same) == (t.stage in ("dataset", "pretrain") or real_only), t.label


def test_dry_run_prints_the_graph_counts(tmp_path):
    result = CliRunner().invoke(
        app, ["sweep", str(write(tmp_path, BASE)), "--dry-run", "--json", "--root", str(tmp_path / "r")]
    )
    assert result.exit_code == 0, result.output
    import json

    doc = json.loads(result.output)
    assert doc["tasks"] == 34 and doc["stages"]["pretrain"] == {"tasks": 8, "done": 0}


def test_the_shipped_grids_load():
    for path in sorted((REPO / "scripts" / "grids").glob("*.toml")):
        tasks = graph.expand(grid_module.load(path))
        assert tasks, path


def test_without_ray_the_error_says_what_to_install(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    result = CliRunner().invoke(app, ["sweep", str(write(tmp_path, BASE)), "--root", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert re.search(r'pip install "logo-cli\[cluster\]"', result.output), result.output


def test_the_live_table_counts_each_cell_and_the_eta_spreads_the_rest_over_the_slots():
    from rich.console import Console

    from logo_cli.sweep import progress
    from logo_cli.sweep.execute import State

    tasks = graph.expand(grid_module.load(write_tmp(BASE)))
    state = State(tasks, slots=2)
    for t in tasks:
        state.status[t.key] = "pending"
    assert progress.eta(state) is None  # no stage has a measured task yet
    for t in tasks:
        if t.stage in ("dataset", "pretrain"):
            state.status[t.key] = "ran"
            state.records[t.key] = {"stage": t.stage, "seconds": 10.0}
    policies = [t for t in tasks if t.stage == "train-policy"]
    state.status[policies[0].key], state.records[policies[0].key] = (
        "ran",
        {"stage": "train-policy", "seconds": 4.0},
    )
    state.status[policies[1].key] = "failed"
    assert progress.eta(state) is None  # evaluations not measured yet
    evals = [t for t in tasks if t.stage == "evaluate"]
    state.status[evals[0].key], state.records[evals[0].key] = "ran", {"stage": "evaluate", "seconds": 2.0}
    state.status[evals[1].key] = "skipped"
    # 10 policies left at 4 s and 10 evaluations at 2 s, two at a time
    assert progress.eta(state) == pytest.approx((10 * 4.0 + 10 * 2.0) / 2)
    line = progress.footer(state)
    assert line.startswith("34 tasks: 0 finished before, 12 ran, 0 running, 1 failed, 1 skipped")
    console = Console(width=200, record=True)
    console.print(progress.table(state))
    text = console.export_text()
    rows = {m: next(x for x in text.splitlines() if "medium " in x and f" {m} " in x) for m in METHODS}
    assert re.search(r"1/2 │ +1/2 │$", rows["logo-weight"])  # seed 0 of 2 trained and evaluated
    assert "0/2 1 failed" in rows["global-weight"] and "0/2 1 skip" in rows["global-weight"]
    assert "(shared)" in text and "4/4" in text


def test_several_maps_each_get_their_datasets_and_everything_after_them():
    text = BASE.replace('env = "smax:3m"', 'env = ["smax:3m", "smax:2s3z"]')
    text = (
        text.replace("[datasets]\n", '[datasets."smax:3m"]\n')
        + f'[datasets."smax:2s3z"]\nsmall = "{MEDIUM}"\n'
    )

    tasks = graph.expand(grid_module.load(write_tmp(text)))
    counts = {s: c["tasks"] for s, c in graph.counts(tasks).items()}
    assert counts == {"dataset": 4, "pretrain": 16, "train-policy": 24, "evaluate": 24}
    assert len({t.key for t in tasks}) == len(tasks)
    data = {(t.meta["env"], t.meta["quality"]): t for t in tasks if t.stage == "dataset"}
    assert data[("smax:3m", "small")].source == data[("smax:2s3z", "small")].source == str(MEDIUM)
    assert data[("smax:2s3z", "medium")].source is None  # collected, from its own map
    assert data[("smax:2s3z", "medium")].options[:2] == ["--env", "smax:2s3z"]
    evals = [t for t in tasks if t.stage == "evaluate" and t.meta["env"] == "smax:2s3z"]
    assert all(t.options[:2] == ["--env", "smax:2s3z"] for t in evals)
    assert evals[0].label.startswith("smax:2s3z ")


def test_several_maps_need_one_datasets_table_per_map(tmp_path):
    text = BASE.replace('env = "smax:3m"', 'env = ["smax:3m", "smax:2s3z"]')
    assert "one table per map" in one_line_error(tmp_path, text)


def test_the_help_names_every_option_and_the_extra_to_install():
    out = CliRunner().invoke(app, ["sweep", "--help"], terminal_width=200).output
    out = re.sub(r"\x1b\[[0-9;]*m", "", out)
    for option in ("--root", "--address", "--num-cpus", "--cpus-per-task", "--max-retries", "--dry-run"):
        assert option in out
    assert "--report" in out and "--json" in out and "[default: 2]" in out
    assert 'pip install "logo-cli[cluster]"' in out and "grid's [report] table" in out  # not eaten as markup


def test_num_cpus_with_an_address_is_refused(tmp_path):
    result = CliRunner().invoke(
        app, ["sweep", str(write(tmp_path, BASE)), "--address", "auto", "--num-cpus", "2"]
    )
    assert result.exit_code == 2 and "--num-cpus sizes a local Ray" in result.output


def test_a_variant_is_a_known_method_with_its_own_train_policy_options():
    old = 'methods = ["logo-weight", "global-weight", "bc"]'
    text = BASE.replace(old, 'methods = ["oracle-weight", "oracle-share", "macql"]')
    text += '\n[variants."oracle-share"]\nbase = "oracle-weight"\nsynthetic-ratio = 0.1\nobs-noise = 0.5\n'
    tasks = graph.expand(grid_module.load(write_tmp(text)))
    by_key = {t.key: t for t in tasks}
    policies = {t.meta["method"]: t for t in tasks if t.stage == "train-policy" and t.label.endswith("s0")}
    share = list(policies["oracle-share"].options)
    assert share[share.index("--synthetic-ratio") + 1] == "0.1" and "--obs-noise" in share
    assert "--synthetic-ratio" not in policies["oracle-weight"].options
    # both oracle methods share the one oracle run of their quality and seed
    models = {
        d
        for m in ("oracle-weight", "oracle-share")
        for d in policies[m].deps
        if by_key[d].stage == "pretrain"
    }
    assert len(models) == 1 and "oracle" in by_key[models.pop()].label
    assert policies["oracle-share"].key != policies["oracle-weight"].key


@pytest.mark.parametrize(
    "table, needle",
    [
        ('[variants."x"]\nbase = "dqn"\n', "base = 'dqn'"),
        ('[variants."macql"]\nbase = "bc"\n', "a known method already has this name"),
        ('[variants."x"]\nbase = "bc"\nstepz = 3\n', "unknown key 'stepz'"),
    ],
)
def test_a_bad_variant_is_one_error_line(tmp_path, table, needle):
    assert needle in one_line_error(tmp_path, BASE + "\n" + table)


def test_renamed_options_keep_the_task_keys_of_earlier_sweeps():
    """--steps (pretrain) and --truncation (train-policy) were --max-steps and --c: a sweep root made
    then still finds its finished tasks."""
    import hashlib
    import json

    from logo_cli.sweep.graph import task_key

    def old_key(stage, deps, options):
        doc = {"stage": stage, "deps": deps, "options": sorted(options)}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]

    assert task_key("pretrain", ["d"], ["--steps", "5", "--hidden", "16"], {}) == old_key(
        "pretrain", ["d"], ["--max-steps", "5", "--hidden", "16"]
    )
    assert task_key("train-policy", ["d"], ["--truncation", "0.5", "--steps", "5"], {}) == old_key(
        "train-policy", ["d"], ["--c", "0.5", "--steps", "5"]
    )
