"""The defaults that chain stages: an option left out takes the newest suitable artifact in the
workspace, printed in one line and recorded in the new artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from logo_cli.artifact_kind import is_finished_run
from logo_cli.errors import LogoError
from logo_cli.workspace.artifact_files import artifact_inputs, artifact_state, manifest_of
from logo_cli.workspace.entry import Entry, resolve_recorded_input
from logo_cli.workspace.index import Workspace
from logo_cli.workspace.paths import MAKE, MANIFEST, absolute, show


class Defaults:
    """The inputs a command filled in from the workspace: each printed in one line as it is chosen,
    then recorded in the artifact's manifest (`defaults`) and its index entry."""

    def __init__(self, ws: Workspace):
        self.ws = ws
        self.used: dict[str, Any] = {}

    def use(self, option: str, value: Path | str, why: str) -> None:
        shown = show(value) if isinstance(value, Path) else str(value)
        key = option.removeprefix("--").replace("-", "_")
        if key in self.used:
            prev = self.used[key]
            self.used[key] = [*prev, shown] if isinstance(prev, list) else [prev, shown]
        else:
            self.used[key] = shown
        self.ws.say(f"using {shown} ({why}) for {option}")

    def skipped(self, entry: Entry | None) -> str:
        return "" if entry is None else f"; {show(entry.path)} is interrupted: rerun its command to finish it"


def _usable(path: str | Path) -> Path:
    """An absolute path as the stages should see it: relative to the current directory when under it."""
    return Path(show(path))


class DataMatch:
    """Is an artifact made from this dataset? Same file, or the same content (sha256) elsewhere."""

    def __init__(self, ws: Workspace, data: Path):
        self.ws, self.data, self.key = ws, data, absolute(data)

    def __call__(self, entry: Entry) -> bool:
        inp = entry.inputs.get("data")
        if not inp:
            return False
        if absolute(inp["path"]) == self.key:
            return True
        return bool(inp.get("hash")) and self.data.is_file() and self.ws._hash(self.key) == inp["hash"]


def trained_on(ws: Workspace, run: Path, stage: str = "pretrain") -> Path:
    """The dataset an artifact (a pretrain run, a rollout buffer) was made from, as recorded."""
    entry = ws.find(run)
    inp = (entry.inputs if entry is not None else {}).get("data")
    if inp is None and artifact_state(stage, run) == "missing":
        what = "synthetic buffer" if stage == "rollout" else f"finished {stage} run (no {MANIFEST})"
        raise LogoError(f"{run}: not a {what}")
    if inp is None:
        raw = artifact_inputs(stage, run).get("data")
        if raw is None:
            raise LogoError(f"{show(run)}: records no dataset it was made from; pass --data")
        inp = {"path": str(resolve_recorded_input(raw["path"], [Path.cwd(), absolute(ws.root).parent]))}
    path = Path(inp["path"])
    if not path.exists():
        raise LogoError(f"{show(run)} was made from {show(path)}, which no longer exists; pass --data")
    return _usable(path)


def _check_exists(path: Path | None, option: str, what: str = "no such file or folder") -> None:
    if path is not None and not path.exists():
        raise LogoError(f"{option} {path}: {what}")


def _none_found(ws: Workspace, what: str, make: str, data: Path | None, option: str) -> LogoError:
    on = f" made from {data}" if data is not None else ""
    return LogoError(f"no {what}{on} in workspace {ws}: run `{make}` first (or pass {option})")


def pretrain_defaults(ws: Workspace, d: Defaults, data: Path | None) -> Path:
    """--data: the newest dataset `logo collect` wrote."""
    if data is not None:
        _check_exists(data, "--data")
        return data
    entry, _ = ws.newest("collect")
    if entry is None:
        raise LogoError(
            f"--data: no dataset recorded in workspace {ws}: "
            f"pass --data DATA.h5 (or run `{MAKE['collect']}` first)"
        )
    data = _usable(entry.path)
    d.use("--data", data, "newest collected dataset")
    return data


def _pretrain_run(ws: Workspace, d: Defaults, data: Path | None, option: str) -> Path:
    match = DataMatch(ws, data) if data is not None else None
    entry, skipped = ws.newest("pretrain", match)
    if entry is None:
        make = f"logo pretrain --data {data}" if data is not None else MAKE["pretrain"]
        raise _none_found(ws, "finished pretrain run", make, data, option)
    run = _usable(entry.path)
    d.use(option, run, "newest pretrain run" + d.skipped(skipped))
    return run


def rollout_defaults(ws: Workspace, d: Defaults, model: Path | None, data: Path | None) -> tuple[Path, Path]:
    """--model: the newest finished pretrain run (made from --data when given); --data: its dataset."""
    _check_exists(data, "--data")
    if model is None:
        model = _pretrain_run(ws, d, data, "--model")
    if data is None:
        data = trained_on(ws, model)
        d.use("--data", data, f"the dataset {show(model)} was trained on")
    return model, data


