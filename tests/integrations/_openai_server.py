"""A small OpenAI-compatible HTTP server on 127.0.0.1 (stdlib only), for the real ``openai``
package to talk to: chat completions and responses, plain or streamed (server-sent
events), and an error for an unknown model. No network beyond the loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "gpt-4o-mini-2024-07-18"
MISSING_MODEL = "no-such-model"
CREATED = 1_764_000_000


def _reply(request: dict[str, Any]) -> str:
    messages = request.get("messages") or [{"content": request.get("input", "")}]
    last = messages[-1].get("content", "") if isinstance(messages, list) else str(messages)
    return f"Answer to: {last}"


def _chat_completion(request: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": _reply(request)}
    finish = "stop"
    if request.get("tools"):
        name = request["tools"][0]["function"]["name"]
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": name, "arguments": '{"order": "A-17"}'},
                }
            ],
        }
        finish = "tool_calls"
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": CREATED,
        "model": MODEL,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
    }


def _chat_chunks(request: dict[str, Any]) -> Iterator[dict[str, Any]]:
    base = {
        "id": "chatcmpl-2",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
    }
    text = _reply(request)
    yield {**base, "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}
    for start in range(0, len(text), 5):
        piece = text[start : start + 5]
        yield {
            **base,
            "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
        }
    yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    if (request.get("stream_options") or {}).get("include_usage"):
        usage = {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}
        yield {**base, "choices": [], "usage": usage}


def _response(request: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": CREATED,
        "model": MODEL,
        "status": "completed",
        "output": [
            {
                "type": "message",
                "id": "msg_1",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": _reply(request), "annotations": []}],
            }
        ],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": 7,
            "output_tokens": 2,
            "total_tokens": 9,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        },
    }


def _response_events(request: dict[str, Any]) -> Iterator[dict[str, Any]]:
    final = _response(request)
    yield {
        "type": "response.created",
        "sequence_number": 0,
        "response": {**final, "status": "in_progress", "output": []},
    }
    yield {
        "type": "response.output_text.delta",
        "sequence_number": 1,
        "item_id": "msg_1",
        "output_index": 0,
        "content_index": 0,
        "delta": final["output"][0]["content"][0]["text"],
        "logprobs": [],
    }
    yield {"type": "response.completed", "sequence_number": 2, "response": final}


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _events(self, events: Iterator[dict[str, Any]], named: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for event in events:
            head = f"event: {event['type']}\n" if named else ""
            self.wfile.write(f"{head}data: {json.dumps(event)}\n\n".encode())
            self.wfile.flush()
        if not named:
            self.wfile.write(b"data: [DONE]\n\n")

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        self.server.requests.append((self.path, request))  # type: ignore[attr-defined]
        if request.get("model") == MISSING_MODEL:
            self._json(
                404,
                {
                    "error": {
                        "message": f"The model `{MISSING_MODEL}` does not exist",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "model_not_found",
                    }
                },
            )
        elif self.path == "/v1/chat/completions":
            if request.get("stream"):
                self._events(_chat_chunks(request), named=False)
            else:
                self._json(200, _chat_completion(request))
        elif self.path == "/v1/responses":
            if request.get("stream"):
                self._events(_response_events(request), named=True)
            else:
                self._json(200, _response(request))
        else:
            self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})


@contextmanager
def openai_server() -> Iterator[tuple[str, list[tuple[str, dict[str, Any]]]]]:
    """Yield the server's base URL (``http://127.0.0.1:<port>/v1``) and the requests it got."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, name="openai-test-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", server.requests  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
