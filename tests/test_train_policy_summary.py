"""`logo train-policy` says which weight temperature τ it trained with, and where it came from."""

from __future__ import annotations

import json

from faults_kit import invoke, train_args


def test_the_summary_shows_the_solved_temperature(kit, tmp_path):
    out = tmp_path / "tp"
    res = invoke(*train_args(kit, out, "--synthetic", kit.buf, "--json"))
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    manifest = json.loads((out / "manifest.json").read_text())["sampler"]
    assert summary["mode"] == "weight" and summary["temperature"] == manifest["temperature"] > 0
    assert summary["temperature_source"] == "solved for effective sample size 0.5"
    assert abs(summary["effective_sample_size"] - 0.5) < 0.05  # τ was solved for this ESS

    res = invoke(*train_args(kit, tmp_path / "tp2", "--synthetic", kit.buf, "--temperature", "2"),
                 env={"COLUMNS": "120"})  # fmt: skip
    assert res.exit_code == 0, res.output
    line = next(x for x in res.stdout.splitlines() if "weight temperature τ" in x)
    assert "│ 2 (given; effective sample size " in line, line


def test_no_temperature_row_without_weights(kit, tmp_path):
    res = invoke(*train_args(kit, tmp_path / "tp", "--mode", "real-only"), env={"COLUMNS": "120"})
    assert res.exit_code == 0, res.output
    assert "weight temperature" not in res.stdout and "real-only" in res.stdout
