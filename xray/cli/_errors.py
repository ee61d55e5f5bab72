"""The one error the CLI shows: a single line on stderr and a documented exit code."""

from __future__ import annotations

__all__ = [
    "EXIT_ERROR",
    "EXIT_NOT_FOUND",
    "EXIT_UNAUTHORIZED",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "CLIError",
]

EXIT_ERROR = 1
EXIT_USAGE = 2  # argparse's own code for bad arguments
EXIT_UNREACHABLE = 3
EXIT_UNAUTHORIZED = 4
EXIT_NOT_FOUND = 5


class CLIError(Exception):
    """A failure the user can act on; ``main`` prints ``xray: <message>`` and exits.

    Example:
        >>> str(CLIError("run 42 not found", exit_code=EXIT_NOT_FOUND))
        'run 42 not found'
    """

    def __init__(self, message: str, *, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code
