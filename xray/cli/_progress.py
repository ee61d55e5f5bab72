"""The demo's progress: a one-line bar on a terminal, a line per stage in a file."""

from __future__ import annotations

from typing import TextIO

__all__ = ["ProgressBar"]


class ProgressBar:
    """A ``progress(done, total, label)`` callback that draws on ``stream``.

    Example:
        >>> bar = ProgressBar(sys.stderr)  # doctest: +SKIP
        >>> bar(3, 10, "competitor-selection")  # doctest: +SKIP
    """

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.tty = stream.isatty()
        self.last_label = ""

    def __call__(self, done: int, total: int, label: str) -> None:
        if self.tty:
            filled = int(self.width * done / max(total, 1))
            bar = "█" * filled + "·" * (self.width - filled)
            self.stream.write(f"\r  [{bar}] {done:>3}/{total}  {label:<24}")
            if label == "done":
                self.stream.write("\n")
        elif label != self.last_label:
            self.stream.write(f"  {done:>3}/{total}  {label}\n")
        self.last_label = label
        self.stream.flush()
