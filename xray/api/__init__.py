"""The X-Ray API server: ingest, storage and queries (FastAPI, SQLAlchemy 2 async).

Start it with ``python -m xray.api`` (or ``xray serve``); embed it with ``create_app()``.

Example:
    >>> from xray.api import create_app
    >>> from xray.shared import APIConfig
    >>> app = create_app(APIConfig(database_url="sqlite+aiosqlite:///./xray.db"))
"""

from xray.api._app import create_app
from xray.api._keys import create_api_key, list_api_keys, revoke_api_key
from xray.api._migrate import upgrade_database
from xray.api._retention import apply_retention
from xray.api._server import serve
from xray.api.services.keys import APIKey

__all__ = [
    "APIKey",
    "apply_retention",
    "create_api_key",
    "create_app",
    "list_api_keys",
    "revoke_api_key",
    "serve",
    "upgrade_database",
]
