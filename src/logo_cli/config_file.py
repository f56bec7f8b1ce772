"""`--config FILE`: a stage's options from a TOML, YAML or JSON file, or from a run's manifest.

The file's keys are option names (`batch_size`, `batch-size` or `--batch-size`; `out` for `--out`),
at the top level or in a table per command (`[pretrain]`, `[train-policy]`, as in a sweep grid):
each command reads the top-level keys it has an option for, then its own table. They become the
command's defaults (click's default_map), so an option given on the command line
always wins, then an environment variable, then the file, then the built-in default.

A run's `manifest.json` (or the run directory, or an evaluate result) is read as the config it
recorded, so `logo pretrain --config runs/pretrain/x` repeats run x. Its relative paths are read
from the directory that run was started in (its manifest's provenance), and a recorded setting that
has no option (a value the command always uses) must hold that value.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from logo_cli.errors import LogoError

CONFIG_HELP = (
    "Options from a TOML, YAML or JSON file (keys named like the options), or a run's directory to "
    "repeat it. Options on the command line win."
)
# The commands a config file may hold a table for (`[pretrain]`, ...): every `logo` command.
COMMAND_TABLES = (
    "collect", "convert", "inspect", "status", "pretrain", "rollout", "calibrate", "train-policy",
    "evaluate", "export", "sweep",
)  # fmt: skip
# The stage config whose recorded fields a command's manifest holds (module, class).
STAGE_CONFIGS = {
    "collect": ("logo_cli.stages.collect", "CollectConfig"),
    "pretrain": ("logo_cli.stages.pretrain", "PretrainConfig"),
    "rollout": ("logo_cli.stages.rollout", "RolloutConfig"),
    "calibrate": ("logo_cli.stages.calibrate", "CalibrateConfig"),
    "train-policy": ("logo_cli.stages.train_policy", "TrainPolicyConfig"),
    "evaluate": ("logo_cli.stages.evaluate", "EvaluateConfig"),
}


def read_file(path: Path) -> tuple[dict[str, Any], dict | None]:
    """(the option mapping, the manifest it came from or None)."""
    if path.is_dir():
        path = path / "manifest.json"
    if not path.is_file():
        raise LogoError(f"--config {path}: no such file")
    suffix = path.suffix.lower()
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise LogoError(f"--config {path}: unreadable ({getattr(e, 'strerror', None) or e})") from None
    try:
        if suffix == ".toml":
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover
                import tomli as tomllib
            doc = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise LogoError(
                    f"--config {path}: reading YAML needs the pyyaml package (pip install 'logo-cli[config]')"
                ) from None
            doc = yaml.safe_load(text)
        elif suffix == ".json":
            doc = json.loads(text)
        else:
            raise LogoError(f"--config {path}: expected a .toml, .yaml, .yml or .json file")
    except LogoError:
        raise
    except Exception as e:  # each parser has its own error type; all mean a malformed file
        detail = " ".join(str(e).split())[:160]
        raise LogoError(f"--config {path}: not valid {suffix.lstrip('.').upper()} ({detail})") from None
    if not isinstance(doc, dict):
        raise LogoError(f"--config {path}: expected a table of options, found {type(doc).__name__}")
    if isinstance(doc.get("config"), dict) and isinstance(doc.get("stage"), str):
        return dict(doc["config"]), doc
    return doc, None


# The command and context are click's (or the copy of click that typer ships): read by duck typing.


def _option_names(command: Any, aliases: dict[str, str] | None = None) -> dict[str, Any]:
    """Key (as `_` words) -> option: its parameter name, its long names, and any old names
    (`aliases`, old -> current) a file may still use."""
    names: dict[str, Any] = {}
    for p in command.params:
        if getattr(p, "param_type_name", None) != "option" or p.name in (None, "config"):
            continue
        names[p.name] = p
        for opt in p.opts:  # --out -> out (param out_dir), --json -> json (param as_json)
            names.setdefault(opt.lstrip("-").replace("-", "_"), p)
    for old, new in (aliases or {}).items():
        if new in names:
            names.setdefault(old, names[new])
    return names


def _fixed_fields(stage: str) -> dict[str, Any]:
    """Recorded config fields that no option sets, with the value the command always uses."""
    if stage not in STAGE_CONFIGS:
        return {}
    module, name = STAGE_CONFIGS[stage]
    cls = getattr(importlib.import_module(module), name)
    return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}


def default_map(
    command: Any,
    stage: str,
    path: Path,
    aliases: dict[str, str] | None = None,
    old_values: dict[str, dict[str, str]] | None = None,
) -> dict[str, Any]:
    """The click default_map a --config file means for `command` (the `stage` command). `aliases`:
    old option names -> current ones; `old_values`: option -> old value -> current value."""
    raw, manifest = read_file(path)
    if manifest is not None and manifest["stage"] != stage:
        raise LogoError(f"--config {path}: a '{manifest['stage']}' run's config, not a '{stage}' one")
    base = None
    if manifest is not None:  # recorded paths are as given, from where that run was started
        # Not its output: the repeat goes where its options say (the same run's folder when they are
        # the same, so it is up to date; another seed's folder for another --seed).
        raw = {k: v for k, v in raw.items() if str(k).lstrip("-").replace("-", "_") != "out"}
        cwd = (manifest.get("provenance") or {}).get("cwd")
        base = Path(cwd) if isinstance(cwd, str) else None
    names = _option_names(command, aliases)
    mapping: dict[str, Any] = {}
    fixed: dict[str, Any] | None = None
    for key, value, shared in _entries(raw, stage):
        norm = str(key).lstrip("-").replace("-", "_")
        param = names.get(norm)
        if param is None and shared:
            continue  # a top-level key beside stage tables: for the stages that have that option
        if param is None:
            fixed = _fixed_fields(stage) if fixed is None else fixed
            if norm in fixed and value == fixed[norm]:
                continue  # recorded, and what the command uses anyway
            if norm in fixed:
                raise LogoError(
                    f"--config {path}: '{key}' = {value!r} cannot be set from the command line "
                    f"(it is always {fixed[norm]!r})"
                )
            raise LogoError(f"--config {path}: '{key}' is not an option of `logo {stage}`")
        if isinstance(value, (dict,)):
            raise LogoError(f"--config {path}: '{key}' is a table, expected a value")
        if isinstance(value, list) and not param.multiple and param.nargs == 1:
            raise LogoError(f"--config {path}: '{key}' is a list, expected one value")
        for opt in param.opts:
            if isinstance(value, str) and value in (old_values or {}).get(opt, {}):
                value = (old_values or {})[opt][value]
        if base is not None and _is_path(param):
            value = [_from(base, v) for v in value] if isinstance(value, list) else _from(base, value)
        mapping[param.name] = value  # type: ignore[index]
    return mapping


def _table(key: Any) -> str | None:
    """The command a top-level table configures (`[pretrain]`, `[train-policy]` or `[train_policy]`)."""
    name = str(key).replace("_", "-")
    return name if name in COMMAND_TABLES else None


def _entries(raw: dict, stage: str) -> list[tuple[str, Any, bool]]:
    """(key, value, shared) in the order they apply. A file with per-command tables gives each
    command its top-level keys (shared: skipped where the command has no such option) and then its
    own table, which wins; other commands' tables are left alone. Without tables, every key is the
    command's own."""
    tables = {k for k, v in raw.items() if isinstance(v, dict) and _table(k) is not None}
    if not tables:
        return [(k, v, False) for k, v in raw.items()]
    own = [v for k, v in raw.items() if k in tables and _table(k) == stage]
    entries = [(k, v, True) for k, v in raw.items() if k not in tables]
    for table in own:
        entries += [(k, v, False) for k, v in table.items()]
    return entries