def calibrate_defaults(
    ws: Workspace, d: Defaults, models: list[Path], data: Path | None
) -> tuple[list[Path], Path]:
    """--model: the newest finished pretrain run, and the newest run of each other model kind made
    from the same dataset with the same held-out split; --data: their dataset."""
    _check_exists(data, "--data")
    if not models:
        first = _pretrain_run(ws, d, data, "--model")
        models = [first]
        base = ws.find(first)
        m0 = manifest_of(first) or {}
        kinds = {m0.get("kind")}
        split = _split(m0)
        data_hash = (base.inputs.get("data") or {}).get("hash") if base is not None else None
        for e in ws.of_stage("pretrain"):
            if base is None or e.key == base.key or e.state != "complete":
                continue
            m = manifest_of(e.path) or {}
            same = (e.inputs.get("data") or {}).get("hash") == data_hash and data_hash is not None
            if same and m.get("kind") not in kinds and _split(m) == split:
                kinds.add(m.get("kind"))
                models.append(_usable(e.path))
                d.use("--model", models[-1], f"newest {m.get('kind')} run on the same data and split")
    if data is None:
        data = trained_on(ws, models[0])
        d.use("--data", data, f"the dataset {show(models[0])} was trained on; its held-out episodes")
    return models, data


def _split(manifest: dict) -> tuple:
    c = manifest.get("config") or {}
    return (c.get("holdout"), c.get("seed"))


def train_policy_defaults(
    ws: Workspace,
    d: Defaults,
    data: Path | None,
    synthetic: Path | None,
    model: Path | None,
    real_only: bool,
) -> tuple[Path, Path | None, Path | None]:
    """--synthetic: the newest finished rollout buffer (made from --data when given), else --model:
    the newest finished pretrain run; --data: the dataset that buffer or run was made from.

    With --mode real-only no synthetic source is added, but --data still defaults the same way.
    Given only --data and nothing made from it, training is on real data only (as without a workspace).
    """
    if synthetic is not None and model is not None:
        raise LogoError("--synthetic / --model: give one, not both")
    _check_exists(data, "--data")
    _check_exists(synthetic, "--synthetic", "synthetic buffer not found")
    source: Path | None = synthetic or model
    stage = "rollout" if synthetic is not None else "pretrain"
    if source is None:
        match = DataMatch(ws, data) if data is not None else None
        for stage, what in (("rollout", "rollout buffer"), ("pretrain", "pretrain run")):
            entry, skipped = ws.newest(stage, match)
            if entry is None:
                continue
            source = _usable(entry.path)
            if real_only:
                break
            if stage == "rollout":
                synthetic = source
                d.use("--synthetic", source, f"newest {what}" + d.skipped(skipped))
            else:
                model = source
                d.use("--model", source, f"newest {what}, rolled out in memory" + d.skipped(skipped))
            break
    if data is None:
        if source is None:
            raise LogoError(
                f"--data: nothing to train on in workspace {ws}: run `logo rollout` (after "
                f"`{MAKE['pretrain']}`) first, or pass --data DATA.h5"
            )
        data = trained_on(ws, source, stage)
        d.use("--data", data, f"the dataset {show(source)} was made from")
    return data, synthetic, model


DEFAULT_ENV = "smax:3m"


def evaluate_defaults(ws: Workspace, d: Defaults, policy: str | None, env: str | None) -> tuple[str, str]:
    """--policy: the newest finished train-policy run; --env: the environment its dataset names."""
    if policy is None:
        entry, skipped = ws.newest("train-policy")
        if entry is None:
            raise _none_found(ws, "finished train-policy run", MAKE["train-policy"], None, "--policy")
        policy = show(entry.path)
        d.use("--policy", policy, "newest train-policy run" + d.skipped(skipped))
    if env is None:
        run = Path(policy)
        manifest = None
        if is_finished_run(run):
            from logo_cli.artifacts import read_manifest

            manifest = read_manifest(run)  # a garbled manifest is one line here, before any default
        if manifest is None:
            return policy, DEFAULT_ENV  # a policy file, behaviour:<name> or random: the built-in default
        attrs = manifest.get("dataset_attrs") or {}
        named = attrs.get("env")
        if isinstance(named, str) and named:
            env = named
            d.use("--env", env, f"named by the dataset {show(policy)} was trained on")
        else:
            env = DEFAULT_ENV
            d.use("--env", env, f"built-in default; the dataset {show(policy)} was trained on names none")
    return policy, env


def export_defaults(ws: Workspace, d: Defaults, source: Path | None) -> Path:
    """SOURCE of `logo export`: the newest finished train-policy run."""
    if source is not None:
        return source
    entry, skipped = ws.newest("train-policy")
    if entry is None:
        raise _none_found(ws, "finished train-policy run", MAKE["train-policy"], None, "SOURCE")
    d.use("SOURCE", entry.path, "newest train-policy run" + d.skipped(skipped))
    return entry.path
