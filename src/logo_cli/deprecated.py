"""Old spellings of options and of choice values, still accepted: each use prints one line on stderr
naming the current spelling, then the command runs as if the current one had been typed.

The command line is rewritten before click parses it (commands/_common.py's `DeprecatingCommand`),
so `--help` lists only the current names; config files and sweep grids accept the old option names
too (`option_aliases`), silently, since their keys are read from files rather than typed.
"""

from __future__ import annotations

import sys

# command -> old option name -> current name
OPTIONS: dict[str, dict[str, str]] = {
    "pretrain": {"--max-steps": "--steps", "--model": "--kind"},
    "train-policy": {"--c": "--truncation", "--eval-env": "--env"},
}
# command -> option -> old value -> current value
VALUES: dict[str, dict[str, dict[str, str]]] = {
    "train-policy": {"--mode": {"real_only": "real-only"}},
    "collect": {"--quality": {"medium-replay": "medium_replay"}},
}


def note(old: str, new: str) -> None:
    sys.stderr.write(f"note: {old} is deprecated; use {new}\n")
    sys.stderr.flush()


def rewrite(command: str, args: list[str]) -> list[str]:
    """The command line with old spellings replaced by current ones, noting each on stderr."""
    options, values = OPTIONS.get(command, {}), VALUES.get(command, {})
    if not options and not values:
        return args
    out: list[str] = []
    i = 0
    while i < len(args):
        word = args[i]
        if word == "--":  # the rest are arguments
            out.extend(args[i:])
            break
        name, eq, inline = word.partition("=")
        if name in options:
            note(name, options[name])
            name = options[name]
        if name in values:
            table = values[name]
            if eq and inline in table:
                note(f"{name} {inline}", f"{name} {table[inline]}")
                inline = table[inline]
            elif not eq and i + 1 < len(args) and args[i + 1] in table:
                note(f"{name} {args[i + 1]}", f"{name} {table[args[i + 1]]}")
                out += [name, table[args[i + 1]]]
                i += 2
                continue
        out.append(f"{name}={inline}" if eq else name)
        i += 1
    return out


def option_aliases(command: str) -> dict[str, str]:
    """Old option names (no dashes, - as _) -> current ones, for keys read from files."""
    return {
        old.lstrip("-").replace("-", "_"): new.lstrip("-").replace("-", "_")
        for old, new in OPTIONS.get(command, {}).items()
    }
