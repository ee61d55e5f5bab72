"""API-key management for the CLI (``xray keys create/revoke/list``): synchronous calls.

Each call migrates the database first (idempotent), so it works on a fresh database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from xray.api._migrate import upgrade_database
from xray.api.db.session import create_oneshot_engine, session_factory
from xray.api.services import keys
from xray.api.services.keys import APIKey
from xray.shared import APIConfig

__all__ = ["create_api_key", "list_api_keys", "revoke_api_key"]

T = TypeVar("T")


def _run(database_url: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    url = APIConfig(database_url=database_url).database_url
    upgrade_database(url)

    async def main() -> T:
        engine = create_oneshot_engine(url)
        try:
            async with session_factory(engine)() as session, session.begin():
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def create_api_key(database_url: str, *, name: str) -> tuple[str, str]:
    """Create a key; return ``(key_id, plaintext_key)``. Only a hash is stored, so the
    plaintext cannot be shown again.

    Example:
        >>> key_id, key = create_api_key("sqlite+aiosqlite:///./xray.db", name="ci")  # doctest: +SKIP
    """
    if not name.strip():
        raise ValueError("name must not be empty")
    return _run(database_url, lambda session: keys.create_key(session, name=name.strip()))


def revoke_api_key(database_url: str, key_id: str) -> bool:
    """Revoke a key by id; ``False`` if no active key has that id. Servers stop accepting
    it within a few seconds (they re-read keys every 5 s).

    Example:
        >>> revoke_api_key("sqlite+aiosqlite:///./xray.db", "key_0123abcd")  # doctest: +SKIP
        True
    """
    return _run(database_url, lambda session: keys.revoke_key(session, key_id=key_id))


def list_api_keys(database_url: str) -> list[APIKey]:
    """Every stored key (id, name, prefix, created_at, revoked_at), oldest first.

    Example:
        >>> [k.name for k in list_api_keys("sqlite+aiosqlite:///./xray.db")]  # doctest: +SKIP
        ['ci']
    """
    return _run(database_url, keys.list_keys)
