"""``diff_runs`` pairs steps by name, so a step only one run has does not shift the rest."""

from __future__ import annotations

from typing import Any

from xray.cli._diff import diff_runs


def step(name: str, n_in: int, n_out: int, **params: Any) -> dict[str, Any]:
    return {
        "id": name,
        "name": name,
        "type": "filter",
        "input_count": n_in,
        "output_count": n_out,
        "params": params,
    }


def run(*steps: dict[str, Any], output: Any = None) -> dict[str, Any]:
    return {
        "id": "r",
        "input": {"asin": "B0"},
        "output": output,
        "metadata": {},
        "steps": list(steps),
    }


def test_a_step_only_in_b_shows_as_absent_in_a_and_keeps_the_others_paired() -> None:
    a = run(step("search", 100, 50), step("price", 50, 20))
    b = run(step("search", 100, 60), step("dedupe", 60, 55), step("price", 55, 25))
    diff = diff_runs(a, b)
    assert [(s["name"], s["a"] is not None, s["b"] is not None) for s in diff["steps"]] == [
        ("search", True, True),
        ("dedupe", False, True),
        ("price", True, True),
    ]


def test_repeated_step_names_pair_in_order_and_params_changes_are_listed() -> None:
    a = run(step("llm", 1, 1, model="a"), step("llm", 1, 1, model="a"))
    b = run(step("llm", 1, 1, model="a"), step("llm", 1, 1, model="b"))
    diff = diff_runs(a, b)
    assert [s["params"] for s in diff["steps"]] == [[], [{"key": "model", "a": "a", "b": "b"}]]


def test_same_and_different_outputs_are_reported() -> None:
    assert diff_runs(run(output=1), run(output=1))["same_output"] is True
    assert diff_runs(run(output=1), run(output=2))["same_output"] is False
    assert diff_runs(run(), run())["same_input"] is True
