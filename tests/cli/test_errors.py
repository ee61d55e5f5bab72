"""Every failure is one line on stderr with a documented exit code, never a traceback."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._servers import RunningServer, api_server
from tests.cli.conftest import run_cli, run_xray_process
from tests.conftest import free_port

pytestmark = pytest.mark.slow


def assert_one_line(err: str) -> None:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("xray: ")


def test_server_down_exits_3_with_one_line_naming_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = run_xray_process("runs", "--url", url)
    assert result.code == 3
    assert_one_line(result.err)
    assert url in result.err and "cannot reach" in result.err


def test_server_down_via_environment_variable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = run_xray_process("steps", env={"XRAY_BASE_URL": url})
    assert result.code == 3
    assert url in result.err


def test_unknown_run_exits_5(demo_server: RunningServer) -> None:
    result = run_cli("run", str(uuid.uuid4()), url=demo_server.base_url)
    assert result.code == 5
    assert_one_line(result.err)
    assert "not found" in result.err


def test_malformed_run_id_is_a_clear_error_not_a_crash(demo_server: RunningServer) -> None:
    result = run_cli("run", "not-a-uuid", url=demo_server.base_url)
    assert result.code in (2, 5)
    assert_one_line(result.err)


@pytest.mark.parametrize(
    "argv",
    [
        ["runs", "--status", "exploded"],
        ["steps", "--min-elimination-rate", "1.5"],
        ["steps", "--type", "filterr"],
        ["runs", "--since", "last tuesday"],
        ["runs", "--limit", "0"],
        ["runs", "--metadata", "no-equals-sign"],
        ["diff", "only-one-run"],
        ["frobnicate"],
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv: list[str]) -> None:
    result = run_cli(*argv, url=f"http://127.0.0.1:{free_port()}")
    assert result.code == 2, result
    assert_one_line(result.err)


def test_bad_url_is_a_usage_error() -> None:
    result = run_cli("runs", url="ftp://example.invalid")
    assert result.code == 2
    assert_one_line(result.err)
    assert "http://" in result.err


def test_bad_arguments_in_a_real_process_have_no_traceback() -> None:
    result = run_xray_process("steps", "--min-elimination-rate", "ninety")
    assert result.code == 2
    assert_one_line(result.err)


def test_no_command_prints_help_and_exits_2() -> None:
    result = run_cli()
    assert result.code == 2
    assert "xray demo" in result.out


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    workdir = tmp_path_factory.mktemp("cli-keys")
    with api_server(
        f"sqlite+aiosqlite:///{workdir / 'keys.db'}", workdir=workdir, api_keys=("s3cret-key",)
    ) as server:
        yield server


def test_missing_key_exits_4_and_says_how_to_pass_one(keyed_server: RunningServer) -> None:
    result = run_cli("runs", url=keyed_server.base_url)
    assert result.code == 4
    assert_one_line(result.err)
    assert "--api-key" in result.err and "XRAY_API_KEY" in result.err


def test_wrong_key_exits_4(keyed_server: RunningServer) -> None:
    assert run_cli("runs", url=keyed_server.base_url, api_key="wrong").code == 4


def test_right_key_from_flag_or_environment_is_accepted(keyed_server: RunningServer) -> None:
    assert run_cli("runs", url=keyed_server.base_url, api_key="s3cret-key").code == 0
    result = run_xray_process(
        "runs", env={"XRAY_BASE_URL": keyed_server.base_url, "XRAY_API_KEY": "s3cret-key"}
    )
    assert result.code == 0, result.err
    assert "no runs match" in result.out


def test_key_from_config_file_is_accepted(keyed_server: RunningServer, tmp_path: Path) -> None:
    (tmp_path / "cwd" / "xray.config.yaml").write_text(
        f"sdk:\n  base_url: {keyed_server.base_url}\n  api_key: ${{MY_KEY}}\n"
    )
    result = run_xray_process("runs", "--json", env={"MY_KEY": "s3cret-key"})
    assert result.code == 0, result.err
    assert result.out.strip() == "[]"


def test_invalid_config_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "cwd" / "xray.config.yaml").write_text("sdk:\n  buffer_size: -1\n")
    result = run_cli("runs")
    assert result.code == 2
    assert_one_line(result.err)
    assert "sdk.buffer_size" in result.err


def test_a_bug_is_one_line_by_default_and_a_traceback_with_debug(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import xray.cli._app

    def broken(ctx: object, args: object) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr(xray.cli._app, "cmd_runs", broken)
    result = run_cli("runs", url="http://127.0.0.1:1")
    assert result.code == 1
    assert_one_line(result.err)
    assert "unexpected error: RuntimeError: boom" in result.err
    with pytest.raises(RuntimeError, match="boom"):
        run_cli("--debug", "runs", url="http://127.0.0.1:1")
