"""API keys: every route but the probes, the dashboard shell and the docs needs one."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from tests.api._data import run
from tests.api.conftest import ClientFactory
from xray.api import create_api_key, create_app, list_api_keys, revoke_api_key
from xray.shared import APIConfig

KEY = "test-key-0123456789"
PUBLIC = {"/healthz", "/readyz", "/", "/docs", "/redoc", "/openapi.json"}


def _protected_routes() -> list[tuple[str, str]]:
    # Every operation the OpenAPI document lists (it lists every JSON endpoint).
    schema = create_app(APIConfig()).openapi()
    routes = []
    for template, operations in schema["paths"].items():
        if template in PUBLIC:
            continue
        path = re.sub(r"\{[a-z_]+\}", "00000000-0000-0000-0000-000000000001", template)
        routes += [(method.upper(), path) for method in sorted(operations)]
    return routes


PROTECTED = _protected_routes()


def test_the_route_list_covers_every_endpoint_of_the_contract() -> None:
    paths = {path for _, path in PROTECTED}
    for expected in ("/batch", "/runs", "/steps", "/pipelines"):
        assert expected in paths
    assert ("POST", "/runs/00000000-0000-0000-0000-000000000001/steps") in PROTECTED
    assert any(p.startswith("/candidates/") for p in paths)
    assert any(p.endswith("/decisions") for p in paths)


@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_every_data_route_needs_a_key(
    make_client: ClientFactory, method: str, path: str
) -> None:
    async with make_client(api_keys=[KEY, "second-key"]) as client:
        for headers in (
            {},
            {"X-API-Key": "wrong"},
            {"Authorization": "Bearer wrong"},
            {"Authorization": f"Basic {KEY}"},
            {"Authorization": "Bearer "},
        ):
            response = await client.request(method, path, headers=headers, json=[])
            assert response.status_code == 401, (headers, response.text)
            assert response.json()["error"] == "unauthorized"
            assert response.headers["www-authenticate"] == "Bearer"
        for headers in (
            {"X-API-Key": KEY},
            {"Authorization": f"Bearer {KEY}"},
            {"authorization": f"bearer {KEY}"},
            {"X-API-Key": "second-key"},
        ):
            response = await client.request(method, path, headers=headers, json=[])
            assert response.status_code != 401, (headers, response.text)


async def test_public_paths_need_no_key(make_client: ClientFactory) -> None:
    async with make_client(api_keys=[KEY]) as client:
        for path in ("/healthz", "/readyz", "/docs", "/redoc", "/openapi.json"):
            response = await client.get(path)
            assert response.status_code == 200, path
        assert (await client.get("/")).status_code in (200, 404)  # 404 without the dashboard


async def test_unknown_paths_are_401_not_404_without_a_key(make_client: ClientFactory) -> None:
    async with make_client(api_keys=[KEY]) as client:
        assert (await client.get("/admin")).status_code == 401
        assert (await client.get("/admin", headers={"X-API-Key": KEY})).status_code == 404


async def test_without_keys_the_api_is_open(client: httpx.AsyncClient) -> None:
    assert (await client.get("/runs")).status_code == 200


async def test_keys_stored_in_the_database_are_accepted_until_revoked(
    make_client: ClientFactory, database_url: str
) -> None:
    key_id, key = await asyncio.to_thread(create_api_key, database_url, name="ci")
    assert key.startswith("xr_") and len(key) > 30
    listed = await asyncio.to_thread(list_api_keys, database_url)
    assert [(k.id, k.name, k.active) for k in listed] == [(key_id, "ci", True)]
    assert key not in repr(listed)  # only a prefix is kept

    async with make_client() as client:
        client.app.state.xray.keys.ttl = 0  # type: ignore[attr-defined]
        # A stored key means keys are required, though none is in the config.
        assert (await client.get("/runs")).status_code == 401
        assert (await client.get("/runs", headers={"X-API-Key": key})).status_code == 200
        assert (
            await client.post("/runs", json=run(), headers={"X-API-Key": key})
        ).status_code == 200

        assert await asyncio.to_thread(revoke_api_key, database_url, key_id) is True
        assert await asyncio.to_thread(revoke_api_key, database_url, key_id) is False
        assert (await client.get("/runs", headers={"X-API-Key": key})).status_code == 401
    listed = await asyncio.to_thread(list_api_keys, database_url)
    assert [k.active for k in listed] == [False]


async def test_config_keys_and_stored_keys_both_work(
    make_client: ClientFactory, database_url: str
) -> None:
    _, stored = await asyncio.to_thread(create_api_key, database_url, name="dashboard")
    async with make_client(api_keys=[KEY]) as client:
        for key in (KEY, stored):
            response = await client.get("/runs", headers={"Authorization": f"Bearer {key}"})
            assert response.status_code == 200
