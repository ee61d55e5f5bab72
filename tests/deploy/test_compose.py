"""docker-compose.yml: the documented shape, plus what makes the first `up` work."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.conftest import PG_HOST, PG_PORT
from tests.deploy._image import (
    COMPOSE_FILE,
    SEED_DATABASE_URL,
    compose_environment,
    interpolate_compose,
    load_compose,
    missing_from,
)

COMPOSE_SCHEMA = Path(__file__).parent / "schemas" / "compose-spec.json"
YAMLLINT_CONFIG = (
    "{extends: default, rules: {line-length: {max: 100}, document-start: disable,"
    " truthy: {check-keys: false}}}"
)


@pytest.fixture
def compose() -> dict[str, Any]:
    return load_compose()


def test_yamllint_accepts_the_compose_file() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "yamllint",
            "-f",
            "parsable",
            "-d",
            YAMLLINT_CONFIG,
            str(COMPOSE_FILE),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_services_are_the_seeds_api_and_database(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"xray-api", "db"}
    assert set(compose["volumes"]) == {"pgdata"}


def test_api_is_built_here_and_published_on_8000(compose: dict[str, Any]) -> None:
    api = compose["services"]["xray-api"]
    assert api["build"] == "."
    assert api["ports"] == ["8000:8000"]


def test_api_database_url_is_the_seeds_exact_value(compose: dict[str, Any]) -> None:
    env = compose_environment(compose["services"]["xray-api"])
    assert env["DATABASE_URL"] == SEED_DATABASE_URL


def test_database_is_postgres_16_with_the_seeds_settings(compose: dict[str, Any]) -> None:
    db = compose["services"]["db"]
    assert db["image"] == "postgres:16"
    env = compose_environment(db)
    assert env == {"POSTGRES_DB": "xray", "POSTGRES_PASSWORD": "postgres"}
    assert db["volumes"] == ["pgdata:/var/lib/postgresql/data"]


def test_database_url_matches_the_database_service(compose: dict[str, Any]) -> None:
    # host = service name, database and password = what the db container is created with.
    db_env = compose_environment(compose["services"]["db"])
    url = compose_environment(compose["services"]["xray-api"])["DATABASE_URL"]
    assert f":{db_env['POSTGRES_PASSWORD']}@db:5432/{db_env['POSTGRES_DB']}" in url


def test_api_starts_only_once_the_database_is_healthy(compose: dict[str, Any]) -> None:
    api = compose["services"]["xray-api"]
    assert api["depends_on"] == {"db": {"condition": "service_healthy"}}
    check = compose["services"]["db"]["healthcheck"]
    assert check["test"][0] == "CMD" and check["test"][1] == "pg_isready"
    # Over TCP: the image's first-boot temporary server listens on the socket only.
    assert "-h" in check["test"]
    assert check["retries"] >= 10


def test_both_services_restart_unless_stopped(compose: dict[str, Any]) -> None:
    for service in compose["services"].values():
        assert service["restart"] == "unless-stopped"


def test_api_key_comes_from_the_environment(compose: dict[str, Any]) -> None:
    raw = compose_environment(compose["services"]["xray-api"])["XRAY_API_KEYS"]
    assert interpolate_compose(raw, {"XRAY_API_KEY": "k-123"}) == "k-123"
    # Unset: empty, which the server reads as "no keys" (not as a key "").
    assert interpolate_compose(raw, {}) == ""


@pytest.mark.postgres
def test_database_healthcheck_command_passes_against_a_running_postgres(
    postgres_database: str, tmp_path: Path
) -> None:
    # The exact healthcheck argv, run against the test server on 127.0.0.1:5432 (the
    # address it checks inside the db container).
    if (PG_HOST, PG_PORT) != ("127.0.0.1", 5432):
        pytest.skip(f"the test PostgreSQL is on {PG_HOST}:{PG_PORT}, not where the check looks")
    if shutil.which("pg_isready") is None:
        pytest.skip("pg_isready is not installed (Debian package postgresql-client)")
    argv = load_compose()["services"]["db"]["healthcheck"]["test"][1:]
    result = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


def _compose_schema_errors(document: dict[str, Any]) -> list[str]:
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [error.message for error in validator.iter_errors(document)]


def test_compose_file_is_valid_against_the_compose_specification(
    compose: dict[str, Any],
) -> None:
    assert _compose_schema_errors(compose) == []


def test_compose_schema_rejects_a_misspelt_key(compose: dict[str, Any]) -> None:
    # Guards the test above: the schema really is applied.
    compose["services"]["db"]["healthcheck"]["retrys"] = 3
    assert _compose_schema_errors(compose) != []


# The documented minimal Compose file, verbatim.
SEED_COMPOSE = """\
services:
  xray-api:
    build: .
    ports:
      - "8000:8000"
    environment:
      - DATABASE_URL=postgresql+asyncpg://postgres:postgres@db:5432/xray
    depends_on:
      - db

  db:
    image: postgres:16
    environment:
      - POSTGRES_DB=xray
      - POSTGRES_PASSWORD=postgres
    volumes:
      - pgdata:/var/lib/postgresql/data

volumes:
  pgdata:
"""


def test_compose_file_contains_all_of_the_seeds_compose_file(compose: dict[str, Any]) -> None:
    seed = yaml.safe_load(SEED_COMPOSE)
    # The one change of form: `depends_on: [db]` became `db: {condition: service_healthy}`,
    # the same dependency plus the wait for a healthy database.
    seed_depends = seed["services"]["xray-api"].pop("depends_on")
    assert list(compose["services"]["xray-api"]["depends_on"]) == seed_depends
    assert missing_from(seed, compose) == []


def test_subset_check_reports_a_changed_seed_value(compose: dict[str, Any]) -> None:
    # Guards the test above.
    seed = yaml.safe_load(SEED_COMPOSE)
    del seed["services"]["xray-api"]["depends_on"]
    compose["services"]["db"]["image"] = "postgres:15"
    assert missing_from(seed, compose) == [
        ".services.db.image: expected 'postgres:16', got 'postgres:15'"
    ]
