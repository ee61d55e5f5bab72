"""The CLI's HTTP seam: every transport and HTTP error becomes one clear ``CLIError`` here."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

from xray.cli._errors import (
    EXIT_ERROR,
    EXIT_NOT_FOUND,
    EXIT_UNAUTHORIZED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    CLIError,
)

__all__ = ["ApiClient", "quote_path"]

Params = Mapping[str, str | int | float | list[str] | None]
PAGE_MAX = 500


def quote_path(segment: str) -> str:
    """Escape one path segment (candidate keys may contain ``/`` or spaces)."""
    return quote(segment, safe="")


class ApiClient:
    """A small synchronous client for the query endpoints (``GET`` only, JSON answers).

    Example:
        >>> api = ApiClient("http://127.0.0.1:8000")  # doctest: +SKIP
        >>> api.get("/runs", {"limit": 1})["items"]  # doctest: +SKIP
    """

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 15.0) -> None:
        try:
            import httpx
        except ImportError as exc:  # the base install has no HTTP client
            raise CLIError(
                "the xray CLI needs httpx: install the [sdk] extra (pip install '.[sdk]' in the X-Ray checkout)"
            ) from exc
        self.base_url = base_url.rstrip("/")
        headers = {"Accept": "application/json", "User-Agent": "xray-cli"}
        if api_key:
            headers["X-API-Key"] = api_key
        self._httpx = httpx
        self._client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, path: str, params: Params | None = None) -> Any:
        """``GET path`` and return the decoded JSON, or raise ``CLIError``."""
        httpx = self._httpx
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._client.get(path, params=query)
        except httpx.ConnectError as exc:
            raise CLIError(
                f"cannot reach the X-Ray API at {self.base_url} ({_reason(exc)}); "
                "start it with `xray serve` (or `xray demo`), or point --url / XRAY_BASE_URL at it",
                exit_code=EXIT_UNREACHABLE,
            ) from exc
        except httpx.TimeoutException as exc:
            raise CLIError(
                f"the X-Ray API at {self.base_url} did not answer in time ({type(exc).__name__})",
                exit_code=EXIT_UNREACHABLE,
            ) from exc
        except httpx.HTTPError as exc:
            raise CLIError(
                f"request to {self.base_url}{path} failed: {_reason(exc)}",
                exit_code=EXIT_UNREACHABLE,
            ) from exc
        if response.status_code >= 400:
            raise _http_error(response.status_code, _message(response), self.base_url)
        try:
            return response.json()
        except ValueError as exc:
            raise CLIError(
                f"{self.base_url}{path} did not answer JSON (is --url an X-Ray API?)"
            ) from exc

    def pages(self, path: str, params: Params | None, *, limit: int) -> Iterator[dict[str, Any]]:
        """Yield up to ``limit`` items of a list endpoint, following ``next_cursor``."""
        query: dict[str, Any] = dict(params or {})
        remaining = limit
        cursor: str | None = None
        while remaining > 0:
            query["limit"] = min(remaining, PAGE_MAX)
            if cursor:
                query["cursor"] = cursor
            page = self.get(path, query)
            items = page.get("items", []) if isinstance(page, dict) else []
            yield from items[:remaining]
            remaining -= len(items)
            cursor = page.get("next_cursor") if isinstance(page, dict) else None
            if not cursor or not items:
                return

    def collect(
        self, path: str, params: Params | None, *, limit: int
    ) -> tuple[list[dict[str, Any]], bool]:
        """Up to ``limit`` items, and whether the server has more beyond them."""
        items = list(self.pages(path, params, limit=limit + 1))
        return items[:limit], len(items) > limit


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if "refused" in text.lower():
        return "connection refused"
    return text.splitlines()[0][:200]


def _message(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
    if isinstance(body, dict):
        message = body.get("message") or body.get("detail") or body.get("error") or ""
        fields = body.get("fields") or []
        if fields and isinstance(fields, list) and isinstance(fields[0], dict):
            first = fields[0]
            extra = f"{first.get('field', '')}: {first.get('message', '')}".strip(": ")
            if extra and extra not in str(message):
                message = f"{message} ({extra})" if message else extra
        return message if isinstance(message, str) else json.dumps(message)
    return str(body)[:200]


def _http_error(status: int, message: str, base_url: str) -> CLIError:
    detail = f": {message}" if message else ""
    if status == 401:
        return CLIError(
            f"the X-Ray API at {base_url} refused the request (401 unauthorized{detail}); "
            "pass --api-key or set XRAY_API_KEY",
            exit_code=EXIT_UNAUTHORIZED,
        )
    if status == 404:
        return CLIError(f"not found (404){detail}", exit_code=EXIT_NOT_FOUND)
    if status in (400, 422):
        return CLIError(f"the API rejected the request ({status}){detail}", exit_code=EXIT_USAGE)
    if status == 503:
        return CLIError(
            f"the X-Ray API at {base_url} cannot reach its database (503){detail}",
            exit_code=EXIT_UNREACHABLE,
        )
    return CLIError(f"the X-Ray API at {base_url} answered {status}{detail}", exit_code=EXIT_ERROR)
