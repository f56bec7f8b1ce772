"""The workspace package alone, on hand-made artifacts: the index, scanning, newest, staleness, locking."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from logo_cli.artifacts import file_hash
from logo_cli.workspace import Workspace, root_from, scan


def run_dir(path: Path, stage: str, created: str, inputs: dict[str, Path] | None = None) -> Path:
    """A finished run directory as the stages write it (manifest.json last)."""
    path.mkdir(parents=True)
    recorded = {role: {"path": str(p), "hash": file_hash(p)} for role, p in (inputs or {}).items()}
    manifest = {"stage": stage, "schema_version": 1, "created": created, "inputs": recorded, "config": {}}
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path


def buffer(path: Path, complete: bool, data: Path) -> Path:
    path.mkdir(parents=True)
    attrs = {
        "stage": "rollout",
        "format": "logo-synthetic",
        "complete": complete,
        "created": "2024-01-03T00:00:00Z",
    }
    attrs["source_data"] = {"path": str(data), "hash": file_hash(data)}
    (path / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group", "attributes": attrs}))
    return path


def test_root_from_option_then_environment_then_runs(monkeypatch):
    monkeypatch.setenv("LOGO_WORKSPACE", "/tmp/from-env")
    assert root_from(Path("mine")) == Path("mine") and root_from(None) == Path("/tmp/from-env")
    monkeypatch.delenv("LOGO_WORKSPACE")
    assert root_from(None) == Path("runs")


def test_record_writes_the_index_atomically_and_relative_to_the_workspace(tmp_path):
    data = tmp_path / "d.h5"
    data.write_bytes(b"data")
    ws = Workspace(tmp_path / "ws")
    a = run_dir(ws.out("pretrain", "a"), "pretrain", "2024-01-01T00:00:00Z", {"data": data})
    b = run_dir(ws.out("pretrain", "b"), "pretrain", "2024-01-01T00:00:00Z", {"data": data})
    ws.record("pretrain", a, {"data": "d.h5"})
    ws.record("pretrain", b)
    ws.record("pretrain", a)  # recorded again: the newest, listed once
    index = json.loads((tmp_path / "ws" / "index.json").read_text())
    assert [e["path"] for e in index["artifacts"]] == ["pretrain/b", "pretrain/a"]
    assert index["latest"] == {"pretrain": "pretrain/a"}
    entry = index["artifacts"][1]
    assert entry["inputs"]["data"]["path"] == "../d.h5" and entry["inputs"]["data"]["absolute"] == str(data)
    assert entry["inputs"]["data"]["hash"] == file_hash(data)
    assert json.loads((a / "manifest.json").read_text())["defaults"] == {"data": "d.h5"}
    assert sorted(p.name for p in (tmp_path / "ws").iterdir()) == [".index.lock", "index.json", "pretrain"]
    # a fresh reader sees the same, and a moved workspace still reads (its paths are relative)
    assert Workspace(tmp_path / "ws").newest("pretrain")[0].path == tmp_path / "ws" / "pretrain" / "a"
    os.rename(tmp_path / "ws", tmp_path / "moved")
    assert Workspace(tmp_path / "moved").newest("pretrain")[0].path == tmp_path / "moved" / "pretrain" / "a"
    # moved without its data: the data is found at the absolute path it had
    (tmp_path / "elsewhere").mkdir()
    os.rename(tmp_path / "moved", tmp_path / "elsewhere" / "ws")
    found = Workspace(tmp_path / "elsewhere" / "ws").newest("pretrain")[0]
    assert found.inputs["data"]["path"] == str(data)


def test_scan_orders_by_recorded_creation_time_and_reads_every_kind(tmp_path):
    data = tmp_path / "d.h5"
    data.write_bytes(b"data")
    root = tmp_path / "ws"
    newer = run_dir(root / "pretrain" / "newer", "pretrain", "2024-01-02T00:00:00Z", {"data": data})
    run_dir(root / "pretrain" / "older", "pretrain", "2024-01-01T00:00:00Z", {"data": data})  # written last
    (root / "pretrain" / "stopped").mkdir()
    (root / "pretrain" / "stopped" / "checkpoint.pt").write_bytes(b"")
    (root / "policy" / "p.partial").mkdir(parents=True)
    (root / "policy" / "p.partial" / "checkpoint.pt").write_bytes(b"")
    buffer(root / "rollout" / "b.zarr", complete=False, data=data)
    (root / "evaluate").mkdir()
    (root / "evaluate" / "e.json").write_text(
        json.dumps({"stage": "evaluate", "created": "2024-01-04T00:00:00Z"})
    )
    (root / "evaluate" / "other.json").write_text("[1, 2]")
    (root / ".hidden.tmp").mkdir()  # a staged directory: never an artifact
    (root / ".hidden.tmp" / "manifest.json").write_text(json.dumps({"stage": "calibrate"}))

    found = {(e.stage, e.path.relative_to(root).as_posix(), e.state) for e in scan(root)}
    assert found == {
        ("pretrain", "pretrain/newer", "complete"),
        ("pretrain", "pretrain/older", "complete"),
        ("pretrain", "pretrain/stopped", "interrupted"),
        ("train-policy", "policy/p", "interrupted"),
        ("rollout", "rollout/b.zarr", "interrupted"),
        ("evaluate", "evaluate/e.json", "complete"),
    }
    notes: list[str] = []
    ws = Workspace(root, notes.append)
    assert ws.newest("pretrain")[0].path == newer  # by the manifests' creation time, not file times
    assert ws.newest("rollout") == (None, ws.of_stage("rollout")[0])  # only an interrupted one
    assert ws.source == "scan" and len(notes) == 1 and "index.json is missing" in notes[0]


def test_a_corrupt_index_warns_once_and_falls_back_to_scanning(tmp_path):
    data = tmp_path / "d.h5"
    data.write_bytes(b"data")
    root = tmp_path / "ws"
    run = run_dir(root / "pretrain" / "a", "pretrain", "2024-01-01T00:00:00Z", {"data": data})
    root.joinpath("index.json").write_text('{"format": "logo-workspace-index", "artifacts": [{"stage": 1}]}')
    notes: list[str] = []
    ws = Workspace(root, notes.append)
    assert ws.newest("pretrain")[0].path == run
    ws.record("pretrain", run)  # reads the index again: still one warning
    assert len(notes) == 1 and "unreadable" in notes[0] and "scanning" in notes[0]
    assert json.loads(root.joinpath("index.json").read_text())["latest"] == {"pretrain": "pretrain/a"}


def test_staleness_uses_size_and_mtime_then_the_hash(tmp_path):
    data = tmp_path / "d.h5"
    data.write_bytes(b"data")
    ws = Workspace(tmp_path / "ws")
    run = run_dir(ws.out("pretrain", "a"), "pretrain", "2024-01-01T00:00:00Z", {"data": data})
    entry = ws.record("pretrain", run)
    assert entry is not None and ws.stale_reasons(entry) == []
    os.utime(data, ns=(1, 1))  # touched, same content: hashed, still up to date
    assert ws.input_state(entry.inputs["data"]) == "unchanged"
    data.write_bytes(b"DATA")
    ws = Workspace(tmp_path / "ws")  # a new command: no cached hash
    entry = ws.newest("pretrain")[0]
    assert ws.stale_reasons(entry) == ["data changed since"]
    data.unlink()
    assert ws.stale_reasons(entry) == ["data missing since"]


def test_stale_sources_make_what_came_from_them_stale(tmp_path):
    data = tmp_path / "d.h5"
    data.write_bytes(b"data")
    ws = Workspace(tmp_path / "ws")
    run = run_dir(ws.out("pretrain", "a"), "pretrain", "2024-01-01T00:00:00Z", {"data": data})
    (run / "model.pt").write_bytes(b"weights")
    ws.record("pretrain", run)
    pol = run_dir(
        ws.out("train-policy", "p"), "train-policy", "2024-01-02T00:00:00Z", {"model": run / "model.pt"}
    )
    ws.record("train-policy", pol)
    data.write_bytes(b"other")
    ws = Workspace(tmp_path / "ws")
    rows = {r["stage"]: r for r in ws.status()["stages"]}
    assert rows["pretrain"]["reasons"] == ["data changed since"]
    assert rows["train-policy"]["reasons"] == ["model comes from a stale pretrain run"]
    assert rows["train-policy"]["inputs"]["model"]["from"]["stage"] == "pretrain"
    assert rows["rollout"] == {"stage": "rollout", "artifact": None, "state": "none", "next": "logo rollout"}


def test_parallel_records_keep_every_entry(tmp_path):
    """Runs written outside the workspace (--out elsewhere): only the index knows them, so a lost
    update would lose one."""
    ws_root = tmp_path / "ws"
    runs = [run_dir(tmp_path / "out" / f"c{i}", "calibrate", "2024-01-01T00:00:00Z") for i in range(8)]
    threads = [threading.Thread(target=Workspace(ws_root).record, args=("calibrate", r)) for r in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    index = json.loads((ws_root / "index.json").read_text())
    assert sorted(e["absolute"] for e in index["artifacts"]) == sorted(str(r) for r in runs)
    assert sorted(e["path"] for e in index["artifacts"]) == [f"../out/c{i}" for i in range(8)]
