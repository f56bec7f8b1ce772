"""Describe any artifact on disk: `describe(path) -> dict` (plain data) and `render(dict) -> rich`.

Artifact kinds are recognised by the DESCRIBERS list, tried in order: each entry has a predicate on
the path and the dotted name of a `describe(path) -> dict` function, imported only when chosen so
inspecting a dataset never imports torch or zarr. A new kind (a zarr buffer, a run directory) is one
more entry here plus, optionally, a renderer in RENDERERS keyed by the description's "kind"; kinds
without one are shown by the generic key/value renderer.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logo_cli.errors import LogoError


@dataclass(frozen=True)
class InspectConfig:
    path: Path = field(
        metadata={"help": "Artifact to describe (a dataset, or any kind registered in DESCRIBERS)."}
    )


@dataclass(frozen=True)
class Describer:
    kind: str  # the "kind" its descriptions carry
    what: str  # how the artifact looks, for the error on unknown paths
    matches: Callable[[Path], bool]
    describe: str  # "module:function", imported lazily

    def run(self, path: Path) -> dict[str, Any]:
        module, func = self.describe.split(":")
        return getattr(importlib.import_module(module), func)(path)


def _is_h5_file(path: Path) -> bool:
    if not path.is_file():
        return False
    if path.suffix.lower() in (".h5", ".hdf5"):
        return True  # a broken .h5 file still goes to the dataset reader, which names the problem
    import h5py

    return h5py.is_hdf5(path)


def _is_part_folder(path: Path) -> bool:
    return path.is_dir() and any(path.glob("part_*.h5"))


DESCRIBERS: list[Describer] = [
    Describer("dataset", "an .h5 dataset", _is_h5_file, "logo_cli.stages.inspect:describe_dataset"),
    Describer(
        "dataset", "a folder of part_*.h5 files", _is_part_folder, "logo_cli.stages.inspect:describe_dataset"
    ),
    # zarr synthetic buffers and stage run directories: stages/inspect_artifacts.py
    Describer(
        "synthetic_buffer",
        "a zarr synthetic buffer",
        lambda p: p.is_dir() and (p / "zarr.json").is_file(),
        "logo_cli.stages.inspect_artifacts:describe_zarr",
    ),
    Describer(
        "run_dir",
        "a run directory with manifest.json",
        lambda p: p.is_dir() and ((p / "manifest.json").exists() or (p / "manifest.json").is_symlink()),
        "logo_cli.stages.inspect_artifacts:describe_run_dir",
    ),
    Describer(
        "checkpoint",
        "a .pt checkpoint",
        lambda p: p.is_file() and p.suffix == ".pt",
        "logo_cli.stages.inspect_artifacts:describe_checkpoint",
    ),
    Describer(
        "interrupted_ladder",
        "an interrupted ladder training (<dir>.partial with resume.pt)",
        lambda p: p.is_dir() and (p / "resume.pt").is_file(),
        "logo_cli.stages.ladder_resume:describe_partial",
    ),
    Describer(
        "interrupted_run",
        "an interrupted run (checkpoint.pt without manifest.json)",
        lambda p: p.is_dir() and (p / "checkpoint.pt").is_file(),
        "logo_cli.stages.inspect_artifacts:describe_interrupted",
    ),
]


# what `<out>.partial/` may hold when `<out>` does not exist yet
WORK_DIRECTORY_KINDS = ("interrupted_ladder", "interrupted_run")


def describe(path: str | Path) -> dict[str, Any]:
    """A JSON-ready description of the artifact at `path`, chosen by its kind."""
    path = Path(path)
    if not path.exists():
        # an output whose work directory (train-policy's, a ladder's) is still beside it
        partial = path.with_name(path.name + ".partial")
        for entry in DESCRIBERS:
            if entry.kind in WORK_DIRECTORY_KINDS and entry.matches(partial):
                return entry.run(partial)
        raise LogoError(f"{path}: no such file or folder")
    for entry in DESCRIBERS:
        if entry.matches(path):
            return entry.run(path)
    kinds = "; ".join(d.what for d in DESCRIBERS)
    raise LogoError(f"{path}: not an artifact logo can inspect (expected {kinds})")


def run(cfg: InspectConfig, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    if progress:
        progress(f"reading {cfg.path}")
    return describe(cfg.path)


def _stats(x) -> dict[str, float]:
    return {"mean": float(x.mean()), "std": float(x.std()), "min": float(x.min()), "max": float(x.max())}


def describe_dataset(path: Path) -> dict[str, Any]:
    """Sizes, episode lengths and returns, wins and terminations of a canonical h5 dataset."""
    from logo_cli.data.h5 import open_dataset

    with open_dataset(path) as ds:
        lay, lengths, term = ds.layout, ds.lengths, ds.terminated_mask
        won, probs = ds.won, ds.probs_recorded()
        timeouts = ~term & (lengths == ds.episode_limit)
        return {
            "kind": "dataset",
            "path": str(path),
            "files": [str(p) for p in ds.parts],
            "size_bytes": sum(p.stat().st_size for p in ds.parts),
            "map_name": ds.map_name,
            "quality": ds.quality,
            "episodes": ds.n_episodes,
            "transitions": ds.n_transitions,
            "n_agents": lay.n_agents,
            "obs_dim": lay.obs_dim,
            "state_dim": lay.state_dim,
            "discrete": lay.discrete,
            "n_actions": lay.n_actions,
            "action_shape": [lay.n_agents, 1 if lay.discrete else lay.n_actions],
            "episode_limit": ds.episode_limit,
            "episode_length": {
                "mean": float(lengths.mean()),
                "min": int(lengths.min()),
                "max": int(lengths.max()),
            },
            "return": _stats(ds.returns),
            "win_rate": None if won is None else float(won.mean()),
            "terminations": {
                "terminated": int(term.sum()),
                "timeouts": int(timeouts.sum()),
                # neither a real end nor the limit: an episode cut short by its collector
                "cut_short": int((~term & ~timeouts).sum()),
            },
            # behaviour probabilities: stored and not all zeros (zeros: a converter had none to copy)
            "has_probs": probs,
            "probs_stored_as_zeros": lay.has_probs and not probs,
            "ignored_keys": list(lay.ignored_keys),
            "attrs": ds.attrs,
        }


# ---- rendering (separate from the data, so --json and the table show the same facts) ----


def _short(value: Any, limit: int = 80) -> str:
    text = str(value)
    if isinstance(value, list) and len(value) > 8:
        text = f"[{len(value)} values: {', '.join(map(str, value[:4]))}, ...]"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _probs(d: dict[str, Any]) -> str:
    if d["has_probs"]:
        return "yes"
    return "no (the file's probs are all zeros)" if d.get("probs_stored_as_zeros") else "no"


def _render_dataset(d: dict[str, Any]):
    from rich.table import Table

    table = Table(title=f"dataset {d['path']}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    length, ret, term = d["episode_length"], d["return"], d["terminations"]
    rows = [
        ("map / quality", f"{d['map_name'] or '?'} / {d['quality'] or '?'}"),
        ("files", f"{len(d['files'])} ({d['size_bytes'] / 2**20:.1f} MiB)"),
        ("episodes", f"{d['episodes']}"),
        ("transitions", f"{d['transitions']}"),
        ("agents", f"{d['n_agents']}"),
        ("obs / state dims", f"{d['obs_dim']} / {d['state_dim']}"),
        (
            "actions",
            f"discrete, {d['n_actions']} per agent"
            if d["discrete"]
            else f"continuous, {d['n_actions']} per agent",
        ),
        ("episode limit", f"{d['episode_limit']}"),
        ("episode length", f"{length['mean']:.1f} (min {length['min']:.0f}, max {length['max']:.0f})"),
        ("return", f"{ret['mean']:.3f} ± {ret['std']:.3f} (min {ret['min']:.3f}, max {ret['max']:.3f})"),
        ("win rate", "n/a" if d["win_rate"] is None else f"{d['win_rate']:.1%}"),
        (
            "ends",
            f"{term['terminated']} terminated, {term['timeouts']} time-outs"
            + (f", {term['cut_short']} cut short" if term["cut_short"] else ""),
        ),
        ("behaviour probs", _probs(d)),
    ]
    if d["ignored_keys"]:
        rows.append(("ignored keys", ", ".join(d["ignored_keys"])))
    rows += [(f"attr {k}", _short(v)) for k, v in sorted(d["attrs"].items())]
    for name, value in rows:
        table.add_row(name, value)
    return table


def _render_generic(d: dict[str, Any]):
    from rich.table import Table

    table = Table(
        title=f"{d.get('kind', 'artifact')} {d.get('path', '')}", show_header=False, title_justify="left"
    )
    table.add_column(style="bold")
    table.add_column()

    def add(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                add(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            table.add_row(prefix, _short(value))

    add("", {k: v for k, v in d.items() if k not in ("kind", "path")})
    return table


def _artifact_renderer(name: str) -> Callable[[dict[str, Any]], Any]:
    # imported only when rendered, so describing a dataset never imports the buffer/run-dir code
    return lambda d: getattr(importlib.import_module("logo_cli.stages.inspect_artifacts"), name)(d)


RENDERERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "dataset": _render_dataset,
    "synthetic_buffer": _artifact_renderer("render_buffer"),
    "run_dir": _artifact_renderer("render_run_dir"),
    "interrupted_run": _artifact_renderer("render_interrupted"),
}


def render(description: dict[str, Any]):
    """A rich renderable for a description made by `describe`."""
    return RENDERERS.get(description.get("kind", ""), _render_generic)(description)
