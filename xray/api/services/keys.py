"""API keys stored hashed in the database (``xray keys create/revoke/list``).

Only the SHA-256 of a key is stored; the plaintext is shown once at creation. Keys are
long random tokens, so an unsalted fast hash is enough (nothing to brute-force) and lets
the server find a presented key by its hash.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from xray.api.db.models import APIKeyRow

__all__ = ["APIKey", "active_key_hashes", "create_key", "hash_key", "list_keys", "revoke_key"]


@dataclass(frozen=True)
class APIKey:
    """A stored key as listed: never the key itself, only its first characters."""

    id: str
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def hash_key(key: str) -> str:
    """The stored form of a key.

    Example:
        >>> len(hash_key("xr_secret"))
        64
    """
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


async def create_key(session: AsyncSession, *, name: str) -> tuple[str, str]:
    """Store a new key; return ``(id, plaintext)`` — the plaintext is never stored."""
    key_id = "key_" + secrets.token_hex(6)
    plaintext = "xr_" + secrets.token_urlsafe(32)
    session.add(
        APIKeyRow(
            id=key_id,
            name=name,
            key_hash=hash_key(plaintext),
            prefix=plaintext[:8],
            created_at=datetime.now(UTC),
            revoked_at=None,
        )
    )
    await session.flush()
    return key_id, plaintext


async def revoke_key(session: AsyncSession, *, key_id: str) -> bool:
    """Revoke a key by id; ``False`` when there is no such active key."""
    result = await session.execute(
        update(APIKeyRow)
        .where(APIKeyRow.id == key_id, APIKeyRow.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    return bool(getattr(result, "rowcount", 0))


async def list_keys(session: AsyncSession) -> list[APIKey]:
    """Every stored key, oldest first."""
    rows = await session.scalars(select(APIKeyRow).order_by(APIKeyRow.created_at, APIKeyRow.id))
    return [APIKey(r.id, r.name, r.prefix, r.created_at, r.revoked_at) for r in rows]


async def active_key_hashes(session: AsyncSession) -> tuple[frozenset[str], bool]:
    """The hashes of every key not revoked, and whether any key was ever stored.

    Once a key has been stored the API stays locked even after every key is revoked:
    revoking the last key must not silently open the API.
    """
    rows = (await session.execute(select(APIKeyRow.key_hash, APIKeyRow.revoked_at))).all()
    return frozenset(h for h, revoked in rows if revoked is None), bool(rows)
