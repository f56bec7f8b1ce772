"""Resumable ladder training: the work folder beside a ladder directory, and its checkpoint.

A ladder trains into `<name>.partial/` beside its directory (as train-policy does): the snapshot
files as they are taken, and `resume.pt`, rewritten (atomically) after every snapshot. It holds the
trainer's state (networks, optimiser, sampling generator, counters, running statistics), the
simulators' own state where the env can give it (SMAX: every env's random key and jaxmarl state),
the snapshots' list and the settings. A run started again with the same settings goes on from the
last snapshot; one with other settings is refused, so that no training is thrown away unasked. When
the ladder is complete and swapped into place, the work folder is removed.

Where the simulator's state was saved, a resumed run takes exactly the steps the uninterrupted run
would have, and the ladder comes out the same. Where it was not (MaMuJoCo), the envs start fresh
episodes at the resume, from a seed derived from the update count, and the ladder records that in
`resumes` ("exact": false).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from logo_cli.artifacts import check_format_version, jsonable, load_checkpoint, save_checkpoint
from logo_cli.errors import LogoError

RESUME_FILE = "resume.pt"
RESUME_FORMAT = "logo-ladder-resume"
RESUME_VERSION = 1


def work_dir(out_dir: Path) -> Path:
    """Where a ladder for `out_dir` trains until it is complete."""
    out_dir = Path(out_dir)
    return out_dir.parent / f"{out_dir.name}.partial"


def settings_key(cfg) -> str:
    """The settings a resumed run must share with the interrupted one, as canonical JSON."""
    return json.dumps(jsonable(cfg), sort_keys=True)


@dataclass
class Progress:
    """Where training stands: the snapshots so far, the env steps at the last one, the wall time
    spent before this process started, and the resumes so far."""

    snapshots: list[dict]
    last_snap: int = 0
    elapsed_s: float = 0.0
    resumes: list[dict] = field(default_factory=list)


def save(work: Path, settings: str, trainer, env, progress: Progress) -> None:
    import torch

    saver = getattr(env, "save_state", None)
    simulator = [torch.from_numpy(a) for a in saver()] if saver is not None else None
    payload = {
        "format": RESUME_FORMAT,
        "version": RESUME_VERSION,
        "settings": settings,
        "trainer": trainer.state_dict(),
        "simulator": simulator,
        "snapshots": json.dumps(progress.snapshots),
        "last_snap": progress.last_snap,
        "elapsed_s": progress.elapsed_s,
        "resumes": json.dumps(progress.resumes),
    }
    save_checkpoint(work / RESUME_FILE, payload)  # fsync'ed, then renamed into place


def load(work: Path, settings: str) -> dict | None:
    """The checkpoint in `work`, checked; None where there is none. Refused in one line when it is
    unreadable, of other settings, or names a snapshot file that is missing."""
    path = work / RESUME_FILE
    if not path.is_file():
        return None
    start_over = f"remove {work} to start over"
    try:
        payload = load_checkpoint(path)  # data only (weights_only); one-line errors
    except LogoError as e:
        raise LogoError(f"{e}; {start_over}") from None
    if not isinstance(payload, dict) or payload.get("format") != RESUME_FORMAT:
        raise LogoError(f"{path}: not a ladder checkpoint; {start_over}")
    check_format_version(payload.get("version"), RESUME_VERSION, "ladder checkpoint", str(path))
    if payload.get("settings") != settings:
        raise LogoError(
            f"{work}: an interrupted ladder training with other settings; run again with the same "
            f"settings to resume it, or {start_over}"
        )
    snapshots = json.loads(payload["snapshots"])
    for snap in snapshots:
        if not (work / snap["file"]).is_file():
            raise LogoError(f"{work}: snapshot file {snap['file']} is missing; {start_over}")
    return {**payload, "snapshots": snapshots, "resumes": json.loads(payload["resumes"])}


def restore(trainer, env, payload: dict, seed: int) -> Progress:
    """Put the trainer (and the simulators, where they can be) back where the checkpoint left them;
    returns the progress with this resume appended."""
    trainer.load_state_dict(payload["trainer"])
    loader = getattr(env, "load_state", None)
    exact = payload["simulator"] is not None and loader is not None
    if exact:
        loader([t.numpy() for t in payload["simulator"]])
    else:
        trainer.restart_episodes(seed * 7919 + 4_000_003 + trainer.updates)
    resumes = [*payload["resumes"], {"env_steps": trainer.env_steps, "exact": exact}]
    return Progress(payload["snapshots"], int(payload["last_snap"]), float(payload["elapsed_s"]), resumes)


def describe_partial(path: Path) -> dict:
    """`logo inspect` of an interrupted ladder training (`<dir>.partial/`): how far it got, the
    snapshots so far, the settings, and how to continue it."""
    ckpt = path / RESUME_FILE
    payload = load_checkpoint(ckpt)  # data only (weights_only); one-line errors
    try:
        settings = json.loads(payload["settings"])
        snapshots = json.loads(payload["snapshots"])
        steps = int(payload["trainer"]["env_steps"])
    except (KeyError, TypeError, ValueError) as e:  # another checkpoint, or a damaged one
        raise LogoError(f"{ckpt}: not a ladder checkpoint ({type(e).__name__}: {e})") from None
    out = path.with_name(path.name.removesuffix(".partial"))
    best = max(snapshots, key=lambda s: (s["greedy"]["win_rate"] or 0.0, s["greedy"]["return_mean"]))
    last = snapshots[-1]
    return {
        "kind": "interrupted_ladder",
        "path": str(path),
        "env": settings.get("env"),
        "env_steps": steps,
        "budget": settings.get("train_steps"),
        "snapshots": len(snapshots),
        "last_snapshot": {"name": last["name"], "greedy": last["greedy"], "stochastic": last["stochastic"]},
        "best_so_far": {"name": best["name"], "env_steps": best["env_steps"], "greedy": best["greedy"]},
        "resumes": json.loads(payload["resumes"]),
        "ladder": str(out),
        "continue": f"rerun the same `logo collect --train-behaviour` (from env step {steps:,})",
        "config": settings,
    }
