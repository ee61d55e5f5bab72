"""Database URLs in the forms providers hand out, parsed and (where a server is needed)
connected to the test PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.conftest import PG_HOST, PG_PORT
from xray.api.db.session import create_engine
from xray.shared import APIConfig, ConfigError, load_api_config, parse_database_url


@pytest.mark.parametrize(
    "scheme", ["postgres", "postgresql", "postgres+asyncpg", "postgresql+asyncpg", "POSTGRES"]
)
def test_every_postgres_scheme_becomes_asyncpg(scheme: str) -> None:
    config = APIConfig(database_url=f"{scheme}://app:pw@db.example.com:6543/xray?sslmode=require")
    assert (
        config.database_url
        == "postgresql+asyncpg://app:pw@db.example.com:6543/xray?sslmode=require"
    )
    parsed = parse_database_url(config.database_url)
    assert parsed.url == "postgresql+asyncpg://app:pw@db.example.com:6543/xray"
    assert parsed.connect_args == {"dsn": "postgresql://?sslmode=require"}


def test_libpq_parameters_are_split_between_sqlalchemy_and_asyncpg(tmp_path: Path) -> None:
    ca = tmp_path / "root.crt"
    ca.write_text("not read until connecting\n")
    parsed = parse_database_url(
        "postgresql://app@db.example.com/xray?sslmode=verify-full"
        f"&sslrootcert={ca}&application_name=xray&options=-c%20search_path%3Dxray"
        "&connect_timeout=12&target_session_attrs=read-write&prepared_statement_cache_size=0"
    )
    assert (
        parsed.url == "postgresql+asyncpg://app@db.example.com/xray?prepared_statement_cache_size=0"
    )
    assert parsed.connect_timeout == 12.0
    assert parsed.connect_args == {
        "dsn": f"postgresql://?sslmode=verify-full&sslrootcert={str(ca).replace('/', '%2F')}"
        "&target_session_attrs=read-write",
        "server_settings": {"application_name": "xray", "options": "-c search_path=xray"},
    }


@pytest.mark.parametrize(
    ("url", "user", "password"),
    [
        ("postgresql://app:p%40ss%3Aw%2Frd%3F%23@h/db", "app", "p@ss:w/rd?#"),
        ("postgresql://app:p@ss:word@h/db", "app", "p@ss:word"),  # unencoded @ and :
        ("postgresql://us%40er:pw@h/db", "us@er", "pw"),
        ("postgresql://app:100%25@h/db", "app", "100%"),
    ],
)
def test_passwords_with_special_characters(url: str, user: str, password: str) -> None:
    from sqlalchemy.engine import make_url

    parsed = make_url(parse_database_url(url).url)
    assert (parsed.username, parsed.password, parsed.host, parsed.database) == (
        user,
        password,
        "h",
        "db",
    )


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("sslmode=verify", "sslmode: must be one of disable, allow, prefer, require"),
        ("sslrootcert=/no/such/ca.pem", "sslrootcert: no readable file"),
        ("sslrootcert=system&sslmode=verify-full", "sslrootcert: 'system' is not supported"),
        ("connect_timeout=-1", "connect_timeout: must be >= 0"),
        ("connect_timeout=ten", "connect_timeout: must be a number"),
        ("pool_size=5", "pool_size: unknown connection parameter"),
        ("port=x", "port: must be a number"),
        ("target_session_attrs=primary-ish", "target_session_attrs: must be one of"),
    ],
)
def test_invalid_parameter_is_named_and_the_password_is_not_shown(query: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_api_config(env={"DATABASE_URL": f"postgres://app:hunter2@h/db?{query}"})
    text_ = str(raised.value)
    assert text_.startswith("environment variable DATABASE_URL: api.database_url: ")
    assert message in text_
    assert "hunter2" not in text_ and "\n" not in text_


def test_migrations_url_and_pooler_settings_come_from_the_environment() -> None:
    config = load_api_config(
        env={
            "DATABASE_URL": "postgres://app:pw@pooler.example.com:6543/xray?sslmode=require",
            "XRAY_MIGRATIONS_DATABASE_URL": "postgres://app:pw@db.example.com:5432/xray",
            "XRAY_DATABASE_POOLER": "transaction",
            "XRAY_DATABASE_POOL_SIZE": "0",
        }
    )
    assert config.migrations_database_url == "postgresql+asyncpg://app:pw@db.example.com:5432/xray"
    assert (config.database_pooler, config.database_pool_size) == ("transaction", 0)


@pytest.mark.postgres
def test_unix_socket_url_as_cloud_sql_gives_it(postgres_database: str) -> None:
    # Cloud Run reaches Cloud SQL through /cloudsql/PROJECT:REGION:INSTANCE; the same form
    # with the local server's socket directory.
    socket_dir = Path("/var/run/postgresql")
    if (PG_HOST, PG_PORT) != ("127.0.0.1", 5432) or not (socket_dir / ".s.PGSQL.5432").exists():
        pytest.skip("the test PostgreSQL has no local Unix socket here")
    database = postgres_database.rsplit("/", 1)[1]

    async def main() -> str:
        engine = create_engine(f"postgresql://postgres@/{database}?host={socket_dir}")
        try:
            async with engine.connect() as conn:
                query = text(
                    "SELECT current_database() || ' ' || coalesce(inet_server_addr()::text, 'socket')"
                )
                return str((await conn.execute(query)).scalar())
        finally:
            await engine.dispose()

    assert asyncio.run(main()) == f"{database} socket"
