"""`logo inspect` for zarr synthetic buffers and run directories (registered in stages/inspect.py).

Descriptions are plain JSON-ready dicts; the renderers here turn them into rich tables. Torch is
imported only to read checkpoints inside a run directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from logo_cli import metrics
from logo_cli.errors import LogoError

# Provenance attributes shown first, in this order; the rest follow.
_PROVENANCE = (
    "stage",
    "model",
    "policy",
    "horizon",
    "seed",
    "sample",
    "corruption",
    "source_data",
    "data_matches_pretrain",
    "inputs",
    "provenance",
)


def _size_bytes(path: Path) -> int:
    return (
        sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        if path.is_dir()
        else path.stat().st_size
    )


def buffer_stats(buf) -> dict[str, Any]:
    """Uncertainty quantiles, predicted reward, per-branch return and length, terminations, steps."""
    reward = buf.array("reward")
    terminated = buf.array("terminated")
    _, inverse = np.unique(buf.branch, return_inverse=True)
    lengths = np.bincount(inverse) if buf.n else np.zeros(0)
    ended = metrics.group_sums(buf.branch, terminated.astype(np.float64)) if buf.n else np.zeros(0)
    return {
        "uncertainty": metrics.quantiles(buf.uncertainty),
        "uncertainty_mean": float(buf.uncertainty.mean()) if buf.n else None,
        "uncertainty_cumulative": metrics.quantiles(buf.uncertainty_cum),
        "branch_length_counts": np.bincount(lengths.astype(np.int64)).tolist() if buf.n else [],
        "branches_terminated_fraction": float((ended > 0).mean()) if buf.n else None,
        "reward": metrics.summary(reward),
        "branch_return": metrics.summary(metrics.group_sums(buf.branch, reward) if buf.n else np.zeros(0)),
        "branch_length": metrics.summary(lengths),
        "terminated_fraction": float(terminated.mean()) if buf.n else None,
        "terminated_branches": int(terminated.sum()),
        "step_counts": np.bincount(buf.step.astype(np.int64)).tolist() if buf.n else [],
    }


def real_reference(data_path: Path, horizon: int | None) -> dict[str, Any] | None:
    """What the real data says a synthetic buffer should look like: the fraction of terminated rows
    and how many start states have at least `horizon` steps left in their episode."""
    from logo_cli.data.h5 import open_dataset

    try:
        with open_dataset(data_path) as ds:
            lengths, ended = ds.lengths.astype(np.int64), ds.terminated_mask.astype(bool)
    except Exception:  # a moved or unreadable source file: the buffer is still described
        return None
    rows = int(lengths.sum())
    out: dict[str, Any] = {
        "path": str(data_path),
        "terminated_fraction": float(ended.sum() / max(rows, 1)),
        "episode_length": metrics.summary(lengths),
    }
    if horizon:
        left = np.concatenate([np.arange(n, 0, -1) for n in lengths]) if rows else np.zeros(0)
        out[f"rows_with_{horizon}_or_more_steps_left"] = float((left >= horizon).mean()) if rows else None
    return out


def describe_buffer(path: Path) -> dict[str, Any]:
    """A synthetic buffer, complete or not (an incomplete one is described, flagged, not refused)."""
    from logo_cli.data.zarr_store import open_synthetic

    buf = open_synthetic(path, allow_incomplete=True)
    attrs = dict(buf.attrs)
    provenance = {k: attrs.pop(k) for k in _PROVENANCE if k in attrs}
    for k in ("format", "schema_version", "n_rows", "complete", "dims"):
        attrs.pop(k, None)
    return {
        "kind": "synthetic_buffer",
        "path": str(path),
        "complete": buf.complete,
        "transitions": buf.n,
        "branches": int(len(np.unique(buf.branch))),
        "size_bytes": _size_bytes(path),
        "dims": buf.dims.to_dict(),
        **buffer_stats(buf),
        "real_data": _buffer_reference(provenance, attrs),
        "provenance": provenance,
        "attrs": attrs,
    }


def _buffer_reference(provenance: dict, attrs: dict) -> dict[str, Any] | None:
    source = provenance.get("source_data") or attrs.get("source_data")
    if not isinstance(source, dict) or not source.get("path") or not Path(source["path"]).is_file():
        return None
    horizon = provenance.get("horizon", attrs.get("horizon"))
    return real_reference(Path(source["path"]), int(horizon) if isinstance(horizon, int) else None)


def _checkpoint_info(path: Path) -> dict[str, Any]:
    """Kind, dims and parameter count of a checkpoint file, read as data only."""
    from logo_cli.artifacts import load_checkpoint

    payload = load_checkpoint(path)
    info: dict[str, Any] = {"file": path.name, "size_bytes": path.stat().st_size}
    if not isinstance(payload, dict):
        return {**info, "format": type(payload).__name__}
    fmt = payload.get("format")
    info["format"] = fmt
    if fmt == "logo-world-model":
        from logo_cli.models.world_model import param_count, world_model_from_checkpoint

        model = world_model_from_checkpoint(payload, str(path))
        info.update(kind=model.kind, dims=model.dims.to_dict(), parameters=param_count(model))
        info["hparams"] = payload.get("hparams", {})
    elif fmt == "logo-policy":
        state = payload.get("state_dict", {})
        info.update(kind=f"policy ({payload.get('mode')})", dims=payload.get("dims"))
        info["parameters"] = int(sum(v.numel() for v in state.values() if hasattr(v, "numel")))
        info["hparams"] = payload.get("hparams", {})
    elif fmt == "logo-pretrain-state":  # pretrain's resumable trainer state, beside model.pt
        info.update(kind=f"pretrain trainer state ({payload.get('kind')})", dims=payload.get("dims"))
        info["step"] = (payload.get("trainer") or {}).get("step")
    else:
        info["keys"] = sorted(map(str, payload))[:20]
    return info


def describe_run_dir(path: Path) -> dict[str, Any]:
    """A stage run directory: its manifest (stage, config, inputs, metrics) and checkpoints."""
    from logo_cli.artifacts import read_manifest
    from logo_cli.provenance import resolve_input

    manifest = read_manifest(path)
    inputs = {}
    for role, spec in (manifest.get("inputs") or {}).items():
        if isinstance(spec, dict):  # found from any directory: absolute, or relative to the run
            found = resolve_input(spec, path)
            inputs[role] = {**spec, "resolved": str(found), "exists": found.exists()}
    if manifest.get("stage") == "export":  # TorchScript archives, not checkpoints: listed, not loaded
        checkpoints = [
            {"file": p.name, "size_bytes": p.stat().st_size, "format": "torchscript"}
            for p in sorted(path.glob("*.pt"))
        ]
    else:
        checkpoints = [_checkpoint_info(p) for p in sorted(path.glob("*.pt"))]
    files = {
        str(p.relative_to(path)): _size_bytes(p) for p in sorted(path.iterdir()) if not p.name.startswith(".")
    }
    known = {"stage", "schema_version", "package", "created", "host", "config", "inputs", "seed"}
    known |= {"wall_time_s", "metrics", "provenance"}
    return {
        "kind": "run_dir",
        "path": str(path),
        "stage": manifest.get("stage"),
        "created": manifest.get("created"),
        "package": manifest.get("package"),
        "seed": manifest.get("seed"),
        "wall_time_s": manifest.get("wall_time_s"),
        "config": manifest.get("config"),
        "inputs": inputs,
        "provenance": manifest.get("provenance"),
        "metrics": manifest.get("metrics"),
        "checkpoints": checkpoints,
        "files": files,
        "extra": {k: v for k, v in manifest.items() if k not in known},
    }


def describe_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint file on its own (a policy.pt, a model.pt, a trainer state), read as data only and
    validated as its loader would."""
    from logo_cli.artifacts import load_checkpoint

    info = _checkpoint_info(path)
    if info.get("format") == "logo-policy":  # the loader's checks: sizes, mode, finite weights
        from logo_cli.policies.torch_policy import policy_from_payload

        policy_from_payload(load_checkpoint(path), str(path))
    return {"kind": "checkpoint", "path": str(path), **info}


