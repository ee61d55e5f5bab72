"""Connection strings as managed PostgreSQL services hand them out, against a real TLS
server: a temporary cluster that refuses plain-text connections, with a CA made here."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy import text

from tests._servers import api_server
from tests.api import _data
from tests.deploy._services import (
    PASSWORD_ROLE,
    SPECIAL_PASSWORD,
    TLSPostgres,
    make_certificates,
    tls_postgres,
)
from xray.api.db.session import create_engine

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture(scope="module")
def tls_server() -> Iterator[TLSPostgres]:
    with tls_postgres() as server:
        yield server


async def _admin_fetch(server: TLSPostgres, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(server.url(sslmode="verify-full", sslrootcert=str(server.ca_file)))
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


def _xray(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("XRAY_")}
    base.pop("DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "xray.cli", *args],
        env={**base, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _ingest_and_read_back(base_url: str) -> None:
    run_id = _data.new_id()
    batch = {
        "runs": [_data.run(run_id, status="success", ended=3)],
        "steps": [
            _data.step(
                run_id,
                input_count=3,
                output_count=1,
                decisions=[
                    _data.decision("a"),
                    _data.decision("b"),
                    _data.decision("c", "accepted"),
                ],
            )
        ],
    }
    with httpx.Client(base_url=base_url, timeout=10) as client:
        written = client.post("/batch", json=batch)
        assert written.status_code == 200, written.text
        detail = client.get(f"/runs/{run_id}")
        assert detail.status_code == 200, detail.text
        [step] = detail.json()["steps"]
        assert step["elimination_rate"] == pytest.approx(2 / 3)
        decisions = client.get(f"/steps/{step['id']}/decisions").json()["items"]
        assert [d["candidate_key"] for d in decisions] == ["a", "b", "c"]


def test_sslmode_require_url_from_a_provider_serves_over_tls(
    tls_server: TLSPostgres, tmp_path: Path
) -> None:
    # The form RDS, Cloud SQL, Azure, Neon and Supabase give, with Heroku's scheme.
    url = tls_server.url(sslmode="require", application_name="xray-tls-require")
    url = url.replace("postgresql://", "postgres://", 1)
    migrated = _xray("db", "upgrade", env={"DATABASE_URL": url}, cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    with api_server(url, workdir=tmp_path) as server:
        _ingest_and_read_back(server.base_url)
        rows = asyncio.run(
            _admin_fetch(
                tls_server,
                "SELECT s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)"
                " WHERE a.application_name = 'xray-tls-require'",
            )
        )
    assert rows, "the server's connections carry the URL's application_name"
    assert all(row["ssl"] for row in rows)


def test_verify_full_with_the_providers_ca_serves(tls_server: TLSPostgres, tmp_path: Path) -> None:
    url = tls_server.url(sslmode="verify-full", sslrootcert=str(tls_server.ca_file))
    url = url.replace("postgresql://", "postgresql+asyncpg://", 1)
    migrated = _xray("db", "upgrade", env={"DATABASE_URL": url}, cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    with api_server(url, workdir=tmp_path) as server:
        _ingest_and_read_back(server.base_url)


def test_verify_full_refuses_a_server_signed_by_another_ca(
    tls_server: TLSPostgres, tmp_path: Path
) -> None:
    other_ca = make_certificates(tmp_path, name="other-ca")
    url = tls_server.url(sslmode="verify-full", sslrootcert=str(other_ca))
    result = _xray("db", "upgrade", env={"DATABASE_URL": url}, cwd=tmp_path)
    assert result.returncode != 0
    assert "certificate verify failed" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_password_with_special_characters_percent_encoded(
    tls_server: TLSPostgres, tmp_path: Path
) -> None:
    url = tls_server.url(user=PASSWORD_ROLE, password=SPECIAL_PASSWORD, sslmode="require")
    assert "%40" in url and "%2F" in url  # encoded, as providers hand it out
    result = _xray("db", "upgrade", env={"DATABASE_URL": url}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert SPECIAL_PASSWORD not in result.stdout  # messages never show the password


def test_password_with_unencoded_at_and_colon(tls_server: TLSPostgres) -> None:
    async def main() -> str:
        await _admin_fetch(tls_server, f"ALTER ROLE {PASSWORD_ROLE} PASSWORD 'p@ss:word@1'")
        engine = create_engine(
            f"postgres://{PASSWORD_ROLE}:p@ss:word@1@localhost:{tls_server.port}/postgres"
            "?sslmode=require"
        )
        try:
            async with engine.connect() as conn:
                return str((await conn.execute(text("SELECT current_user"))).scalar())
        finally:
            await engine.dispose()

    assert asyncio.run(main()) == PASSWORD_ROLE


def test_options_connect_timeout_and_application_name_reach_the_session(
    tls_server: TLSPostgres,
) -> None:
    url = tls_server.url(
        sslmode="require",
        options="-c statement_timeout=4321",
        application_name="xray-options",
        connect_timeout="7",
    )

    async def main() -> tuple[str, str, bool]:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                timeout = (await conn.execute(text("SHOW statement_timeout"))).scalar()
                name = (await conn.execute(text("SHOW application_name"))).scalar()
                ssl = (
                    await conn.execute(
                        text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                    )
                ).scalar()
                return str(timeout), str(name), bool(ssl)
        finally:
            await engine.dispose()

    assert asyncio.run(main()) == ("4321ms", "xray-options", True)


def test_sslmode_disable_is_honoured(tls_server: TLSPostgres) -> None:
    # The server refuses plain text: a URL saying "disable" must really not use TLS.
    async def main() -> None:
        engine = create_engine(tls_server.url(sslmode="disable"))
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        finally:
            await engine.dispose()

    with pytest.raises(Exception, match="no encryption"):
        asyncio.run(main())


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("sslmode=required", "sslmode"),
        ("connect_timeout=soon", "connect_timeout"),
        ("sslmode=verify-full&sslrootcert=/nonexistent/root.crt", "sslrootcert"),
        ("ssl=true", "ssl"),
    ],
)
def test_invalid_connection_parameter_is_one_line_naming_it(
    query: str, named: str, tmp_path: Path
) -> None:
    url = f"postgres://app:s3cret@db.example.com:5432/xray?{query}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("XRAY_")}
    env["DATABASE_URL"] = url
    result = subprocess.run(
        [sys.executable, "-m", "xray.api"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "DATABASE_URL" in line and "api.database_url" in line and f"{named}:" in line
    assert "s3cret" not in line
    cli = _xray("db", "upgrade", env={"DATABASE_URL": url}, cwd=tmp_path)
    assert cli.returncode == 2
    [cli_line] = cli.stderr.strip().splitlines()
    assert f"{named}:" in cli_line and "s3cret" not in cli_line
