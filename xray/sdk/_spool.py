"""The disk spool: encoded batches kept in files until the API takes them.

One file per batch, named ``<created ns>-<process token>-<seq>.xray`` so that sorting the
names sorts the batches by age, across every process that shares the folder. A file is
written to a temporary name and renamed into place (a reader never sees half a file, a
kill -9 leaves at most a temporary file that is cleaned up later), in a folder only its
owner can enter (0700) with files only its owner can read (0600): they hold redacted but
still private data. A process that sends a file holds an exclusive ``flock`` on it, so two
processes sharing a spool never send the same file at once; the lock dies with the
process. A file that is not what this module writes (foreign, truncated, corrupt) is
skipped with one warning and renamed ``*.bad``, never sent and never a crash.

File layout: ``MAGIC``, a 4-byte big-endian header length, a JSON header (``items``,
``runs``, ``steps``, ``decisions``, ``encoding``, ``size``, ``crc``, ``target``), then
the request body exactly as it is posted.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xray.sdk._guard import logger

__all__ = ["SUFFIX", "Spool", "SpoolEntry", "default_spool_dir", "open_spool"]

MAGIC = b"XRAYSPOOL1\n"
SUFFIX = ".xray"
_TMP_PREFIX = ".tmp-"
_STALE_TMP_SECONDS = 3600.0
_MAX_HEADER = 64 * 1024

try:  # POSIX: an exclusive lock that dies with the process (kill -9 included)
    import fcntl
except ImportError:  # pragma: no cover - Windows: one sender per spool is the user's job
    fcntl = None  # type: ignore[assignment]


def _user_cache_dir() -> Path:
    """The per-user cache folder, as each platform names it."""
    if sys.platform == "win32":  # pragma: no cover
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base)
    if sys.platform == "darwin":  # pragma: no cover
        return Path.home() / "Library" / "Caches"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"


def _target_slug(base_url: str) -> str:
    """A folder name per API, so batches for staging are never sent to production."""
    readable = "".join(c if c.isalnum() else "_" for c in base_url.split("://", 1)[-1])[:60]
    return f"{readable}-{zlib.crc32(base_url.encode()):08x}"


def default_spool_dir(base_url: str) -> Path:
    """Where a client that sends to ``base_url`` spools unless ``sdk.spool_dir`` says.

    Example:
        >>> default_spool_dir("http://127.0.0.1:8000").name  # doctest: +SKIP
        '127_0_0_1_8000-6a0d6a8b'
    """
    return _user_cache_dir() / "xray" / "spool" / _target_slug(base_url)


def fallback_spool_dir(base_url: str) -> Path:
    """The temporary folder, for platforms where only it is writable (AWS Lambda ...)."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"xray-spool-{uid}" / _target_slug(base_url)


@dataclass
class SpoolEntry:
    """One spooled batch, read and locked: send ``body``, then ``remove()`` or ``release()``."""

    path: Path
    header: dict[str, Any]
    body: bytes
    fd: int

    @property
    def items(self) -> int:
        return int(self.header.get("items", 0))

    def remove(self) -> None:
        """The batch is delivered (or given up): delete the file, then unlock it."""
        with contextlib.suppress(OSError):
            self.path.unlink()
        self.release()

    def release(self) -> None:
        """Leave the file for a later attempt."""
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1


