"""Config discovery, interpolation, precedence and the errors a user sees."""

from __future__ import annotations

from pathlib import Path

import pytest

from xray.shared import (
    APIConfig,
    ConfigError,
    ConfigNotFoundError,
    DetailLevel,
    SDKConfig,
    find_config_file,
    load_api_config,
    load_config,
    load_sdk_config,
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_match_the_seed() -> None:
    sdk = SDKConfig()
    assert sdk.base_url == "http://localhost:8000"
    assert sdk.api_key is None
    assert sdk.buffer_size == 1000
    assert sdk.flush_interval == 5.0
    assert sdk.default_detail is DetailLevel.SUMMARY
    assert sdk.shutdown_timeout == 2.0
    api = APIConfig()
    assert api.database_url == "sqlite+aiosqlite:///./xray.db"
    assert api.debug is False
    assert (api.host, api.port) == ("127.0.0.1", 8000)
    assert api.api_keys == []


def test_config_is_found_upward_from_a_nested_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(tmp_path / "project" / "xray.config.yaml", "sdk:\n  buffer_size: 42\n")
    nested = tmp_path / "project" / "src" / "pkg" / "deep"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    assert find_config_file() == config
    assert load_sdk_config(env={}).buffer_size == 42


def test_nearest_config_file_wins(tmp_path: Path) -> None:
    write(tmp_path / "xray.config.yaml", "sdk:\n  buffer_size: 1\n")
    inner = write(tmp_path / "a" / "xray.config.yaml", "sdk:\n  buffer_size: 2\n")
    (tmp_path / "a" / "b").mkdir()
    assert find_config_file(tmp_path / "a" / "b", env={}) == inner


def test_no_config_file_anywhere_means_none(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    # tmp_path's ancestors hold no xray.config.yaml on a clean machine; guard the assumption.
    if any((p / "xray.config.yaml").exists() for p in empty.resolve().parents):
        pytest.skip("an ancestor of the temp dir has an xray.config.yaml")
    assert find_config_file(empty, env={}) is None


def test_xray_config_names_the_file_explicitly(tmp_path: Path) -> None:
    write(tmp_path / "xray.config.yaml", "sdk:\n  buffer_size: 1\n")
    explicit = write(tmp_path / "elsewhere" / "custom.yaml", "sdk:\n  buffer_size: 7\n")
    env = {"XRAY_CONFIG": str(explicit)}
    assert find_config_file(tmp_path, env=env) == explicit
    assert load_sdk_config(start=tmp_path, env=env).buffer_size == 7


def test_xray_config_pointing_nowhere_is_an_error_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_api_config(env={"XRAY_CONFIG": str(missing)})
    assert str(missing) in str(info.value)
    assert "XRAY_CONFIG" in str(info.value)


def test_interpolation_with_and_without_default(tmp_path: Path) -> None:
    write(
        tmp_path / "xray.config.yaml",
        "sdk:\n"
        "  api_key: ${MY_KEY}\n"
        "  base_url: ${MY_URL:-http://fallback:9000}\n"
        "api:\n"
        "  database_url: postgresql+asyncpg://u:${PGPASS}@h:5432/x\n",
    )
    env = {"MY_KEY": "k-123", "PGPASS": "s3cret"}
    config = load_config(start=tmp_path, env=env)
    assert config.sdk.api_key == "k-123"
    assert config.sdk.base_url == "http://fallback:9000"
    assert config.api.database_url == "postgresql+asyncpg://u:s3cret@h:5432/x"


def test_set_variable_beats_the_inline_default(tmp_path: Path) -> None:
    write(tmp_path / "xray.config.yaml", "sdk:\n  base_url: ${MY_URL:-http://fallback:9000}\n")
    config = load_sdk_config(start=tmp_path, env={"MY_URL": "https://xray.example.com"})
    assert config.base_url == "https://xray.example.com"


def test_empty_default_is_allowed(tmp_path: Path) -> None:
    write(tmp_path / "xray.config.yaml", "api:\n  api_keys: ['${XRAY_KEY_A:-}', 'fixed']\n")
    assert load_api_config(start=tmp_path, env={}).api_keys == ["fixed"]


def test_missing_variable_names_variable_key_and_file(tmp_path: Path) -> None:
    config = write(tmp_path / "xray.config.yaml", "sdk:\n  api_key: ${XRAY_API_KEY_UNSET}\n")
    with pytest.raises(ConfigError) as info:
        load_sdk_config(start=tmp_path, env={})
    message = str(info.value)
    assert "XRAY_API_KEY_UNSET" in message
    assert "sdk.api_key" in message
    assert str(config) in message


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    write(
        tmp_path / "xray.config.yaml",
        "sdk:\n  base_url: http://from-file:1\n  api_key: file-key\n"
        "api:\n  database_url: sqlite+aiosqlite:///./file.db\n",
    )
    env = {
        "XRAY_BASE_URL": "http://from-env:2",
        "XRAY_API_KEY": "env-key",
        "DATABASE_URL": "postgresql+asyncpg://postgres:postgres@db:5432/xray",
        "XRAY_API_KEYS": "a, b,,c",
        "XRAY_PORT": "9001",
    }
    config = load_config(start=tmp_path, env=env)
    assert config.sdk.base_url == "http://from-env:2"
    assert config.sdk.api_key == "env-key"
    assert config.api.database_url == "postgresql+asyncpg://postgres:postgres@db:5432/xray"
    assert config.api.api_keys == ["a", "b", "c"]
    assert config.api.port == 9001


def test_keyword_arguments_override_environment_and_file(tmp_path: Path) -> None:
    write(tmp_path / "xray.config.yaml", "sdk:\n  base_url: http://from-file:1\n  buffer_size: 5\n")
    config = load_sdk_config(
        start=tmp_path, env={"XRAY_BASE_URL": "http://from-env:2"}, base_url="http://kwarg:3"
    )
    assert config.base_url == "http://kwarg:3"
    assert config.buffer_size == 5  # untouched keys still come from the file


def test_none_keyword_argument_does_not_override(tmp_path: Path) -> None:
    write(tmp_path / "xray.config.yaml", "sdk:\n  api_key: from-file\n")
    assert load_sdk_config(start=tmp_path, env={}, api_key=None).api_key == "from-file"


def test_sdk_without_any_config_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(ConfigNotFoundError):
        load_sdk_config(start=tmp_path, env={})


def test_sdk_configured_by_environment_alone(tmp_path: Path) -> None:
    config = load_sdk_config(start=tmp_path, env={"XRAY_BASE_URL": "http://127.0.0.1:8123/"})
    assert config.base_url == "http://127.0.0.1:8123"


def test_api_without_config_uses_the_embedded_sqlite_default(tmp_path: Path) -> None:
    assert load_api_config(start=tmp_path, env={}).database_url == "sqlite+aiosqlite:///./xray.db"


def test_bad_yaml_names_the_file_and_the_line(tmp_path: Path) -> None:
    config = write(tmp_path / "xray.config.yaml", "sdk:\n  base_url: [unclosed\n  buffer_size: 3\n")
    with pytest.raises(ConfigError) as info:
        load_sdk_config(start=tmp_path, env={})
    assert str(config) in str(info.value)
    assert "invalid YAML" in str(info.value)
    assert "line" in str(info.value)


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    write(tmp_path / "xray.config.yaml", "- just\n- a list\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_api_config(start=tmp_path, env={})


def test_unknown_key_is_rejected_with_its_dotted_name(tmp_path: Path) -> None:
    config = write(tmp_path / "xray.config.yaml", "sdk:\n  bufer_size: 10\n")
    with pytest.raises(ConfigError) as info:
        load_sdk_config(start=tmp_path, env={})
    assert info.value.key == "sdk.bufer_size"
    assert info.value.file == str(config)
    assert "buffer_size" in str(info.value)  # the allowed keys are listed


def test_unknown_top_level_section_is_rejected(tmp_path: Path) -> None:
    write(tmp_path / "xray.config.yaml", "sdk: {}\nserver:\n  port: 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(start=tmp_path, env={})
    assert info.value.key == "server"


def test_wrong_type_names_key_file_and_value(tmp_path: Path) -> None:
    config = write(tmp_path / "xray.config.yaml", "api:\n  port: eighty\n")
    with pytest.raises(ConfigError) as info:
        load_api_config(start=tmp_path, env={})
    assert info.value.key == "api.port"
    assert info.value.file == str(config)
    assert "'eighty'" in str(info.value)


def test_out_of_range_value_is_rejected(tmp_path: Path) -> None:
    write(tmp_path / "xray.config.yaml", "sdk:\n  sample_rate: 1.5\n")
    with pytest.raises(ConfigError) as info:
        load_sdk_config(start=tmp_path, env={})
    assert info.value.key == "sdk.sample_rate"


def test_bad_environment_value_blames_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_api_config(start=tmp_path, env={"XRAY_PORT": "http"})
    assert info.value.key == "api.port"
    assert "XRAY_PORT" in str(info.value)


def test_section_with_wrong_shape_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "xray.config.yaml", "sdk: [1, 2]\n")
    with pytest.raises(ConfigError) as info:
        load_sdk_config(start=tmp_path, env={})
    assert info.value.key == "sdk"


def test_empty_file_and_empty_sections_give_defaults(tmp_path: Path) -> None:
    write(tmp_path / "xray.config.yaml", "sdk:\napi:\n")
    config = load_config(start=tmp_path, env={})
    assert config.sdk == SDKConfig()
    assert config.api == APIConfig()


def test_plain_postgres_url_is_made_async() -> None:
    assert (
        APIConfig(database_url="postgresql://u:p@h:5432/d").database_url
        == "postgresql+asyncpg://u:p@h:5432/d"
    )
    assert APIConfig(database_url="postgres://h/d").database_url == "postgresql+asyncpg://h/d"
    assert APIConfig(database_url="sqlite:///./x.db").database_url == "sqlite+aiosqlite:///./x.db"


def test_base_url_must_be_http(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_sdk_config(start=tmp_path, env={}, base_url="localhost:8000")
    assert info.value.key == "sdk.base_url"
    assert info.value.file == "keyword argument"


def test_seed_example_config_loads_verbatim(tmp_path: Path) -> None:
    # The documented configuration example, character for character.
    write(
        tmp_path / "xray.config.yaml",
        "# SDK configuration\n"
        "sdk:\n"
        "  base_url: http://localhost:8000\n"
        "  api_key: your-api-key\n"
        "  buffer_size: 1000\n"
        "  flush_interval: 5.0\n"
        '  default_detail: summary  # or "full"\n'
        "\n"
        "# API configuration\n"
        "api:\n"
        "  database_url: postgresql+asyncpg://localhost:5432/xray\n"
        "  debug: false\n",
    )
    config = load_config(start=tmp_path, env={})
    assert config.sdk.api_key == "your-api-key"
    assert config.api.database_url == "postgresql+asyncpg://localhost:5432/xray"


def test_default_redact_keys_cover_common_secrets() -> None:
    keys = SDKConfig().redact_keys
    for secret in ("password", "api_key", "token", "authorization", "secret"):
        assert secret in keys


def test_bad_file_value_is_blamed_on_the_file_even_with_none_overrides(tmp_path: Path) -> None:
    config = write(tmp_path / "xray.config.yaml", "api:\n  port: eighty\n")
    with pytest.raises(ConfigError) as info:
        load_api_config(start=tmp_path, env={}, port=None, host=None)
    assert info.value.file == str(config)
