"""The one exception type a user sees: the CLI prints its message on one line and exits with code 2."""


class LogoError(Exception):
    """A problem with the user's input (a file, an option, a mismatch between artifacts).

    The message must name the offending file or option and the problem, in one line.
    """

    exit_code = 2
