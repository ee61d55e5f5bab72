"""What one running app holds: config, engine, sessions, key cache (built in the lifespan)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from dataclasses import dataclass, field
from enum import Enum

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from xray.api.services.keys import active_key_hashes, hash_key
from xray.shared import APIConfig

__all__ = ["AppState", "AuthResult", "KeyCache", "key_digests"]

logger = logging.getLogger("xray.api")


class AuthResult(Enum):
    """What the key check concluded for one request."""

    ALLOWED = "allowed"
    MISSING = "missing"
    WRONG = "wrong"
    UNAVAILABLE = "unavailable"  # keys may be stored in the database, which is down


def key_digests(keys: list[str]) -> tuple[bytes, ...]:
    """The digests ``KeyCache`` compares configured keys by."""
    return tuple(hashlib.sha256(k.encode("utf-8", "surrogatepass")).digest() for k in keys)


@dataclass
class KeyCache:
    """Configured keys plus the hashes of the database's active keys, re-read every
    ``ttl`` seconds (a revoked key stops working within that time)."""

    # SHA-256 digests of the configured keys: comparing digests takes the same time
    # whatever the presented key's length.
    config_keys: tuple[bytes, ...]
    ttl: float = 5.0
    db_hashes: frozenset[str] | None = None
    db_has_keys: bool = False
    loaded_at: float = float("-inf")
    failed_at: float = float("-inf")
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def refresh(self, sessions: async_sessionmaker[AsyncSession]) -> bool:
        """Re-read the stored keys when due; ``False`` when the database did not answer
        (this call's attempt, or the one it queued behind)."""
        if time.monotonic() - self.loaded_at < self.ttl:
            return True
        queued_at = time.monotonic()
        async with self._lock:
            if self.failed_at >= queued_at:
                # The attempt this request queued behind failed: during an outage, every
                # queued request trying again would make the n-th wait n timeouts.
                return False
            if time.monotonic() - self.loaded_at < self.ttl:
                return True
            try:
                async with sessions() as session:
                    self.db_hashes, self.db_has_keys = await active_key_hashes(session)
                self.loaded_at = time.monotonic()
                return True
            except (SQLAlchemyError, OSError, TimeoutError) as exc:
                # Keep the last known set; with none known, fail closed (see check()).
                self.failed_at = time.monotonic()
                logger.debug("cannot read API keys: %s", exc.__class__.__name__)
                return False

    def check(self, presented: str | None) -> AuthResult:
        required = bool(self.config_keys) or self.db_hashes is None or self.db_has_keys
        if not required:
            return AuthResult.ALLOWED
        if presented is None:
            return AuthResult.UNAVAILABLE if self._unknown_and_unkeyed() else AuthResult.MISSING
        candidate = hashlib.sha256(presented.encode("utf-8", "surrogatepass")).digest()
        matched = False
        # Compare against every configured key, in constant time, without short-circuit.
        for key in self.config_keys:
            matched |= hmac.compare_digest(key, candidate)
        # Stored keys are found by hash: timing can reveal nothing useful about a hash.
        if self.db_hashes is not None and hash_key(presented) in self.db_hashes:
            matched = True
        if matched:
            return AuthResult.ALLOWED
        return AuthResult.UNAVAILABLE if self.db_hashes is None else AuthResult.WRONG

    def _unknown_and_unkeyed(self) -> bool:
        return self.db_hashes is None and not self.config_keys


@dataclass
class AppState:
    """Everything a request needs, created by the lifespan and disposed by it."""

    config: APIConfig
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    keys: KeyCache
    # SQLite has one writer: serialising ingest in-process avoids "database is locked".
    write_lock: asyncio.Lock | None
    schema_ready: bool = False
    background: list[asyncio.Task[None]] = field(default_factory=list)
