"""The X-Ray dashboard: hand-written static HTML, CSS and ES modules, no build step.

The API serves ``STATIC_DIR / "index.html"`` at ``GET /`` and the directory at
``/static/``; the pages call the public JSON API with ``fetch``.

Example:
    >>> (STATIC_DIR / "index.html").is_file()
    True
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["INDEX_HTML", "STATIC_DIR"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
INDEX_HTML = STATIC_DIR / "index.html"