def _is_path(param: Any) -> bool:
    """Whether an option takes a path (click's Path type, or typer's annotation of it)."""
    import typing

    if getattr(getattr(param, "type", None), "name", None) == "path":
        return True
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    return annotation is Path or Path in typing.get_args(annotation)


def _from(base: Path, value: Any) -> Any:
    """A recorded relative path, read from the directory its run was started in."""
    if isinstance(value, str) and value and not os.path.isabs(value):
        return str(base / value)
    return value


def apply(
    ctx: Any,
    path: Path | None,
    aliases: dict[str, str] | None = None,
    old_values: dict[str, dict[str, str]] | None = None,
) -> None:
    """Eager --config callback: the file's options become the command's defaults. `aliases` maps
    old option names (as `_` words) to current ones, `old_values` old spellings of values."""
    if path is None or getattr(ctx, "resilient_parsing", False):
        return
    stage = ctx.info_name or ctx.command.name or ""
    mapping = default_map(ctx.command, stage, path, aliases, old_values)
    params = {p.name: p for p in ctx.command.params}
    for name, value in mapping.items():
        _check_value(ctx, params[name], value, path)
    ctx.default_map = {**(ctx.default_map or {}), **mapping}


def _check_value(ctx: Any, param: Any, value: Any, path: Path) -> None:
    """Convert a value as the option would, so a wrong type is one line naming the file (not the
    command line's usage error, which would name only the option)."""
    if value is None:
        return
    try:
        if hasattr(param, "get_runtime_param"):  # the copy of click that typer ships
            if not (isinstance(value, bool) and param.type_descriptor.annotation is bool):
                param.get_runtime_param().coerce(value, param=param, ctx=ctx)
        elif hasattr(param, "type_cast_value"):  # click
            param.type_cast_value(ctx, value)
    except Exception as e:  # each type reports its own error: all mean a value of the wrong kind
        detail = " ".join(str(getattr(e, "message", None) or e).split())[:160]
        option = max(param.opts, key=len)
        raise LogoError(f"--config {path}: {option} {value!r}: {detail}") from None
