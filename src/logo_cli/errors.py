"""The one exception type a user sees: the CLI prints its message on one line and exits with code 2.

Every expected failure (bad input, a file-system fault, a numeric check) ends as a LogoError or an
OSError; the CLI's exception boundary (`commands/_common.py:user_errors`) turns both into one line
naming the path and the problem. Anything else is a bug: one line saying how to get the traceback
(`logo --debug ...` or LOGO_DEBUG=1) and how to report it.
"""

from __future__ import annotations

import os

DEBUG_ENV = "LOGO_DEBUG"
# Exit codes: 2 an expected failure (one line), 1 an unexpected one (a bug), 130 Ctrl-C.
EXIT_USER, EXIT_BUG, EXIT_INTERRUPTED = 2, 1, 130


class LogoError(Exception):
    """A problem with the user's input (a file, an option, a mismatch between artifacts).

    The message must name the offending file or option and the problem, in one line.
    """

    exit_code = EXIT_USER


_debug = {"on": False}


def set_debug(on: bool) -> None:
    """`logo --debug`: unexpected exceptions keep their traceback."""
    _debug["on"] = bool(on)


def debug_enabled() -> bool:
    return _debug["on"] or os.environ.get(DEBUG_ENV, "") not in ("", "0", "false", "no")


def one_line(text: object, limit: int = 300) -> str:
    """The first non-empty line of `text`, cut at `limit` characters (messages from libraries)."""
    for line in str(text).splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= limit else line[: limit - 3] + "..."
    return ""
