"""Database URLs as providers hand them out, turned into what SQLAlchemy and asyncpg take.

Managed PostgreSQL services (RDS, Cloud SQL, Azure, Supabase, Neon, Render, Heroku) give
libpq URLs: ``postgres://`` or ``postgresql://``, connection parameters such as
``sslmode=require`` in the query string. SQLAlchemy's asyncpg dialect would pass every
query parameter to ``asyncpg.connect()`` as a keyword, which fails for libpq's names. So
the query is split here:

- the TLS and session-targeting parameters go to asyncpg as a DSN, whose own parser
  implements libpq's meaning of them (``prefer`` falls back to plain text, ``require``
  with a root certificate verifies it, ...);
- ``application_name`` and ``options`` are startup parameters (``server_settings``);
- ``connect_timeout`` is asyncpg's ``timeout``;
- ``host``/``port`` (a Unix socket such as Cloud SQL's ``/cloudsql/...``, several hosts)
  and SQLAlchemy's ``prepared_statement_cache_size`` stay in the SQLAlchemy URL.

Anything else is an error naming the parameter, found when the config is loaded rather
than at the first connection. Standard library only: ``xray.shared`` ships with the SDK.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

__all__ = ["SSL_MODES", "DatabaseURL", "normalise_database_url", "parse_database_url"]

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")

_POSTGRES_SCHEMES = ("postgres", "postgresql", "postgres+asyncpg", "postgresql+asyncpg")
_SQLITE_SCHEMES = ("sqlite", "sqlite+aiosqlite")

# Parameter -> allowed values (None: any value). asyncpg reads these from a DSN itself.
_FOR_ASYNCPG: dict[str, tuple[str, ...] | None] = {
    "sslmode": SSL_MODES,
    "sslrootcert": None,
    "sslcert": None,
    "sslkey": None,
    "sslcrl": None,
    "sslpassword": None,
    "ssl_min_protocol_version": ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"),
    "ssl_max_protocol_version": ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"),
    "sslnegotiation": ("postgres", "direct"),
    "target_session_attrs": (
        "any",
        "primary",
        "standby",
        "prefer-standby",
        "read-write",
        "read-only",
    ),
    "krbsrvname": None,
    "gsslib": ("gssapi", "sspi"),
}
_FILES = ("sslrootcert", "sslcert", "sslkey", "sslcrl")
_STARTUP = ("application_name", "options")
_KEPT_IN_URL = ("host", "port", "prepared_statement_cache_size")
_SUPPORTED = (*_FOR_ASYNCPG, *_STARTUP, "connect_timeout", *_KEPT_IN_URL)


@dataclass(frozen=True)
class DatabaseURL:
    """A parsed database URL: ``url`` for SQLAlchemy, ``connect_args`` for the driver.

    Example:
        >>> db = parse_database_url("postgres://u:p@db.example.com/xray?sslmode=require")
        >>> db.url
        'postgresql+asyncpg://u:p@db.example.com/xray'
        >>> db.connect_args
        {'dsn': 'postgresql://?sslmode=require'}
    """

    url: str
    backend: str
    connect_args: dict[str, Any] = field(default_factory=dict)
    connect_timeout: float | None = None


def _split_userinfo(rest: str) -> tuple[str, str]:
    """``(userinfo, host_and_rest)``, split at the last ``@`` before the path or query,
    so an unencoded ``@`` or ``:`` in a password still parses (``/``, ``?`` and ``#``
    must be percent-encoded, as in any URL)."""
    end = min((i for i in (rest.find("/"), rest.find("?")) if i != -1), default=len(rest))
    userinfo, at, after = rest[:end].rpartition("@")
    if not at:
        return "", rest
    return userinfo, after + rest[end:]


def _encode_userinfo(userinfo: str) -> str:
    # Percent-encoded parts (what providers hand out) stay as they are; raw special
    # characters get encoded, so SQLAlchemy's parser sees one user and one password.
    user, colon, password = userinfo.partition(":")
    encoded = quote(unquote(user), safe="")
    if colon:
        encoded += ":" + quote(unquote(password), safe="")
    return encoded


def _check(key: str, value: str) -> None:
    allowed = _FOR_ASYNCPG.get(key)
    if allowed is not None and value not in allowed:
        raise ValueError(f"{key}: must be one of {', '.join(allowed)} (got {value!r})")
    if key in _FILES:
        if key == "sslrootcert" and value == "system":
            raise ValueError(
                "sslrootcert: 'system' is not supported; give a CA file, e.g. "
                "/etc/ssl/certs/ca-certificates.crt for the system's CAs"
            )
        path = Path(value).expanduser()
        if not path.is_file() or not os.access(path, os.R_OK):
            raise ValueError(f"{key}: no readable file at {value!r}")
    if key == "port" and not all(part.strip().isdigit() for part in value.split(",")):
        raise ValueError(f"port: must be a number (got {value!r})")


def _connect_timeout(value: str) -> float | None:
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"connect_timeout: must be a number of seconds (got {value!r})") from None
    if seconds < 0 or seconds != seconds or seconds == float("inf"):
        raise ValueError(f"connect_timeout: must be >= 0 (got {value!r})")
    # libpq: 0 means "no limit"; the server keeps its own bound instead of hanging.
    return seconds or None


def parse_database_url(raw: str) -> DatabaseURL:
    """Split ``raw`` into a SQLAlchemy URL with the async driver and the driver's
    connection arguments; raise ``ValueError`` naming the offending parameter.

    Example:
        >>> parse_database_url("postgresql://h/db?connect_timeout=10").connect_timeout
        10.0
        >>> parse_database_url("postgresql://h/db?sslmode=maybe")
        Traceback (most recent call last):
        ...
        ValueError: sslmode: must be one of disable, allow, prefer, require, verify-ca, verify-full (got 'maybe')
    """
    scheme, sep, rest = raw.strip().partition("://")
    if not sep:
        raise ValueError("must be a URL such as sqlite+aiosqlite:///./xray.db")
    lowered = scheme.lower()
    if lowered in _SQLITE_SCHEMES:
        return DatabaseURL(url="sqlite+aiosqlite://" + rest, backend="sqlite")
    if lowered not in _POSTGRES_SCHEMES:
        return DatabaseURL(url=raw, backend=lowered.partition("+")[0])
    userinfo, after = _split_userinfo(rest)
    location, _, query = after.partition("?")
    connect_args: dict[str, Any] = {}
    for_asyncpg: list[tuple[str, str]] = []
    kept: list[tuple[str, str]] = []
    server_settings: dict[str, str] = {}
    timeout: float | None = None
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in _SUPPORTED:
            raise ValueError(
                f"{key}: unknown connection parameter (supported: {', '.join(_SUPPORTED)})"
            )
        _check(key, value)
        if key in _FOR_ASYNCPG:
            for_asyncpg.append((key, value))
        elif key in _STARTUP:
            server_settings[key] = value
        elif key == "connect_timeout":
            timeout = _connect_timeout(value)
        else:
            kept.append((key, value))
    if for_asyncpg:
        connect_args["dsn"] = "postgresql://?" + urlencode(for_asyncpg)
    if server_settings:
        connect_args["server_settings"] = server_settings
    url = "postgresql+asyncpg://"
    if userinfo:
        url += _encode_userinfo(userinfo) + "@"
    url += location
    if kept:
        url += "?" + urlencode(kept)
    return DatabaseURL(
        url=url, backend="postgresql", connect_args=connect_args, connect_timeout=timeout
    )


def normalise_database_url(raw: str) -> str:
    """``raw`` with the async driver in its scheme and its parameters checked; what the
    config keeps (the parameters stay, for ``parse_database_url`` at connect time).

    Example:
        >>> normalise_database_url("postgres://u@h/db?sslmode=require")
        'postgresql+asyncpg://u@h/db?sslmode=require'
    """
    parsed = parse_database_url(raw)
    if parsed.backend != "postgresql":
        return parsed.url
    rest = raw.strip().partition("://")[2]
    userinfo, after = _split_userinfo(rest)
    prefix = _encode_userinfo(userinfo) + "@" if userinfo else ""
    return f"postgresql+asyncpg://{prefix}{after}"
