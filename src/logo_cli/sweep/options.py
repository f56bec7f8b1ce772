"""A grid table's options, checked against the stage command's own options (names, types, flags).

The sweep runs the commands themselves, so the option names, defaults and checks are the commands';
this module only turns `steps = 3000` into `--steps 3000` after asking click whether the
command has that option and whether the value converts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from logo_cli.config_file import _is_path
from logo_cli.deprecated import OPTIONS as DEPRECATED
from logo_cli.errors import LogoError
from logo_cli.sweep.stage_commands import stage_command

# The commands are click's, or the copy of click that typer ships: read by duck typing, as
# config_file.py does.


def command_options(
    command: str, table: dict, reserved: set[str], base: Path, where: str
) -> dict[str, list[str]]:
    """{option name (its first long form, no dashes): its command-line words}, in the table's order.

    Keys may be spelt with - or _ and by any of the option's names, old ones included (max-steps for
    --steps). Relative values of path options are read from `base` (the grid file's folder)."""
    params = {}
    for p in stage_command(command).params:
        if getattr(p, "param_type_name", None) == "option":
            for opt in [*p.opts, *p.secondary_opts]:
                params[opt.removeprefix("--")] = p
    for old, new in DEPRECATED.get(command, {}).items():  # old names in grid files still work
        if new.removeprefix("--") in params:
            params.setdefault(old.removeprefix("--"), params[new.removeprefix("--")])
    known = sorted({_name(p) for p in params.values()} - reserved)
    out: dict[str, list[str]] = {}
    for key, value in table.items():
        name = key.replace("_", "-")
        param = params.get(name)
        if param is None or _name(param) in reserved:
            hint = (
                f"--{_name(param)}: set by the sweep"
                if param is not None
                else f"`logo {command}` options: {', '.join(known)}"
            )
            raise LogoError(f"{where}: unknown key '{key}' ({hint})")
        if isinstance(value, (dict, list)):
            raise LogoError(f"{where} {key}: expected one value, not {type(value).__name__}")
        if param.is_flag and f"--{name}" in param.secondary_opts and isinstance(value, bool):
            value = not value  # greedy = true on --stochastic/--greedy means --greedy
        out[_name(param)] = _words(param, value, base, f"{where} {key}")
    return out


def _name(param: Any) -> str:
    return next(o for o in param.opts if o.startswith("--")).removeprefix("--")


def _words(param: Any, value, base: Path, where: str) -> list[str]:
    if param.is_flag:
        if not isinstance(value, bool):
            raise LogoError(f"{where} = {value!r}: expected true or false")
        if param.secondary_opts:  # --greedy/--stochastic
            return [param.opts[0] if value else param.secondary_opts[0]]
        return [param.opts[0]] if value else []
    if isinstance(value, bool):
        raise LogoError(f"{where} = {value!r}: expected a value, not true or false")
    text = str(value)
    if _is_path(param) and not Path(text).is_absolute():
        text = str((base / text).resolve())
    try:
        if hasattr(param, "get_runtime_param"):  # the copy of click that typer ships
            param.get_runtime_param().coerce(text, param=param, ctx=None)
        else:
            param.type_cast_value(None, text)
    except Exception as e:  # each type reports its own error: all mean a value of the wrong kind
        detail = " ".join(str(getattr(e, "message", None) or e).split())[:160]
        raise LogoError(f"{where} = {value!r}: {detail}") from None
    return [param.opts[0], text]