class Spool:
    """A spool folder with a byte budget; every method is safe from any thread."""

    def __init__(self, directory: Path, max_bytes: int, target: str = "") -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.target = target
        self._lock = threading.Lock()
        self._sizes: dict[str, int] = {}  # file name -> bytes, this process's view
        self._items: dict[str, int] = {}
        self._warned: set[str] = set()
        self._tmp_count = 0
        self._reserved = 0  # bytes claimed by writes under way
        self.rescan()

    # -- accounting --------------------------------------------------------------------

    @property
    def size(self) -> int:
        with self._lock:
            return sum(self._sizes.values())

    @property
    def items(self) -> int:
        with self._lock:
            return sum(self._items.values())

    def names(self) -> list[str]:
        """Known batch files, oldest first."""
        with self._lock:
            return sorted(self._sizes)

    def rescan(self) -> None:
        """Read the folder again: files other processes wrote or took meanwhile."""
        sizes: dict[str, int] = {}
        now = time.time()
        try:
            with os.scandir(self.directory) as it:
                for entry in it:
                    name = entry.name
                    try:
                        if name.endswith(SUFFIX) and not name.startswith("."):
                            sizes[name] = entry.stat().st_size
                        elif name.startswith(_TMP_PREFIX):
                            # A writer killed mid-write left this; nobody will finish it.
                            if now - entry.stat().st_mtime > _STALE_TMP_SECONDS:
                                os.unlink(entry.path)
                        elif not name.endswith(".bad"):
                            self._warn(name, "xray: %s is not a spool file; skipped", entry.path)
                    except OSError:
                        continue
        except OSError:
            return
        with self._lock:
            known = self._items
            self._sizes = sizes
            self._items = {name: known.get(name, 0) for name in sizes}

    # -- writing -----------------------------------------------------------------------

    def reserve(self, size: int) -> bool:
        """Claim ``size`` bytes of the budget for one write, or ``False`` when it is full.

        Check and claim are one step, so threads spooling at once cannot overshoot the
        budget together; ``release`` returns the claim once the write is done or failed.
        """
        with self._lock:
            if sum(self._sizes.values()) + self._reserved + size > self.max_bytes:
                return False
            self._reserved += size
            return True

    def release(self, size: int) -> None:
        with self._lock:
            self._reserved -= size

    def write(self, name: str, header: dict[str, Any], body: bytes) -> None:
        """Write one batch atomically; raises ``OSError`` (disk full, read-only ...)."""
        head = json.dumps(
            {**header, "size": len(body), "crc": zlib.crc32(body), "target": self.target},
            separators=(",", ":"),
        ).encode()
        with self._lock:
            self._tmp_count += 1
            tmp = self.directory / f"{_TMP_PREFIX}{os.getpid()}-{self._tmp_count}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
        try:
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(MAGIC + len(head).to_bytes(4, "big") + head + body)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            os.replace(tmp, self.directory / name)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        with self._lock:
            self._sizes[name] = len(MAGIC) + 4 + len(head) + len(body)
            self._items[name] = int(header.get("items", 0))

    # -- reading -----------------------------------------------------------------------

    def claim(self, name: str) -> SpoolEntry | None:
        """Open, lock and verify one file; ``None`` if gone, taken by another process or bad."""
        path = self.directory / name
        try:
            fd = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))
        except OSError:
            self.forget(name)
            return None
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    os.close(fd)  # another process is sending it
                    return None
                # It may have been sent and deleted between our open and our lock.
                try:
                    if os.fstat(fd).st_ino != os.stat(path).st_ino:
                        raise FileNotFoundError(name)
                except FileNotFoundError:
                    os.close(fd)
                    self.forget(name)
                    return None
            with os.fdopen(os.dup(fd), "rb") as f:
                data = f.read()
        except OSError:
            with contextlib.suppress(OSError):
                os.close(fd)
            return None
        parsed = _parse(data)
        if parsed is None:
            os.close(fd)
            self._set_aside(path)
            return None
        header, body = parsed
        with self._lock:
            if name in self._sizes:
                self._items[name] = int(header.get("items", 0))
        return SpoolEntry(path, header, body, fd)

    def forget(self, name: str) -> None:
        with self._lock:
            self._sizes.pop(name, None)
            self._items.pop(name, None)

    def _set_aside(self, path: Path) -> None:
        self._warn(path.name, "xray: %s is not a valid spool file; skipped and renamed *.bad", path)
        self.forget(path.name)
        with contextlib.suppress(OSError):
            os.replace(path, path.with_name(path.name + ".bad"))

    def _warn(self, key: str, message: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(message, *args)


def _parse(data: bytes) -> tuple[dict[str, Any], bytes] | None:
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 4:
        return None
    start = len(MAGIC) + 4
    size = int.from_bytes(data[len(MAGIC) : start], "big")
    if size > _MAX_HEADER or len(data) < start + size:
        return None
    try:
        header = json.loads(data[start : start + size])
    except ValueError:
        return None
    body = data[start + size :]
    if (
        not isinstance(header, dict)
        or header.get("size") != len(body)
        or header.get("crc") != zlib.crc32(body)
        or header.get("encoding") not in ("gzip", "identity")
    ):
        return None
    return header, body


def open_spool(directory: Path, max_bytes: int, target: str = "") -> Spool:
    """Create (0700) or check the folder and return its ``Spool``; ``OSError`` if unusable.

    A folder that someone else owns, or that others may enter, is not used for private
    data: it raises ``PermissionError``.
    """
    directory = Path(directory).expanduser()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = directory.stat()
    if not stat.S_ISDIR(info.st_mode):
        raise NotADirectoryError(str(directory))
    if hasattr(os, "getuid"):
        if info.st_uid != os.getuid():
            raise PermissionError(f"{directory} belongs to another user")
        if info.st_mode & 0o077:
            os.chmod(directory, 0o700)
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PermissionError(f"{directory} is not writable")
    return Spool(directory, max_bytes, target)
