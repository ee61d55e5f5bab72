"""``xray.api.aws_lambda``: the API invoked in-process with API Gateway events (HTTP API
payload 2.0 and REST API 1.0), fed by the real SDK, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg
import pytest

from xray.api.aws_lambda import LambdaApp, migrate
from xray.sdk import Response, XRayClient, step

pytest.importorskip("mangum")

API_KEY = "lambda-test-key"


def _event(
    version: str,
    method: str,
    path: str,
    *,
    query: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
) -> dict[str, Any]:
    """An API Gateway proxy event as AWS sends it; bodies base64-encoded (gzip is binary)."""
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    headers.setdefault("host", "abc123.execute-api.eu-west-1.amazonaws.com")
    encoded = base64.b64encode(body).decode() if body is not None else None
    if version == "2.0":
        return {
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path,
            "rawQueryString": urlencode(query or {}),
            "headers": headers,
            "queryStringParameters": dict(query) if query else None,
            "requestContext": {
                "http": {
                    "method": method,
                    "path": path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": "203.0.113.9",
                },
                "stage": "$default",
                "requestId": "req-1",
            },
            "body": encoded,
            "isBase64Encoded": body is not None,
        }
    return {
        "version": "1.0",
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": dict(query) if query else None,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "path": f"/prod{path}",
            "stage": "prod",
            "identity": {"sourceIp": "203.0.113.9"},
            "requestId": "req-1",
        },
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "body": encoded,
        "isBase64Encoded": body is not None,
    }


class APIGatewayTransport:
    """The SDK's transport, delivering each batch as an API Gateway event to the handler."""

    def __init__(self, handler: LambdaApp, version: str) -> None:
        self.handler, self.version, self.statuses = handler, version, []  # type: ignore[var-annotated]

    def send(self, body: bytes, headers: Mapping[str, str], timeout: float) -> Response:
        event = _event(
            self.version, "POST", "/batch", headers={**headers, "x-api-key": API_KEY}, body=body
        )
        answer = self.handler(event, None)
        self.statuses.append(answer["statusCode"])
        return Response(answer["statusCode"], message=str(answer.get("body", ""))[:200])

    def close(self) -> None:
        pass


def _get(handler: LambdaApp, version: str, path: str, **query: str) -> Any:
    answer = handler(
        _event(version, "GET", path, query=query, headers={"x-api-key": API_KEY}), None
    )
    assert answer["statusCode"] == 200, answer
    body = answer["body"]
    return json.loads(base64.b64decode(body) if answer.get("isBase64Encoded") else body)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lambda.db'}"
    url: str = request.getfixturevalue("empty_postgres_database")
    return url.replace("postgresql+asyncpg://", "postgresql://")


@pytest.fixture
def lambda_env(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    # Configured as the SAM template configures the function: environment variables.
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("XRAY_API_KEYS", API_KEY)
    monkeypatch.setenv("XRAY_RUN_MIGRATIONS", "false")
    yield database_url


async def _connections(url: str) -> int:
    conn = await asyncpg.connect(url.rsplit("/", 1)[0] + "/postgres")
    try:
        name = url.rsplit("/", 1)[1]
        return int(
            await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = $1", name)
        )
    finally:
        await conn.close()


@pytest.mark.parametrize("version", ["2.0", "1.0"], ids=["http-api-v2", "rest-api-v1"])
def test_sdk_batches_and_queries_through_api_gateway_events(lambda_env: str, version: str) -> None:
    assert migrate({}, None) == {"status": "migrated"}
    handler = LambdaApp()
    transport = APIGatewayTransport(handler, version)
    client = XRayClient(transport=transport, set_default=False, flush_interval=60)

    @step(type="filter", key="sku", detail="full")
    def in_stock(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [item for item in items if item["stock"] > 0]

    try:
        with client.run("lambda-pipeline", metadata={"source": version}) as run:
            kept = in_stock([{"sku": f"s{i}", "stock": i % 4} for i in range(40)])
            run.set_output({"kept": len(kept)})
        assert client.flush(timeout=30)
        assert transport.statuses and set(transport.statuses) == {200}
        stats = client.stats()
        assert stats["sent"] >= 2 and stats["dropped"] == 0, stats

        runs = _get(handler, version, "/runs", pipeline="lambda-pipeline")["items"]
        assert [r["id"] for r in runs] == [str(run.id)]
        assert runs[0]["metadata"] == {"source": version}
        detail = _get(handler, version, f"/runs/{run.id}")
        [recorded] = detail["steps"]
        assert (recorded["input_count"], recorded["output_count"]) == (40, 30)
        filters = _get(handler, version, "/steps", type="filter", min_elimination_rate="0.2")[
            "items"
        ]
        assert [s["id"] for s in filters] == [recorded["id"]]
        path = _get(handler, version, "/candidates/s4")["items"]
        assert [(d["step_name"], d["decision"]) for d in path] == [("in_stock", "rejected")]
        refused = handler(_event(version, "GET", "/runs"), None)
        assert refused["statusCode"] == 401
        if lambda_env.startswith("postgresql"):
            # One kept connection per execution environment (and at most one more).
            assert asyncio.run(_connections(lambda_env)) <= 2
    finally:
        client.shutdown(timeout=5)
        handler.close()


def test_invalid_configuration_is_one_line_naming_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from xray.shared import ConfigError

    monkeypatch.setenv("DATABASE_URL", "postgres://u:secret@db.example.com/xray?sslmode=on")
    with pytest.raises(ConfigError) as raised:
        LambdaApp()(_event("2.0", "GET", "/healthz"), None)
    message = str(raised.value)
    assert "api.database_url" in message and "sslmode" in message and "secret" not in message
    assert "\n" not in message
