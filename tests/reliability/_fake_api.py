"""Tiny real HTTP servers on 127.0.0.1 that misbehave on purpose.

Each ``FakeAPI`` is a real TCP server in a thread, speaking just enough HTTP/1.1 to be
scripted per request: answer a status (with headers and a body), answer slowly, answer
garbage, or accept and never answer (a black hole). It records every request it read
(path, headers, decoded JSON body) so tests can assert on the real wire traffic.
"""

from __future__ import annotations

import gzip
import json
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    raw_body: bytes
    received_at: float
    answered: int | None = None  # the status this server answered, if any

    @property
    def body(self) -> Any:
        data = self.raw_body
        if self.headers.get("content-encoding") == "gzip":
            data = gzip.decompress(data)
        return json.loads(data)


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b'{"runs":0,"steps":0,"decisions":0}'
    delay: float = 0.0  # seconds to wait before answering (a slow server)
    garbage: bool = False  # answer bytes that are not HTTP
    black_hole: bool = False  # read the request, never answer


Behaviour = Callable[[Request], Reply]


def ok(_: Request) -> Reply:
    return Reply()


class FakeAPI:
    """A scripted HTTP server; ``base_url`` points at it."""

    def __init__(self, behaviour: Behaviour = ok) -> None:
        self.behaviour = behaviour
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        api = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                api._handle(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> FakeAPI:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    @property
    def batches(self) -> list[Any]:
        with self._lock:
            return [r.body for r in self.requests if r.path == "/batch"]

    @property
    def accepted(self) -> list[Any]:
        """The batches this server answered with a 2xx (what a real API would have stored)."""
        with self._lock:
            requests = [r for r in self.requests if r.path == "/batch"]
        return [r.body for r in requests if r.answered is not None and 200 <= r.answered < 300]

    @property
    def steps(self) -> list[dict[str, Any]]:
        """Every step in an accepted batch."""
        return [s for b in self.accepted for s in b["steps"]]

    def _handle(self, sock: socket.socket) -> None:
        sock.settimeout(10)
        try:
            request = _read_request(sock)
        except (OSError, ValueError):
            return
        if request is None:
            return
        with self._lock:
            self.requests.append(request)
        reply = self.behaviour(request)
        if not (reply.black_hole or reply.garbage):
            request.answered = reply.status
        if reply.black_hole:
            self._closing.wait()  # hold the connection open until the server stops
            return
        if reply.delay:
            self._closing.wait(reply.delay)
        try:
            if reply.garbage:
                sock.sendall(b"\x00\xffNOT HTTP AT ALL\r\n\r\n")
                return
            head = [f"HTTP/1.1 {reply.status} X", f"Content-Length: {len(reply.body)}"]
            head += ["Content-Type: application/json", "Connection: close"]
            head += [f"{k}: {v}" for k, v in reply.headers.items()]
            sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + reply.body)
        except OSError:
            return


def _read_request(sock: socket.socket) -> Request | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _version = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return Request(method, path, headers, body, time.monotonic())


@contextmanager
def fake_api(behaviour: Behaviour = ok) -> Iterator[FakeAPI]:
    api = FakeAPI(behaviour).start()
    try:
        yield api
    finally:
        api.close()


def statuses(*codes: int, then: int = 200, headers: dict[str, str] | None = None) -> Behaviour:
    """Answer ``codes`` in order, then ``then`` forever."""
    queue = list(codes)
    lock = threading.Lock()

    def behaviour(_: Request) -> Reply:
        with lock:
            code = queue.pop(0) if queue else then
        return Reply(status=code, headers=headers or {}, body=b'{"error":"x","message":"scripted"}')

    return behaviour
