"""scripts/aggregate_results.py on fabricated evaluate JSONs: statistics, missing runs, markdown block."""

from __future__ import annotations

import importlib.util
import json
import statistics
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "aggregate_results.py"


@pytest.fixture(scope="module")
def agg():
    spec = importlib.util.spec_from_file_location("aggregate_results", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["aggregate_results"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


MODES = {"logo-weight": ("macql", "weight"), "macql": ("macql", "real-only"), "bc": ("bc", "real-only")}


def fabricate(out: Path, quality: str, method: str, seed: int, win_rate: float, ret: float, **over) -> None:
    """An evaluate --out JSON and the policy run's manifest, as the pipeline writes them."""
    run = out / "policies" / f"{quality}-{method}-s{seed}"
    run.mkdir(parents=True, exist_ok=True)
    algo, mode = over.pop("algo_mode", None) or MODES[method]
    manifest = {
        "stage": "train-policy",
        "config": {"algo": algo, "mode": mode, "steps": 500, "seed": over.pop("train_seed", seed)},
        "inputs": {"data": {"path": "d.h5", "hash": "sha256:aa"}},
        "sampler": {"c": 0.4 if mode == "weight" else None},
        "wall_time_s": 12.0,
        "metrics": {"steps_per_s": 40.0},
    }
    if "git_commit" in over:
        manifest["provenance"] = {"git_commit": over.pop("git_commit"), "git_dirty": over.pop("dirty", False)}
    (run / "manifest.json").write_text(json.dumps(manifest))
    episodes = 100
    ev = {
        "config": {"policy": str(run), "episodes": episodes},
        "episodes": episodes,
        "wins": round(win_rate * episodes),
        "win_rate": win_rate,
        "return_mean": ret,
        "policy": {"kind": "run", "run": str(run), "hash": f"sha256:{seed}"},
        "returns": [ret] * episodes,
    }
    (out / "eval").mkdir(parents=True, exist_ok=True)
    (out / "eval" / f"{quality}-{method}-s{seed}.json").write_text(json.dumps(ev))


def write_params(out: Path, qualities: list[str], methods: list[str], seeds: list[int]) -> None:
    params = {"env": "smax:3m", "qualities": qualities, "methods": methods, "seeds": [str(s) for s in seeds]}
    params.update(episodes=64, wm_steps=10, policy_steps=500, eval_episodes=100, commit="abc1234")
    (out / "params.json").write_text(json.dumps(params))


def write_steplog(out: Path, rows: list[tuple[str, str, float, str]]) -> None:
    (out / "logs").mkdir(parents=True, exist_ok=True)
    lines = ["time\tkind\tname\tseconds\tstatus"]
    lines += [f"2026-01-01T00:00:00Z\t{k}\t{n}\t{s}\t{st}" for k, n, s, st in rows]
    (out / "logs" / "steps.tsv").write_text("\n".join(lines) + "\n")


@pytest.fixture
def grid(tmp_path: Path) -> Path:
    """medium: logo-weight 3 seeds, macql 3 seeds, bc 2 seeds (s2 missing); expert planned, never run."""
    out = tmp_path / "run"
    wins = {"logo-weight": [0.6, 0.7, 0.8], "macql": [0.5, 0.3, 0.4], "bc": [0.2, 0.25]}
    rets = {"logo-weight": [1.5, 1.6, 1.7], "macql": [1.2, 1.0, 1.1], "bc": [0.9, 0.95]}
    for method, rates in wins.items():
        for seed, (w, r) in enumerate(zip(rates, rets[method], strict=True)):
            fabricate(out, "medium", method, seed, w, r)
    write_params(out, ["medium", "expert"], ["logo-weight", "macql", "bc"], [0, 1, 2])
    write_steplog(
        out,
        [
            ("step", "collect-medium", 50.0, "ran"),
            ("step", "train-medium-macql-s0", 100.0, "ran"),
            ("step", "train-medium-macql-s1", 30.0, "failed:1"),
            ("session", "run", 400.0, "stopped:1"),
            ("step", "collect-medium", 0.0, "skipped"),
            ("step", "train-medium-macql-s1", 120.0, "ran"),
            ("step", "collect-medium", 70.0, "ran"),  # redone after its artifact was deleted
            ("session", "run", 200.0, "done"),
        ],
    )
    return out


def cell(result: dict, quality: str, method: str) -> dict:
    (c,) = [c for c in result["cells"] if c["quality"] == quality and c["method"] == method]
    return c


def test_mean_and_sample_sd_over_seeds(agg, grid: Path) -> None:
    result = agg.main(["--out", str(grid)])
    c = cell(result, "medium", "logo-weight")
    assert c["n"] == 3 and c["expected"] == 3 and c["missing_seeds"] == []
    assert c["win_rate_mean"] == pytest.approx(0.7)
    assert c["win_rate_sd"] == pytest.approx(statistics.stdev([0.6, 0.7, 0.8]))  # ddof 1: 0.1
    assert c["win_rate_sd"] == pytest.approx(0.1)
    assert c["return_mean"] == pytest.approx(1.6)
    assert cell(result, "medium", "macql")["win_rate_mean"] == pytest.approx(0.4)
    saved = json.loads((grid / "results.json").read_text())
    assert saved["cells"] == result["cells"]
    run = next(r for r in saved["runs"] if r["method"] == "logo-weight" and r["seed"] == 0)
    assert run["provenance"]["mode"] == "weight" and run["provenance"]["c"] == 0.4
    assert run["problems"] == []


def test_missing_runs_are_missing_not_zero(agg, grid: Path) -> None:
    result = agg.main(["--out", str(grid)])
    bc = cell(result, "medium", "bc")
    assert bc["n"] == 2 and bc["missing_seeds"] == [2]
    assert bc["win_rate_mean"] == pytest.approx(0.225)  # mean of the two present, not (0.2+0.25+0)/3
    never = cell(result, "expert", "macql")
    assert never["n"] == 0 and never["win_rate_mean"] is None and never["win_rate_sd"] is None
    assert "medium/bc/s2" in result["missing"] and "expert/bc/s0" in result["missing"]
    assert "medium/macql/s0" not in result["missing"]


def test_one_seed_has_no_sd(agg, tmp_path: Path) -> None:
    out = tmp_path / "one"
    fabricate(out, "mixed", "macql", 0, 0.5, 1.0)
    fabricate(out, "expert", "bc", 1, 0.9, 1.9)
    result = agg.main(["--out", str(out)])  # no params.json: the grid is what was found
    c = cell(result, "mixed", "macql")
    assert c["n"] == 1 and c["win_rate_mean"] == 0.5 and c["win_rate_sd"] is None
    grid = [(c["quality"], c["method"]) for c in result["cells"]]
    assert grid == [("expert", "bc"), ("expert", "macql"), ("mixed", "bc"), ("mixed", "macql")]
    assert cell(result, "mixed", "bc")["missing_seeds"] == [0, 1]  # the seeds found: 0 and 1
    assert cell(result, "expert", "bc")["missing_seeds"] == [0]


def test_markdown_rows_and_rerun_replaces_only_the_block(agg, grid: Path, tmp_path: Path) -> None:
    md = tmp_path / "docs" / "results.md"
    md.parent.mkdir()
    md.write_text("# Results\n\nintro by hand\n\n" + agg.START + "\nold table\n" + agg.END + "\n\noutro\n")
    fig = tmp_path / "docs" / "figures" / "r.png"
    agg.main(["--out", str(grid), "--markdown", str(md), "--figure", str(fig)])
    text = md.read_text()
    assert text.startswith("# Results\n\nintro by hand\n") and text.rstrip().endswith("outro")
    assert "old table" not in text and text.count(agg.START) == 1
    assert (
        "| medium | LOGO + MACQL (weight) | 70.0% ± 10.0 | 1.600 ± 0.100 | 3/3 "
        "| s0: 60.0%, s1: 70.0%, s2: 80.0% |" in text
    )
    assert "| medium | BC | 22.5% ± 3.5 | 0.925 ± 0.035 | 2/3 (missing s2) | s0: 20.0%, s1: 25.0% |" in text
    assert "| expert | MACQL (real only) | missing | missing | 0/3 (missing s0, s1, s2) | - |" in text
    assert "Missing runs: medium/bc/s2, expert/" in text
    assert "Wall time: 10.0 min over 2 invocation(s)" in text  # 400 s + 200 s of sessions
    assert "](figures/r.png)" in text
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # A rerun with one more run replaces the block in place.
    fabricate(grid, "medium", "bc", 2, 0.3, 1.0)
    agg.main(["--out", str(grid), "--markdown", str(md)])
    text = md.read_text()
    assert text.count(agg.START) == 1 and "| medium | BC | 25.0% ± 5.0 |" in text
    assert "intro by hand" in text and "outro" in text


def test_markdown_block_appended_to_a_file_without_markers(agg, grid: Path, tmp_path: Path) -> None:
    md = tmp_path / "results.md"
    md.write_text("# Hand-written\n")
    agg.main(["--out", str(grid), "--markdown", str(md)])
    text = md.read_text()
    assert text.startswith("# Hand-written\n") and agg.START in text and agg.END in text


def test_wall_time_sums_sessions_and_ran_steps(agg, grid: Path) -> None:
    walls = agg.wall_times(grid / "logs" / "steps.tsv")
    assert walls["total_s"] == pytest.approx(600.0) and walls["sessions"] == 2
    assert walls["by_stage_s"] == {"collect": 70.0, "train": 220.0}  # the redone collect counts once
    assert walls["steps_ran"] == 3 and walls["steps_failed"] == 1


def test_mislabelled_and_unreadable_runs_are_reported(agg, tmp_path: Path) -> None:
    out = tmp_path / "bad"
    fabricate(out, "medium", "logo-weight", 0, 0.5, 1.0, algo_mode=("macql", "uniform"))
    fabricate(out, "medium", "macql", 1, 0.5, 1.0, train_seed=7)
    (out / "eval" / "medium-macql-s2.json").write_text("{not json")
    (out / "eval" / "notes.json").write_text("{}")
    result = agg.main(["--out", str(out)])
    problems = {(r["method"], r["seed"]): r["problems"] for r in result["runs"]}
    assert "expected ('macql', 'weight')" in problems[("logo-weight", 0)][0]
    assert "manifest seed 7" in problems[("macql", 1)][0]
    assert len(result["not_used"]) == 2 and all(
        "medium-macql-s2" in s or "notes" in s for s in result["not_used"]
    )
    assert cell(result, "medium", "macql")["n"] == 1  # the unreadable s2 is not a zero


@pytest.mark.parametrize(
    ("name", "parts"),
    [
        ("medium_replay-logo-weight-s2.json", ("medium_replay", "logo-weight", 2)),
        ("expert-bc-s10.json", ("expert", "bc", 10)),
        ("expert-bc.json", None),
        ("results.json", None),
    ],
)
def test_parse_name(agg, name: str, parts) -> None:
    assert agg.parse_name(Path(name)) == parts


def test_paired_differences_use_common_seeds_only(agg, grid: Path, tmp_path: Path) -> None:
    result = agg.main(["--out", str(grid), "--markdown", str(tmp_path / "r.md")])
    (bc,) = [d for d in result["paired_vs_logo_weight"] if d["method"] == "bc"]
    assert bc["seeds"] == [0, 1]  # bc has no seed 2
    assert bc["diffs"] == pytest.approx([0.4, 0.45])
    assert bc["mean"] == pytest.approx(0.425) and bc["positive"] == 2
    (mq,) = [d for d in result["paired_vs_logo_weight"] if d["method"] == "macql"]
    assert mq["diffs"] == pytest.approx([0.1, 0.4, 0.4]) and mq["sd"] == pytest.approx(
        statistics.stdev([0.1, 0.4, 0.4])
    )
    text = (tmp_path / "r.md").read_text()
    assert (
        "- medium: LOGO + MACQL (weight) minus BC, win rate per seed (points): +40.0, +45.0; "
        "mean +42.5 ± 3.5, higher on 2/2 seeds" in text
    )


def test_tagged_blocks_live_side_by_side(agg, grid: Path, tmp_path: Path) -> None:
    md = tmp_path / "results.md"
    agg.main(["--out", str(grid), "--markdown", str(md)])
    agg.main(["--out", str(grid), "--markdown", str(md), "--tag", "variant"])
    agg.main(["--out", str(grid), "--markdown", str(md), "--tag", "variant"])
    text = md.read_text()
    assert text.count(agg.START) == 1 and text.count("<!-- variant:start -->") == 1
    assert text.index(agg.END) < text.index("<!-- variant:start -->") < text.index("<!-- variant:end -->")


def test_results_json_lists_every_seed_with_its_commit(agg, grid: Path, tmp_path: Path) -> None:
    path = tmp_path / "docs" / "results" / "smax_3m.json"
    agg.main(["--out", str(grid), "--results-json", str(path)])
    saved = json.loads(path.read_text())
    assert saved["env"] == "smax:3m" and saved["methods"]["bc"] == "BC"
    medium = saved["results"]["medium"]
    assert sorted(medium) == ["bc", "logo-weight", "macql"]
    assert sorted(medium["bc"]) == ["s0", "s1"]  # the missing seed is absent, not zero
    s1 = medium["logo-weight"]["s1"]
    assert s1 == {"win_rate": 0.7, "return_mean": 1.6, "episodes": 100, "commit": "abc1234"}
    assert "expert" not in saved["results"]  # planned but never run: no fabricated cells


def test_each_run_keeps_the_commit_that_trained_it(agg, tmp_path: Path) -> None:
    # A grid resumed after a code change: medium trained at one commit, expert at a later one. The
    # sweep's own commit (the last invocation's) must not relabel the earlier runs.
    out = tmp_path / "run"
    for m in ("macql", "bc"):
        for s in (0, 1):
            fabricate(out, "medium", m, s, 0.5, 1.0, git_commit="1111111aaaa")
            fabricate(out, "expert", m, s, 0.5, 1.0, git_commit="2222222bbbb", dirty=(m == "bc" and s == 1))
    fabricate(out, "mixed", "bc", 0, 0.5, 1.0)  # no provenance in its manifest: the sweep's commit
    write_params(out, ["medium", "expert", "mixed"], ["macql", "bc"], [0, 1])
    path, md = tmp_path / "r.json", tmp_path / "results.md"
    agg.main(["--out", str(out), "--results-json", str(path), "--markdown", str(md)])
    res = json.loads(path.read_text())["results"]
    assert res["medium"]["macql"]["s1"]["commit"] == "1111111"
    assert res["expert"]["macql"]["s0"]["commit"] == "2222222"
    assert res["expert"]["bc"]["s1"]["commit"] == "2222222-dirty"
    assert res["mixed"]["bc"]["s0"]["commit"] == "abc1234"
    line = [ln for ln in md.read_text().splitlines() if ln.startswith("Parameters:")][0]
    assert "commit 1111111 (4 runs), 2222222 (3 runs), 2222222-dirty (1 run), abc1234 (1 run)" in line


def test_plans_of_several_invocations_make_the_grid(agg, tmp_path: Path) -> None:
    # One invocation ran three methods on two qualities, another two more methods on one quality:
    # the grid is their union, and a cell no invocation asked for is neither a row nor "missing".
    out = tmp_path / "run"
    for q in ("medium", "expert"):
        for m in ("logo-weight", "macql", "bc"):
            for s in (0, 1):
                fabricate(out, q, m, s, 0.5, 1.0)
    fabricate(out, "medium", "logo-penalty", 0, 0.4, 0.9, algo_mode=("macql", "penalty"))
    plans = [
        {"qualities": ["medium", "expert"], "methods": ["logo-weight", "macql", "bc"]},
        {"qualities": ["medium"], "methods": ["logo-penalty", "logo-uniform"]},
    ]
    (out / "plans.json").write_text(json.dumps(plans))
    write_params(out, ["medium"], ["logo-penalty", "logo-uniform"], [0, 1])  # the last invocation's
    result = agg.main(["--out", str(out)])
    cells = {(c["quality"], c["method"]): c for c in result["cells"]}
    assert set(cells) == {
        ("medium", "logo-weight"), ("medium", "macql"), ("medium", "bc"),
        ("medium", "logo-penalty"), ("medium", "logo-uniform"),
        ("expert", "logo-weight"), ("expert", "macql"), ("expert", "bc"),
    }  # fmt: skip
    assert cells[("medium", "logo-penalty")]["n"] == 1 and cells[("medium", "logo-penalty")][
        "missing_seeds"
    ] == [1]
    assert cells[("medium", "logo-uniform")]["n"] == 0
    medium_order = [c["method"] for c in result["cells"] if c["quality"] == "medium"]
    assert medium_order == ["logo-weight", "logo-penalty", "logo-uniform", "macql", "bc"]
    assert cells[("expert", "bc")]["n"] == 2 and cells[("expert", "bc")]["missing_seeds"] == []
    assert sorted(result["missing"]) == [
        "medium/logo-penalty/s1",
        "medium/logo-uniform/s0",
        "medium/logo-uniform/s1",
    ]


def test_results_json_leaves_out_where_the_artifacts_were_kept(agg, grid: Path, tmp_path: Path) -> None:
    params = json.loads((grid / "params.json").read_text())
    (grid / "params.json").write_text(json.dumps({**params, "artifacts": "/scratch/machine/art"}))
    path = tmp_path / "smax_3m.json"
    agg.main(["--out", str(grid), "--results-json", str(path)])
    saved = json.loads(path.read_text())
    assert "artifacts" not in saved["params"] and "/scratch/" not in path.read_text()
    assert saved["params"]["commit"] == "abc1234"


def test_unwinnable_env_is_compared_on_the_normalised_score(agg, tmp_path: Path):
    """MaMuJoCo evaluations have no win rate: the table, the paired differences and the compact JSON
    use the normalised score instead (0 = random, 100 = expert), never a 0% win rate."""
    out = tmp_path / "run"
    scores = {"logo-weight": [40.0, 50.0], "macql": [35.0, 38.0]}
    for method, values in scores.items():
        for seed, v in enumerate(values):
            fabricate(out, "medium", method, seed, 0.0, v * 10.0)
            path = out / "eval" / f"medium-{method}-s{seed}.json"
            ev = json.loads(path.read_text())
            ev.update(win_rate=None, wins=None, normalised_score=v)
            path.write_text(json.dumps(ev))
    write_params(out, ["medium"], ["logo-weight", "macql"], [0, 1])
    md = tmp_path / "results.md"
    compact = tmp_path / "compact.json"
    result = agg.main(["--out", str(out), "--markdown", str(md), "--results-json", str(compact)])
    cells = {c["method"]: c for c in result["cells"]}
    assert cells["logo-weight"]["win_rate_mean"] is None
    assert cells["logo-weight"]["normalised_score_mean"] == pytest.approx(45.0)
    assert cells["macql"]["normalised_score_sd"] == pytest.approx(statistics.stdev([35.0, 38.0]))
    (paired,) = result["paired_vs_logo_weight"]
    assert paired["diffs"] == pytest.approx([0.05, 0.12])  # score points / 100, like win-rate fractions
    text = md.read_text()
    assert "normalised score (mean ± sd)" in text and "45.0 ± 7.1" in text
    assert "0.0%" not in text
    assert "normalised score per seed (points): +5.0, +12.0" in text
    row = json.loads(compact.read_text())["results"]["medium"]["macql"]["s1"]
    assert row["win_rate"] is None and row["normalised_score"] == 38.0


def test_logo_on_another_backbone_is_paired_with_its_own_learner(agg, tmp_path: Path):
    """LOGO + MA-TD3+BC is compared seed by seed with MA-TD3+BC (and its penalty variant), not with BC;
    LOGO + MACQL is not compared with LOGO + MA-TD3+BC."""
    out = tmp_path / "run"
    values = {
        "logo-td3bc": [0.5, 0.6],
        "td3bc": [0.45, 0.5],
        "logo-td3bc-penalty": [0.4, 0.4],
        "bc": [0.1, 0.1],
        "logo-weight": [0.3, 0.2],
    }
    modes = {
        "logo-weight": ("macql", "weight"),
        "logo-td3bc": ("td3bc", "weight"),
        "td3bc": ("td3bc", "real-only"),
        "logo-td3bc-penalty": ("td3bc", "penalty"),
        "bc": ("bc", "real-only"),
    }
    for method, rates in values.items():
        for seed, w in enumerate(rates):
            fabricate(out, "medium", method, seed, w, 1.0, algo_mode=modes[method])
    write_params(out, ["medium"], list(values), [0, 1])
    result = agg.main(["--out", str(out)])
    same = {d["method"]: d for d in result["paired_same_backbone"]}
    assert set(same) == {"td3bc", "logo-td3bc-penalty"}
    assert same["td3bc"]["diffs"] == pytest.approx([0.05, 0.10])
    assert same["logo-td3bc-penalty"]["positive"] == 2
    # LOGO + MACQL against the learners and BC, not against LOGO on the other backbone
    assert {d["method"] for d in result["paired_vs_logo_weight"]} == {"td3bc", "bc"}
    assert all(r["problems"] == [] for r in result["runs"])