_STATES = {"logo-pretrain-state": "pretrain", "logo-train-policy-state": "train-policy"}


def describe_interrupted(path: Path) -> dict[str, Any]:
    """An interrupted pretrain or train-policy run: a checkpoint and no manifest yet. Shows the step
    it reached, its options and how to continue it."""
    from logo_cli.artifacts import load_checkpoint

    ckpt = path / "checkpoint.pt"
    state = load_checkpoint(ckpt)
    stage = _STATES.get(state.get("format")) if isinstance(state, dict) else None
    if stage is None:
        raise LogoError(f"{ckpt}: not a pretrain or train-policy checkpoint, so not an interrupted run")
    config = state.get("config") if isinstance(state.get("config"), dict) else {}
    if stage == "pretrain":
        step = (state.get("trainer") or {}).get("step") if isinstance(state.get("trainer"), dict) else None
        budget = config.get("max_steps")
        out = path
    else:
        step, budget = state.get("step"), config.get("steps")
        out = path.with_name(path.name.removesuffix(".partial"))
    files = {p.name: _size_bytes(p) for p in sorted(path.iterdir()) if not p.name.startswith(".")}
    return {
        "kind": "interrupted_run",
        "path": str(path),
        "stage": stage,
        "step": step,
        "budget": budget,
        "out": str(out),
        "resume": f"rerun the same `logo {stage}` command (--out {out}) to continue from step {step}",
        "dims": state.get("dims"),
        "config": config,
        "files": files,
    }


