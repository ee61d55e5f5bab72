"""``xray diff RUN_A RUN_B``: two runs side by side, step by step, from ``GET /compare``
(the same comparison the dashboard's Compare page shows).

The server pairs steps by name (the n-th ``price_filter`` of A with the n-th of B) and
ranks every difference by how telling it is; the first line names the top one.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from xray.cli._format import Column, brief, count, flow, rejected, render_table, timestamp, wrap
from xray.cli._queries import Context

__all__ = ["cmd_diff"]

Step = dict[str, Any]


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
    result = ctx.api.get("/compare", {"a": args.run_a, "b": args.run_b})
    if ctx.as_json:
        ctx.dump(result)
        return 0
    run_a, run_b = result["a"], result["b"]
    for label, run in (("A", run_a), ("B", run_b)):
        when = timestamp(run.get("started_at"))
        ctx.emit(f"{label}  {run['id']}  {run.get('pipeline')}  {run.get('status')}  {when}")
    ctx.emit()
    first = result.get("first_difference")
    ctx.emit(f"first difference: {first['text']}" if first else "no difference found")
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
        Column("#", ">"),
        Column("STEP", shrink=True),
        Column("TYPE"),
        Column("A IN → OUT", ">"),
        Column("B IN → OUT", ">"),
        Column("Δ OUT", ">"),
        Column("A REJECTED", ">"),
        Column("B REJECTED", ">"),
        Column("CHANGED"),
    ]
    rows = []
    for d in result["steps"]:
        a, b = d["a"], d["b"]
        rows.append(
            [
                str(d["position"]),
                str(d["name"]),
                str(d["type"]),
                _flow_or_absent(a),
                _flow_or_absent(b),
                _delta(a, b),
                rejected(a),
                rejected(b),
                ", ".join(d["changed"]),
            ]
        )
    ctx.emit(render_table(columns, rows, stream=ctx.out))
    details = [
        d
        for d in result["steps"]
        if d["params"] or d["reasoning"] or any(r["a"] != r["b"] for r in d["reason_counts"])
    ]
    if details:
        ctx.emit()
    for d in details:
        ctx.emit(f"{d['position']}. {d['name']}:")
        for change in d["params"]:
            ctx.emit(_param_change(change))
        for row in d["reason_counts"]:
            if row["a"] != row["b"]:
                ctx.emit(f"    {row['reason']}: A {count(row['a'])} vs B {count(row['b'])}")
        if d["reasoning"]:
            ctx.emit(wrap(f"reasoning A: {d['reasoning']['a'] or '-'}", indent="    "))
            ctx.emit(wrap(f"reasoning B: {d['reasoning']['b'] or '-'}", indent="    "))
    return 0
