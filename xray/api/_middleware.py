"""Pure-ASGI middleware: API-key auth, and the request body limit with gzip decoding.

Pure ASGI (not ``BaseHTTPMiddleware``) so a rejected request is answered before its body is
read, and so the decompressed body is handed to the app exactly once.
"""

from __future__ import annotations

import zlib
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from xray.api._state import AppState, AuthResult
from xray.api.errors import FieldError, error_response

__all__ = [
    "AuthMiddleware",
    "BodyTooLarge",
    "RequestLimitsMiddleware",
    "decode_gzip",
    "is_public_path",
]

_GZIP_MAGIC = b"\x1f\x8b"
# More query parameters than any endpoint reads (each is parsed, and metadata.* filters
# become SQL conditions): refused before any of that work.
MAX_QUERY_PARAMETERS = 100

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
        # The database did not answer the key refresh: the request would wait for it again.
        reachable = await state.keys.refresh(state.sessions)
        result = state.keys.check(_presented_key(scope)) if reachable else AuthResult.UNAVAILABLE
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


class BodyTooLarge(ValueError):
    """The decoded body would be larger than the limit."""


def decode_gzip(data: bytes, max_bytes: int) -> bytes:
    """Decode a whole gzip body: every member, to the last byte.

    A body of several members (what ``cat a.gz b.gz`` and some proxies produce) decodes
    to their concatenation; anything after the last member, a truncated member or bytes
    that are not gzip raise ``ValueError`` with a message for the client, so no part of a
    body is ever silently dropped. Output is bounded: ``BodyTooLarge`` as soon as it
    would pass ``max_bytes`` (a decompression bomb stops there).

    Example:
        >>> import gzip
        >>> decode_gzip(gzip.compress(b"a") + gzip.compress(b"b"), 100)
        b'ab'
    """
    parts: list[bytes] = []
    size = 0
    remaining = data
    while True:
        decoder = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            # max_length bounds the work: decoding stops one byte past the limit.
            part = decoder.decompress(remaining, max_bytes - size + 1)
        except zlib.error:
            raise ValueError(
                "not valid gzip" if not parts else "not valid gzip after its first member"
            ) from None
        size += len(part)
        if size > max_bytes:
            raise BodyTooLarge(max_bytes)
        parts.append(part)
        if not decoder.eof:
            raise ValueError("truncated gzip")
        remaining = decoder.unused_data
        if not remaining:
            return b"".join(parts)
        if not remaining.startswith(_GZIP_MAGIC):
            raise ValueError(
                f"gzip followed by {len(remaining)} bytes that are not gzip; send only the stream"
            )


class RequestLimitsMiddleware:
    """Refuse URLs with NUL characters or more than ``MAX_QUERY_PARAMETERS`` parameters
    (400) and bodies above ``max_bytes`` (413), before and after gzip decoding, and hand
    the app the decoded body (``Content-Encoding: gzip`` is what the SDK sends)."""

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
        query = scope.get("query_string", b"")
        if query.count(b"&") >= MAX_QUERY_PARAMETERS:
            count = sum(1 for part in query.split(b"&") if part)
            if count > MAX_QUERY_PARAMETERS:
                problem = f"at most {MAX_QUERY_PARAMETERS} query parameters (got {count})"
                await error_response(
                    400, f"query: {problem}", fields=[FieldError(field="query", message=problem)]
                )(scope, receive, send)
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
            try:
                body = decode_gzip(body, self.max_bytes)
            except BodyTooLarge:
                await self._too_large(" (decompressed)")(scope, receive, send)
                return
            except ValueError as exc:
                await error_response(400, f"the request body is {exc}")(scope, receive, send)
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
