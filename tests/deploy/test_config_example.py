"""xray.config.example.yaml, the documented config examples and the settings table."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.deploy._image import CONFIG_EXAMPLE
from xray.shared import ENV_OVERRIDES, APIConfig, ConfigError, SDKConfig, load_config

MODELS: dict[str, type[SDKConfig] | type[APIConfig]] = {"sdk": SDKConfig, "api": APIConfig}

# The documented examples, verbatim (docs/configuration.md shows them as they are).
SEED_SDK_IN_USER_PROJECT = """\
# xray.config.yaml (in user's project root)
sdk:
  base_url: https://xray-api.yourcompany.com
  api_key: ${XRAY_API_KEY}  # From environment
  buffer_size: 1000
  flush_interval: 5.0
"""
SEED_CONFIGURATION = """\
# SDK configuration
sdk:
  base_url: http://localhost:8000
  api_key: your-api-key
  buffer_size: 1000
  flush_interval: 5.0
  default_detail: summary  # or "full"

# API configuration
api:
  database_url: postgresql+asyncpg://localhost:5432/xray
  debug: false
"""
SEED_MANUAL_SETUP = """\
# In xray.config.yaml:
api:
  database_url: postgresql+asyncpg://postgres:postgres@localhost:5432/xray
"""
SEED_SQLITE = """\
# xray.config.yaml
api:
  database_url: sqlite+aiosqlite:///./xray.db
