"""``xray db upgrade`` and ``xray keys`` act on the server's database; keys then gate the API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests._servers import api_server
from tests.cli.conftest import run_cli, run_xray_process, xray_command

pytestmark = pytest.mark.slow


def test_db_upgrade_creates_the_schema_and_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    first = run_xray_process("db", "upgrade", "--database-url", url)
    assert first.code == 0, first.err
    assert "latest schema" in first.out
    assert (tmp_path / "fresh.db").stat().st_size > 0
    assert run_xray_process("db", "upgrade", "--database-url", url).code == 0


def test_db_upgrade_on_an_unreachable_database_is_one_line() -> None:
    result = run_xray_process(
        "db", "upgrade", "--database-url", "postgresql+asyncpg://nobody@127.0.0.1:1/none"
    )
    assert result.code == 1
    assert "Traceback" not in result.err
    assert result.err.startswith("xray: database upgrade failed")


def test_keys_create_list_revoke_and_the_server_enforces_them(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}"
    assert run_cli("db", "upgrade", "--database-url", url).code == 0
    created = run_cli("keys", "create", "--name", "ci", "--json", "--database-url", url)
    assert created.code == 0, created.err
    key = json.loads(created.out)
    listed = json.loads(run_cli("keys", "list", "--json", "--database-url", url).out)
    assert [k["id"] for k in listed] == [key["id"]]
    assert key["key"] not in json.dumps(listed)

    with api_server(url, workdir=tmp_path / "srv") as server:
        assert run_cli("runs", url=server.base_url).code == 4
        assert run_cli("runs", url=server.base_url, api_key=key["key"]).code == 0
        revoked = run_cli("keys", "revoke", key["id"], "--database-url", url)
        assert revoked.code == 0, revoked.err
    assert run_cli("keys", "revoke", key["id"], "--database-url", url).code == 5
    table = run_cli("keys", "list", "--database-url", url)
    assert key["id"] in table.out


def test_serve_with_an_invalid_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "cwd" / "xray.config.yaml").write_text("api:\n  port: -5\n")
    result = run_cli("serve")
    assert result.code == 2  # documented: 2 = bad arguments or config
    assert "api.port" in result.err


def test_db_upgrade_with_an_invalid_config_exits_2(tmp_path: Path) -> None:
    (tmp_path / "cwd" / "xray.config.yaml").write_text("api:\n  port: lots\n")
    result = run_cli("db", "upgrade")
    assert result.code == 2
    assert "api.port" in result.err and "(got 'lots')" in result.err


def test_serve_answers_and_stops_on_sigterm(tmp_path: Path) -> None:
    import signal

    from tests.conftest import free_port
    from xray.cli._supervisor import start_server_process

    port = free_port()
    argv = [*xray_command(), "serve", "--port", str(port)]
    argv += ["--database-url", f"sqlite+aiosqlite:///{tmp_path / 's.db'}"]
    server = start_server_process(
        argv, base_url=f"http://127.0.0.1:{port}", log_path=tmp_path / "serve.log", timeout=30
    )
    try:
        assert run_cli("runs", url=server.base_url).code == 0
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert server.stop(timeout=20) in (0, -signal.SIGTERM)
        assert not server.killed
        assert "Application shutdown complete" in server.log()
    finally:
        server.kill()
