"""Fixtures for the deployment tests: a staged image tree and empty PostgreSQL databases."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import _pg_admin
from tests.deploy._image import StagedImage, stage_image


@pytest.fixture(scope="session")
def staged_image(tmp_path_factory: pytest.TempPathFactory) -> StagedImage:
    """The image's files, environment and command, laid out once per session."""
    return stage_image(tmp_path_factory.mktemp("image"))


@pytest.fixture
def empty_postgres_database(postgres_database: str) -> Iterator[str]:
    """A new, empty database on the test server (no tables: nothing migrated yet).

    Depends on ``postgres_database`` for its skip/fail rule when PostgreSQL is down.
    """
    name = f"xray_deploy_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield postgres_database.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def container_workdir(staged_image: StagedImage, tmp_path: Path) -> Path:
    """A fresh copy of the image's WORKDIR for one container run."""
    workdir = tmp_path / "container" / staged_image.workdir.name
    workdir.mkdir(parents=True)
    return workdir
