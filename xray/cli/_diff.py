"""``xray diff RUN_A RUN_B``: two runs of a pipeline side by side, step by step.

Steps are paired by name (the n-th ``price_filter`` of A with the n-th of B), so a step
present in only one run shows as absent in the other instead of shifting every row.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from typing import Any

from xray.cli._format import Column, brief, flow, rate, render_table, timestamp, wrap
from xray.cli._http import quote_path
from xray.cli._queries import Context

__all__ = ["cmd_diff", "diff_runs"]

Step = dict[str, Any]
_STEP_FIELDS = ("id", "input_count", "output_count", "elimination_rate", "duration_ms")
_RUN_FIELDS = (
    "id",
    "pipeline",
    "status",
    "started_at",
    "duration_ms",
    "metadata",
    "input",
    "output",
)


def _align(a: list[Step], b: list[Step]) -> list[tuple[Step | None, Step | None]]:
    def keyed(steps: list[Step]) -> list[tuple[str, int]]:
        seen: Counter[str] = Counter()
        keys = []
        for s in steps:
            name = str(s.get("name"))
            keys.append((name, seen[name]))
            seen[name] += 1
        return keys

    keys_a, keys_b = keyed(a), keyed(b)
    only_b = set(keys_b) - set(keys_a)
    index_b = {key: i for i, key in enumerate(keys_b)}
    pairs: list[tuple[Step | None, Step | None]] = []
    used: set[int] = set()
    next_b = 0
    for i, key in enumerate(keys_a):
        j = index_b.get(key)
        if j is None:
            pairs.append((a[i], None))
            continue
        # Steps only B has, recorded before this one, keep their place.
        for k in range(next_b, j):
            if k not in used and keys_b[k] in only_b:
                pairs.append((None, b[k]))
                used.add(k)
        pairs.append((a[i], b[j]))
        used.add(j)
        next_b = max(next_b, j + 1)
    pairs.extend((None, b[k]) for k in range(len(b)) if k not in used)
    return pairs


def _changes(a: Any, b: Any) -> list[dict[str, Any]]:
    da = a if isinstance(a, dict) else {}
    db = b if isinstance(b, dict) else {}
    keys = sorted(set(da) | set(db))
    return [{"key": k, "a": da.get(k), "b": db.get(k)} for k in keys if da.get(k) != db.get(k)]


def _either(a: Any, b: Any) -> dict[str, Any] | None:
    return None if a == b else {"a": a, "b": b}


def diff_runs(run_a: dict[str, Any], run_b: dict[str, Any]) -> dict[str, Any]:
    """The differences between two ``GET /runs/{id}`` answers, as ``--json`` prints them."""
    steps = []
    for sa, sb in _align(list(run_a.get("steps") or []), list(run_b.get("steps") or [])):
        ref, xa, xb = sa or sb or {}, sa or {}, sb or {}
        steps.append(
            {
                "name": ref.get("name"),
                "type": ref.get("type"),
                "a": None if sa is None else {k: sa.get(k) for k in _STEP_FIELDS},
                "b": None if sb is None else {k: sb.get(k) for k in _STEP_FIELDS},
                "params": _changes(xa.get("params"), xb.get("params")),
                "reasoning": _either(xa.get("reasoning"), xb.get("reasoning")),
                "top_reasons": _either(xa.get("reason_counts"), xb.get("reason_counts")),
            }
        )
    return {
        "a": {k: run_a.get(k) for k in _RUN_FIELDS},
        "b": {k: run_b.get(k) for k in _RUN_FIELDS},
        "metadata": _changes(run_a.get("metadata"), run_b.get("metadata")),
        "same_input": run_a.get("input") == run_b.get("input"),
        "same_output": run_a.get("output") == run_b.get("output"),
        "steps": steps,
    }


def _param_change(change: dict[str, Any]) -> str:
    key, a, b = change["key"], change["a"], change["b"]
    if isinstance(a, list) and isinstance(b, list):
        added = [x for x in b if x not in a]
        removed = [x for x in a if x not in b]
        parts = []
        if added:
            parts.append(f"B adds {json.dumps(added, ensure_ascii=False)}")
        if removed:
            parts.append(f"B drops {json.dumps(removed, ensure_ascii=False)}")
        return wrap(f"{key}: " + ("; ".join(parts) or "same items, other order"), indent="    ")
    a_text, b_text = json.dumps(a, ensure_ascii=False), json.dumps(b, ensure_ascii=False)
    return wrap(f"{key}: A {a_text} → B {b_text}", indent="    ")


def _delta(a: Step | None, b: Step | None) -> str:
    if not a or not b or a.get("output_count") is None or b.get("output_count") is None:
        return ""
    diff = int(b["output_count"]) - int(a["output_count"])
    return f"{diff:+,}" if diff else "="


def _flow_or_absent(step: Step | None) -> str:
    return flow(step) if step else "(absent)"


def cmd_diff(ctx: Context, args: argparse.Namespace) -> int:
    run_a = ctx.api.get(f"/runs/{quote_path(args.run_a)}")
    run_b = ctx.api.get(f"/runs/{quote_path(args.run_b)}")
    result = diff_runs(run_a, run_b)
    if ctx.as_json:
        ctx.dump(result)
        return 0
    for label, run in (("A", run_a), ("B", run_b)):
        when = timestamp(run.get("started_at"))
        ctx.emit(f"{label}  {run['id']}  {run.get('pipeline')}  {run.get('status')}  {when}")
    ctx.emit()
    for field in ("input", "output"):
        same = result[f"same_{field}"]
        ctx.emit(f"{field:<7} {'same' if same else 'DIFFERENT'}")
        if not same:
            ctx.emit(f"  A  {brief(run_a.get(field), 150)}")
            ctx.emit(f"  B  {brief(run_b.get(field), 150)}")
    for change in result["metadata"]:
        ctx.emit(
            f"metadata.{change['key']}  A {json.dumps(change['a'])}  B {json.dumps(change['b'])}"
        )
    ctx.emit()
    columns = [
        Column("STEP"),
        Column("TYPE"),
        Column("A IN → OUT", ">"),
        Column("B IN → OUT", ">"),
        Column("Δ OUT", ">"),
        Column("A ELIM", ">"),
        Column("B ELIM", ">"),
        Column("CHANGED"),
    ]
    rows = []
    for d in result["steps"]:
        a, b = d["a"], d["b"]
        labels = (
            ("params", d["params"]),
            ("reasoning", d["reasoning"]),
            ("reasons", d["top_reasons"]),
        )
        rows.append(
            [
                str(d["name"]),
                str(d["type"]),
                _flow_or_absent(a),
                _flow_or_absent(b),
                _delta(a, b),
                rate(a["elimination_rate"]) if a else "",
                rate(b["elimination_rate"]) if b else "",
                ", ".join(label for label, value in labels if value),
            ]
        )
    ctx.emit(render_table(columns, rows, stream=ctx.out))
    details = [d for d in result["steps"] if d["params"] or d["reasoning"]]
    if details:
        ctx.emit()
    for d in details:
        ctx.emit(f"{d['name']}:")
        for change in d["params"]:
            ctx.emit(_param_change(change))
        if d["reasoning"]:
            ctx.emit(wrap(f"reasoning A: {d['reasoning']['a'] or '-'}", indent="    "))
            ctx.emit(wrap(f"reasoning B: {d['reasoning']['b'] or '-'}", indent="    "))
    return 0
