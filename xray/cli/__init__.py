"""The ``xray`` command line: query runs, steps and candidates over HTTP, run the demo.

Example:
    >>> from xray.cli import main
    >>> main(["steps", "--type", "filter", "--min-elimination-rate", "0.9"])  # doctest: +SKIP
    0
"""

from xray.cli._app import build_parser, main
from xray.cli._errors import CLIError

__all__ = ["CLIError", "build_parser", "main"]
