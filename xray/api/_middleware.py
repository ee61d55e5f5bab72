"""Pure-ASGI middleware: API-key auth, and the request body limit with gzip decoding.

Pure ASGI (not ``BaseHTTPMiddleware``) so a rejected request is answered before its body is
read, and so the decompressed body is handed to the app exactly once.
"""

from __future__ import annotations

import zlib
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from xray.api._state import AppState, AuthResult
from xray.api.errors import error_response

__all__ = ["AuthMiddleware", "RequestLimitsMiddleware", "is_public_path"]

_PUBLIC = frozenset(
    {
        "/healthz",
        "/readyz",
        "/",
        "/index.html",
        "/favicon.ico",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/openapi.json",
    }
)


def is_public_path(path: str) -> bool:
    """Paths served without a key: probes, the dashboard's static shell and the API docs
    (none of them contain data)."""
    return path in _PUBLIC or path.startswith("/static/")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _presented_key(scope: Scope) -> str | None:
    key = _header(scope, b"x-api-key")
    if key:
        return key.strip()
    authorization = _header(scope, b"authorization")
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
    return None


class AuthMiddleware:
    """Every path but the public ones needs ``Authorization: Bearer`` or ``X-API-Key``
    when any key is configured (in the config/env, or stored hashed in the database)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_public_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        state: AppState | None = getattr(scope["app"].state, "xray", None)
        if state is None:  # not started through the lifespan
            await error_response(503, "the server is starting; retry shortly")(scope, receive, send)
            return
        await state.keys.refresh(state.sessions)
        result = state.keys.check(_presented_key(scope))
        if result is AuthResult.ALLOWED:
            await self.app(scope, receive, send)
            return
        if result is AuthResult.UNAVAILABLE:
            response = error_response(
                503,
                "the database is unavailable right now, so API keys cannot be checked; retry later",
                headers={"Retry-After": "1"},
            )
        else:
            message = (
                "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
                if result is AuthResult.MISSING
                else "invalid API key"
            )
            response = error_response(401, message, headers={"WWW-Authenticate": "Bearer"})
        await response(scope, receive, send)


class RequestLimitsMiddleware:
    """Refuse URLs with NUL characters (400) and refuse bodies above ``max_bytes`` (413), before and after gzip decoding, and hand the
    app the decoded body (``Content-Encoding: gzip`` is what the SDK sends)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self, what: str) -> Any:
        return error_response(
            413, f"the request body{what} is larger than the limit of {self.max_bytes} bytes"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # PostgreSQL text cannot hold NUL: refuse it in the URL before it reaches a query.
        if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b"").lower():
            await error_response(400, "the URL contains a NUL character (%00)")(
                scope, receive, send
            )
            return
        if scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self.max_bytes:
            await self._too_large("")(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large("")(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        encoding = (_header(scope, b"content-encoding") or "identity").strip().lower()
        if encoding == "gzip":
            decoder = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            try:
                # max_length bounds the work: a decompression bomb stops at the limit.
                body = decoder.decompress(body, self.max_bytes + 1)
            except zlib.error:
                await error_response(400, "the request body is not valid gzip")(
                    scope, receive, send
                )
                return
            if len(body) > self.max_bytes:
                await self._too_large(" (decompressed)")(scope, receive, send)
                return
            if not decoder.eof:
                await error_response(400, "the request body is truncated gzip")(
                    scope, receive, send
                )
                return
        elif encoding not in ("identity", ""):
            await error_response(
                400, f"unsupported Content-Encoding {encoding!r}; send gzip or no encoding"
            )(scope, receive, send)
            return
        headers = [
            (k, v)
            for k, v in scope.get("headers", ())
            if k.lower() not in (b"content-encoding", b"content-length")
        ]
        headers.append((b"content-length", str(len(body)).encode()))
        scope = dict(scope, headers=headers)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
