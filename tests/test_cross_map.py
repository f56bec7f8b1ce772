"""The cross-map summary of several grids' compact results JSONs, on hand-made numbers."""

from __future__ import annotations

import json

import pytest

from logo_cli.sweep import cross_map


def doc(env: str, rates: dict[str, dict[str, list[float]]], returns: dict | None = None) -> dict:
    """A compact results JSON: quality -> method -> per-seed win rates (and returns, default 1.0)."""
    ret = returns or {}
    results = {
        q: {m: {f"s{i}": {"win_rate": w, "return_mean": ret.get(m, [1.0] * len(ws))[i], "episodes": 200}
                for i, w in enumerate(ws)}
            for m, ws in per.items()}
        for q, per in rates.items()
    }  # fmt: skip
    return {"env": env, "results": results}


A = doc(
    "smax:2s3z",
    {
        "medium": {"logo-weight": [0.6, 0.8], "macql": [0.5, 0.5], "cfcql": [0.4, 0.6],
                   "logo-cfcql": [0.4, 0.4], "bc": [0.7, 0.7]},
        "medium_replay": {"logo-weight": [0.1, 0.1], "macql": [0.3, 0.1], "bc": [0.2, 0.2]},
    },
)  # fmt: skip
B = doc("smax:3s_vs_5z", {"medium": {"logo-weight": [0.2], "macql": [0.3, 0.5], "bc": [0.1]}})


def test_cells_means_and_paired_differences():
    s = cross_map.summarise([A, B])
    rows = {(r["env"], r["quality"]): r for r in s["rows"]}
    med = rows[("smax:2s3z", "medium")]
    assert med["means"]["logo-weight"] == pytest.approx(70.0)
    assert med["diffs"]["logo_vs_macql"] == pytest.approx(20.0)
    assert med["diffs"]["logo_vs_cfcql"] == pytest.approx(-10.0)
    assert med["diffs"]["cfcql_vs_macql"] == pytest.approx(0.0)
    rep = rows[("smax:2s3z", "medium_replay")]
    assert rep["diffs"]["logo_vs_macql"] == pytest.approx(-10.0)
    assert rep["diffs"]["logo_vs_cfcql"] is None and "cfcql" not in rep["means"]
    # unequal seeds (s0 only against s0, s1): no paired difference rather than a partial one
    assert rows[("smax:3s_vs_5z", "medium")]["diffs"]["logo_vs_macql"] is None
    assert s["logo_pairs"] == 3 and s["logo_pairs_higher"] == 1
    assert s["logo_mean_gain"] == pytest.approx((20.0 - 10.0 - 10.0) / 3)
    assert s["cfcql_vs_macql_mean"] == pytest.approx(0.0)
    assert s["medium_replay_learners"] == 2
    assert s["medium_replay_below_bc"] == ["smax:2s3z logo-weight"]


def test_markdown_and_json_from_files(tmp_path, capsys):
    paths = []
    for name, d in (("a.json", A), ("b.json", B)):
        (tmp_path / name).write_text(json.dumps(d))
        paths.append(str(tmp_path / name))
    cross_map.main(paths)
    out = capsys.readouterr().out
    assert "| 2s3z | medium | 70.0 | 50.0 | 40.0 | 50.0 | 70.0 | +20.0 | -10.0 | +0.0 |" in out
    assert "| 3s_vs_5z | medium | 20.0 | 40.0 | – | – | 10.0 | – | – | – |" in out
    assert "on 1 of 3 (cell, backbone) pairs" in out and "1 of 2 learner cells reached BC" in out
    cross_map.main([*paths, "--json"])
    assert json.loads(capsys.readouterr().out)["logo_pairs"] == 3


def test_cells_nothing_wins_compare_returns():
    # 1 win in 400 episodes is below the 1-point threshold: the cell is judged on return, and out of
    # the win-rate totals
    c = doc(
        "smax:5m_vs_6m",
        {"medium_replay": {"logo-weight": [0.005, 0.0], "macql": [0.0, 0.0], "bc": [0.0, 0.0]}},
        {"logo-weight": [0.4, 0.5], "macql": [0.6, 0.6], "bc": [0.5, 0.5]},
    )
    s = cross_map.summarise([A, c])
    row = [r for r in s["rows"] if r["env"] == "smax:5m_vs_6m"][0]
    assert not row["won"] and row["diffs"]["logo_vs_macql"] == pytest.approx(-0.15)
    assert s["logo_pairs"] == 3 and s["unwon_logo_pairs"] == 1 and s["unwon_logo_pairs_higher"] == 0
    assert s["medium_replay_below_bc"] == ["smax:2s3z logo-weight", "smax:5m_vs_6m logo-weight"]
    assert "return -0.150" in cross_map.markdown(s)
    assert cross_map.summarise([c], min_win_rate=0.2)["rows"][0]["won"]
