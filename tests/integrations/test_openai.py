"""``xray.integrations.openai.instrument``: the real ``openai`` package against a small
OpenAI-compatible server on 127.0.0.1, recorded by the real SDK."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests._servers import api_server
from tests.integrations._openai_server import MISSING_MODEL, MODEL, openai_server
from xray import XRayClient
from xray.integrations.openai import instrument
from xray.sdk.testing import Recording, recording

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "parameters": {"type": "object", "properties": {"order": {"type": "string"}}},
        },
    }
]
QUESTION = [
    {"role": "system", "content": "You answer order questions."},
    {"role": "user", "content": "Where is order A-17?"},
]


@pytest.fixture
def server() -> Iterator[tuple[str, list[tuple[str, dict[str, Any]]]]]:
    with openai_server() as running:
        yield running


@pytest.fixture
def base_url(server: tuple[str, list[Any]]) -> str:
    return server[0]


@pytest.fixture
def rec() -> Iterator[Recording]:
    with recording() as rec:
        yield rec


def _client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-test-not-a-real-key", base_url=base_url, max_retries=0)


def test_a_chat_completion_is_an_llm_step_in_the_current_run(base_url: str, rec: Recording) -> None:
    plain = _client(base_url).chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
    client = instrument(_client(base_url))
    with rec.client.run("support-answer") as run:
        result = client.chat.completions.create(
            model="gpt-4o-mini", messages=QUESTION, temperature=0.3, max_tokens=50
        )
    # The caller gets exactly what the client returns without X-Ray.
    assert type(result) is type(plain)
    assert result.model_dump() == plain.model_dump()

    step = rec.step("chat.completions.create")
    assert step["type"] == "llm"
    assert step["run_id"] == run.id and step["parent_id"] is None
    assert step["status"] == "success"
    assert step["params"] == {"model": "gpt-4o-mini", "temperature": 0.3, "max_tokens": 50}
    assert "Where is order A-17?" in str(step["input"])
    assert step["output"]["content"] == "Answer to: Where is order A-17?"
    assert step["metadata"] == {
        "input_tokens": 11,
        "output_tokens": 3,
        "total_tokens": 14,
        "finish_reason": "stop",
        "response_model": MODEL,
        "response_id": "chatcmpl-1",
    }


def test_tools_are_recorded_by_name_and_tool_calls_are_the_output(
    base_url: str, rec: Recording
) -> None:
    client = instrument(_client(base_url))
    with rec.client.run("support-answer"):
        client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION, tools=TOOLS)
    step = rec.step("chat.completions.create")
    assert step["params"]["tools"] == ["lookup_order"]
    assert step["output"]["tool_calls"][0]["function"]["name"] == "lookup_order"
    assert step["metadata"]["finish_reason"] == "tool_calls"


def test_a_stream_is_one_step_assembled_when_it_ends(base_url: str, rec: Recording) -> None:
    client = instrument(_client(base_url))
    with rec.client.run("support-answer"):
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=QUESTION,
            stream=True,
            stream_options={"include_usage": True},
        )
        assert isinstance(stream, openai.Stream)
        rec.flush()
        assert rec.transport.steps == []  # nothing is recorded before the stream ends
        pieces = [c.choices[0].delta.content for c in stream if c.choices]
    assert "".join(p for p in pieces if p) == "Answer to: Where is order A-17?"
    step = rec.step("chat.completions.create")
    assert step["params"]["stream"] is True
    assert step["output"] == {"role": "assistant", "content": "Answer to: Where is order A-17?"}
    assert step["metadata"]["finish_reason"] == "stop"
    assert (step["metadata"]["input_tokens"], step["metadata"]["output_tokens"]) == (9, 4)


def test_a_stream_closed_early_is_recorded_with_what_arrived(base_url: str, rec: Recording) -> None:
    client = instrument(_client(base_url))
    with (
        rec.client.run("support-answer"),
        client.chat.completions.create(
            model="gpt-4o-mini", messages=QUESTION, stream=True
        ) as stream,
    ):
        next(iter(stream))
        next(iter(stream))
    step = rec.step("chat.completions.create")
    assert step["status"] == "success"
    assert step["output"] == {"role": "assistant", "content": "Answe"}


def test_an_error_is_recorded_and_re_raised_unchanged(base_url: str, rec: Recording) -> None:
    client = instrument(_client(base_url))
    with pytest.raises(openai.NotFoundError) as raised, rec.client.run("support-answer"):
        client.chat.completions.create(model=MISSING_MODEL, messages=QUESTION)
    assert raised.value.status_code == 404
    step = rec.step("chat.completions.create")
    assert step["status"] == "error"
    assert step["error"]["type"] == "NotFoundError"
    assert MISSING_MODEL in step["error"]["message"]
    assert step["metadata"]["status_code"] == 404
    assert rec.runs[0]["status"] == "error"


def test_the_async_client_records_chat_and_responses_calls(base_url: str, rec: Recording) -> None:
    client = instrument(
        openai.AsyncOpenAI(api_key="sk-test-not-a-real-key", base_url=base_url, max_retries=0)
    )

    async def pipeline() -> tuple[str, str, str]:
        async with rec.client.run("support-answer"):
            chat = await client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
            response = await client.responses.create(
                model="gpt-4o-mini", input="Is A-17 late?", max_output_tokens=20
            )
            streamed = ""
            stream = await client.responses.create(
                model="gpt-4o-mini", input="Refund A-17?", stream=True
            )
            async for event in stream:
                if event.type == "response.output_text.delta":
                    streamed += event.delta
        return str(chat.choices[0].message.content), response.output_text, streamed

    chat_text, response_text, streamed = asyncio.run(pipeline())
    assert chat_text == "Answer to: Where is order A-17?"
    assert response_text == "Answer to: Is A-17 late?"
    assert streamed == "Answer to: Refund A-17?"
    steps = [s for s in rec.steps if s["name"] == "responses.create"]
    assert [s["output"] for s in steps] == [response_text, streamed]
    assert steps[0]["params"] == {"model": "gpt-4o-mini", "max_output_tokens": 20}
    assert steps[0]["input"] == "Is A-17 late?"
    assert steps[0]["metadata"]["input_tokens"] == 7
    assert steps[0]["metadata"]["finish_reason"] == "completed"
    assert steps[1]["metadata"]["total_tokens"] == 9
    assert rec.step("chat.completions.create")["metadata"]["total_tokens"] == 14
    assert len({s["run_id"] for s in rec.steps}) == 1


def test_a_call_outside_any_run_opens_its_own_and_instrumenting_twice_records_once(
    base_url: str, rec: Recording
) -> None:
    client = instrument(instrument(_client(base_url)))
    client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
    assert [s["name"] for s in rec.steps] == ["chat.completions.create"]
    assert rec.runs[0]["pipeline"] == "chat.completions.create"


def test_without_xray_configured_the_client_works_unchanged(base_url: str) -> None:
    # No configuration anywhere (the test's clean environment): X-Ray is off.
    client = instrument(_client(base_url))
    result = client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
    assert result.choices[0].message.content == "Answer to: Where is order A-17?"


@pytest.mark.slow
def test_a_pipeline_of_wrapped_calls_is_queryable_on_a_real_server(
    base_url: str, tmp_path: Path
) -> None:
    with api_server(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", workdir=tmp_path) as xray:
        xray_client = XRayClient(base_url=xray.base_url, flush_interval=0.05)
        client = instrument(_client(base_url))
        with xray_client.run("support-answer") as run:
            client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION, max_tokens=9)
        assert xray_client.flush(timeout=10)
        xray_client.shutdown(timeout=5)
        steps = httpx.get(f"{xray.base_url}/steps", params={"type": "llm"}).json()["items"]
        assert [(s["run_id"], s["name"], s["pipeline"]) for s in steps] == [
            (run.id, "chat.completions.create", "support-answer")
        ]
        assert steps[0]["params"] == {"model": "gpt-4o-mini", "max_tokens": 9}
        assert steps[0]["metadata"]["output_tokens"] == 3