"""


def _config_table() -> ModuleType:
    path = REPO_ROOT / "deploy" / "config_table.py"
    spec = importlib.util.spec_from_file_location("xray_deploy_config_table", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _example_data() -> dict[str, Any]:
    data = yaml.safe_load(CONFIG_EXAMPLE.read_text())
    assert isinstance(data, dict)
    return data


def _comment_block_above(lines: list[str], index: int) -> str:
    """The comment lines directly above ``lines[index]`` plus its inline comment."""
    block: list[str] = []
    i = index - 1
    while i >= 0 and lines[i].strip().startswith("#"):
        block.insert(0, lines[i].strip())
        i -= 1
    inline = lines[index].partition(" #")[2]
    return "\n".join([*block, inline])


def test_example_has_every_setting_of_both_sections_and_nothing_else() -> None:
    data = _example_data()
    assert set(data) == {"sdk", "api"}
    for section, model in MODELS.items():
        assert list(data[section]) == list(model.model_fields), section


def test_example_loads_and_equals_the_defaults(tmp_path: Path) -> None:
    loaded = load_config(CONFIG_EXAMPLE, env={})
    assert loaded.api == APIConfig()
    # api_key is "${XRAY_API_KEY:-}": empty when the variable is unset.
    assert loaded.sdk.model_copy(update={"api_key": None}) == SDKConfig()
    assert loaded.sdk.api_key == ""


def test_example_reads_the_api_key_from_the_environment() -> None:
    loaded = load_config(CONFIG_EXAMPLE, env={"XRAY_API_KEY": "k-from-env"})
    assert loaded.sdk.api_key == "k-from-env"


def test_every_setting_in_the_example_is_explained_by_a_comment() -> None:
    lines = CONFIG_EXAMPLE.read_text().splitlines()
    for section, model in MODELS.items():
        for key in model.model_fields:
            [index] = [i for i, line in enumerate(lines) if line.startswith(f"  {key}:")]
            block = _comment_block_above(lines, index)
            assert block.strip(), f"{section}.{key} has no comment"
            for variable, (target, field, _) in ENV_OVERRIDES.items():
                if (target, field) == (section, key):
                    assert variable in block, f"{section}.{key}: comment omits env {variable}"


def test_settings_table_has_one_row_per_setting_with_its_default_and_env() -> None:
    table = _config_table()
    rows = table.rows()
    expected = [f"`{s}.{k}`" for s, model in MODELS.items() for k in model.model_fields]
    assert [row[0] for row in rows] == expected
    assert set(table.MEANINGS) == {key.strip("`") for key in expected}
    by_key = {row[0]: row for row in rows}
    assert by_key["`api.database_url`"][1] == "`DATABASE_URL`"
    assert by_key["`api.database_url`"][2] == "`sqlite+aiosqlite:///./xray.db`"
    assert by_key["`api.api_keys`"][1].startswith("`XRAY_API_KEYS`")
    assert by_key["`sdk.flush_interval`"][2] == "`5.0`"
    assert by_key["`sdk.default_detail`"][2] == "`summary`"
    overridden = {row[0] for row in rows if row[1]}
    assert len(overridden) == len({(s, k) for s, k, _ in ENV_OVERRIDES.values()})


def test_settings_table_defaults_are_what_the_example_file_writes() -> None:
    table = _config_table()
    data = _example_data()
    for key, _env, default, _meaning in table.rows():
        section, field = key.strip("`").split(".")
        if key == "`sdk.api_key`":
            continue  # the example reads it from the environment
        assert table.render_default(data[section][field]) == default, key


def test_documented_settings_table_is_the_generated_one() -> None:
    page = (REPO_ROOT / "docs" / "configuration.md").read_text()
    assert _config_table().markdown() in page


def test_seed_sdk_example_reads_the_key_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "xray.config.yaml"
    path.write_text(SEED_SDK_IN_USER_PROJECT)
    config = load_config(path, env={"XRAY_API_KEY": "k-1"})
    assert config.sdk.base_url == "https://xray-api.yourcompany.com"
    assert config.sdk.api_key == "k-1"
    assert (config.sdk.buffer_size, config.sdk.flush_interval) == (1000, 5.0)
    with pytest.raises(ConfigError, match="XRAY_API_KEY"):
        load_config(path, env={})


def test_seed_configuration_example_loads_both_sections(tmp_path: Path) -> None:
    path = tmp_path / "xray.config.yaml"
    path.write_text(SEED_CONFIGURATION)
    config = load_config(path, env={})
    assert config.sdk.base_url == "http://localhost:8000"
    assert config.sdk.api_key == "your-api-key"
    assert config.sdk.default_detail.value == "summary"
    assert config.api.database_url == "postgresql+asyncpg://localhost:5432/xray"
    assert config.api.debug is False


@pytest.mark.parametrize(
    ("text", "url"),
    [
        (SEED_MANUAL_SETUP, "postgresql+asyncpg://postgres:postgres@localhost:5432/xray"),
        (SEED_SQLITE, "sqlite+aiosqlite:///./xray.db"),
    ],
    ids=["postgres", "sqlite"],
)
def test_seed_database_examples_load(tmp_path: Path, text: str, url: str) -> None:
    path = tmp_path / "xray.config.yaml"
    path.write_text(text)
    assert load_config(path, env={}).api.database_url == url


def test_env_database_url_overrides_the_seed_file(tmp_path: Path) -> None:
    # What the Compose and Kubernetes files rely on.
    path = tmp_path / "xray.config.yaml"
    path.write_text(SEED_MANUAL_SETUP)
    env = {"DATABASE_URL": "postgresql+asyncpg://postgres:postgres@db:5432/xray"}
    assert load_config(path, env=env).api.database_url == env["DATABASE_URL"]


def test_config_table_script_prints_the_markdown_table() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "deploy" / "config_table.py")],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == _config_table().markdown()
    assert re.search(r"^\| `api\.port` \| `PORT`, `XRAY_PORT` \| `8000` \|", result.stdout, re.M)


def test_yamllint_accepts_the_example() -> None:
    config = "{extends: default, rules: {line-length: {max: 100}, document-start: disable}}"
    result = subprocess.run(
        [sys.executable, "-m", "yamllint", "-f", "parsable", "-d", config, str(CONFIG_EXAMPLE)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