def render_interrupted(d: dict[str, Any]):
    table = _table(f"interrupted {d['stage']} run {d['path']}")
    budget = "" if d["budget"] in (None, "None") else f" of {d['budget']}"
    rows: list[tuple[str, str]] = [
        ("status", "[yellow]interrupted: no manifest.json yet[/]"),
        ("step reached", f"{_fmt(d['step'])}{budget}"),
        ("continue", d["resume"]),
    ]
    _flat("dims", d["dims"] or {}, rows)
    _flat("config", d["config"], rows)
    rows.append(("files", ", ".join(d["files"])))
    for k, v in rows:
        table.add_row(k, v)
    return table


def describe_zarr(path: Path) -> dict[str, Any]:
    """Entry point for any zarr group: only logo synthetic buffers are understood."""
    from logo_cli.artifact_kind import is_synthetic_buffer

    if not is_synthetic_buffer(path):
        raise LogoError(f"{path}: a zarr group, but not a logo synthetic buffer")
    return describe_buffer(path)


# ---- rendering ----


def _fmt(x: Any) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def _table(title: str):
    from rich.table import Table

    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    return table


def _flat(prefix: str, value: Any, rows: list[tuple[str, str]]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():  # an empty dict adds no row
            _flat(f"{prefix}.{k}" if prefix else str(k), v, rows)
    else:
        text = _fmt(value)
        rows.append((prefix, text if len(text) <= 100 else text[:97] + "..."))


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


def render_buffer(d: dict[str, Any]):
    table = _table(f"synthetic buffer {d['path']}")
    u, r, br, bl = d["uncertainty"], d["reward"], d["branch_return"], d["branch_length"]
    dims = d["dims"]
    rows = [
        ("complete", "yes" if d["complete"] else "[red]NO: an interrupted run; only a prefix[/]"),
        ("transitions / branches", f"{d['transitions']:,} / {d['branches']:,}"),
        ("size", f"{d['size_bytes'] / 2**20:.1f} MiB"),
        (
            "agents / obs / state / actions",
            f"{dims['n_agents']} / {dims['obs_dim']} / {dims['state_dim']} / {dims['n_actions']}",
        ),
        (
            "uncertainty p5/p25/p50/p75/p95",
            " / ".join(_fmt(u[k]) for k in ("p5", "p25", "p50", "p75", "p95")),
        ),
        (
            "reward mean ± sd",
            f"{_fmt(r['mean'])} ± {_fmt(r['sd'])} (min {_fmt(r['min'])}, max {_fmt(r['max'])})",
        ),
        ("branch return mean ± sd", f"{_fmt(br['mean'])} ± {_fmt(br['sd'])}"),
        ("branch length mean (min-max)", f"{_fmt(bl['mean'])} ({_fmt(bl['min'])}-{_fmt(bl['max'])})"),
        (
            "terminated",
            f"{d['terminated_branches']:,} transitions"
            + ("" if d["terminated_fraction"] is None else f" ({d['terminated_fraction']:.2%})"),
        ),
        ("rows per step", ", ".join(f"{i}:{c}" for i, c in enumerate(d["step_counts"]))),
        (
            "branches by length",
            ", ".join(f"{i}:{c}" for i, c in enumerate(d["branch_length_counts"]) if c),
        ),
        ("branches that terminated", _pct(d["branches_terminated_fraction"])),
    ]
    real = d.get("real_data")
    if real:
        rows.append(("real data: terminated rows", _pct(real["terminated_fraction"])))
        for k, v in real.items():
            if k.startswith("rows_with_"):
                rows.append((f"real data: {k.replace('_', ' ')}", _pct(v)))
    _flat("", d["provenance"], rows)
    _flat("attr", d["attrs"], rows)
    for k, v in rows:
        table.add_row(k, v)
    return table


def render_run_dir(d: dict[str, Any]):
    table = _table(f"{d['stage']} run {d['path']}")
    rows: list[tuple[str, str]] = [
        ("stage", _fmt(d["stage"])),
        ("created", _fmt(d["created"])),
        ("seed", _fmt(d["seed"])),
        ("wall time", "n/a" if d["wall_time_s"] is None else f"{d['wall_time_s']:.1f} s"),
    ]
    for role, spec in d["inputs"].items():
        missing = "" if spec["exists"] else " [red](missing)[/]"
        rows.append((f"input {role}", f"{spec.get('resolved')} {str(spec.get('hash', ''))[:19]}{missing}"))
    prov = d.get("provenance") or {}
    if prov:
        commit = prov.get("git_commit")
        dirty = " (uncommitted changes)" if prov.get("git_dirty") else ""
        from rich.markup import escape  # a command line may hold brackets

        rows.append(("command", escape(" ".join(map(str, prov.get("command") or []))) or "n/a"))
        rows.append(("git commit", f"{commit}{dirty}" if commit else "n/a"))
        versions = prov.get("versions") or {}
        rows.append(("versions", ", ".join(f"{k} {v}" for k, v in versions.items()) or "n/a"))
    for ck in d["checkpoints"]:
        desc = str(ck.get("kind", ck.get("format")))
        if "parameters" in ck:
            desc += f", {ck['parameters']:,} parameters"
        if "step" in ck:
            desc += f", step {_fmt(ck['step'])}"
        if ck.get("dims"):
            dm = ck["dims"]
            desc += f", dims N={dm['n_agents']} O={dm['obs_dim']} S={dm['state_dim']} A={dm['n_actions']}"
        rows.append((f"checkpoint {ck['file']}", desc))
    _flat("metric", d["metrics"], rows)
    _flat("config", d["config"], rows)
    _flat("", d["extra"], rows)
    rows.append(("files", ", ".join(d["files"])))
    for k, v in rows:
        table.add_row(k, v)
    return table
