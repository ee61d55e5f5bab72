"""The population commands: ``groups``, ``contrast``, ``trends`` and ``keys``.

Each asks one endpoint and prints tables, or the JSON with ``--json``.
"""

from __future__ import annotations

import argparse
from typing import Any

from xray.cli._format import Column, brief, count, rate, render_table, timestamp, value_text
from xray.cli._http import quote_path
from xray.cli._queries import Context, run_filter_params

__all__ = ["cmd_cohorts", "cmd_contrast", "cmd_fields", "cmd_groups", "cmd_trends"]

# Groups shown side by side in the per-step table; the rest are in --json.
_STEP_COLUMNS = 6


def _value(item: dict[str, Any]) -> str:
    return "(none)" if item.get("missing") else value_text(item.get("value"))


def _statuses(statuses: dict[str, int]) -> str:
    return " ".join(f"{k} {count(v)}" for k, v in sorted(statuses.items()))


def _top_reason(step: dict[str, Any] | None) -> str:
    if not step:
        return "-"
    rates: dict[str, float] = step.get("reason_rates") or {}
    rejected = rate(step.get("rejected_rate")) if step.get("rejected_rate") is not None else "0%"
    if not rates:
        return f"{rejected} rejected"
    reason, share = next(iter(rates.items()))
    refill = " +refill" if step.get("readmitted_runs") else ""
    return f"{rejected} {reason} {rate(share)}{refill}"


def cmd_groups(ctx: Context, args: argparse.Namespace) -> int:
    params = {"pipeline": args.pipeline, "by": args.by, "sample": args.sample}
    body = ctx.api.get("/groups", params | run_filter_params(args))
    if ctx.as_json:
        ctx.dump(body)
        return 0
    items: list[dict[str, Any]] = body["items"]
    if not items:
        ctx.emit(f"no runs of {args.pipeline!r} match")
        return 0
    sampled = " (the newest; pass --sample for more)" if body["sampled"] else ""
    ctx.emit(f"{count(body['runs'])} runs of {body['pipeline']}{sampled} by {body['by']}")
    outlier = body.get("outlier")
    if outlier:
        ctx.emit(
            f"outlier: {body['by']}={value_text(outlier['value'])} at {outlier['step']}: "
            f"{outlier['reason']} {rate(outlier['rate'])} of its input vs "
            f"{rate(outlier['rest_rate'])} in the other runs"
        )
    ctx.emit()
    columns = [
        Column("VALUE", shrink=True),
        Column("RUNS", ">"),
        Column("STATUS"),
        Column("TOP OUTPUT", shrink=True),
        Column(""),
    ]
    rows = [
        [
            _value(item),
            count(item["runs"]),
            _statuses(item["statuses"]),
            brief(item["outputs"][0]["value"], 80) if item["outputs"] else "-",
            "◀ outlier" if item["outlier"] else "",
        ]
        for item in items
    ]
    ctx.emit(render_table(columns, rows, stream=ctx.out))
    shown = items[:_STEP_COLUMNS]
    names: list[str] = []
    for item in shown:
        names += [s["name"] for s in item["steps"] if s["name"] not in names]
    ctx.emit()
    ctx.emit("Per step: share of its input rejected, top reason and its share")
    step_columns = [Column("#", ">"), Column("STEP")] + [
        Column(_value(item)[:30], shrink=True) for item in shown
    ]
    step_rows = []
    for position, name in enumerate(names, start=1):
        cells = [str(position), name]
        for item in shown:
            step = next((s for s in item["steps"] if s["name"] == name), None)
            cells.append(_top_reason(step))
        step_rows.append(cells)
    ctx.emit(render_table(step_columns, step_rows, stream=ctx.out))
    if outlier:
        key = body["by"]
        value = value_text(outlier["value"])
        ctx.emit()
        ctx.emit("Next:")
        if key.startswith("metadata."):
            selector = f"--metadata {key[len('metadata.') :]}={value}"
            ctx.emit(f"  xray contrast {body['pipeline']} {selector}")
            ctx.emit(
                f"  xray runs --pipeline {body['pipeline']} {selector} --reason {outlier['reason']}"
            )
        else:
            ctx.emit(
                f"  xray runs --pipeline {body['pipeline']} --step-name {outlier['step']} "
                f"--reason {outlier['reason']} --min-reason-rate {outlier['rate']:.3g}"
            )
    return 0


def cmd_contrast(ctx: Context, args: argparse.Namespace) -> int:
    filters = run_filter_params(args)
    params = {"pipeline": args.pipeline, "sample": args.sample, "limit": args.limit}
    body = ctx.api.get("/contrast", params | filters)
    if ctx.as_json:
        ctx.dump(body)
        return 0
    sampled = " (newest runs only)" if body["sampled"] else ""
    ctx.emit(
        f"{count(body['inside'])} runs selected vs {count(body['outside'])} other runs "
        f"of {body['pipeline']}{sampled}"
    )
    if not body["inside"]:
        ctx.emit("no runs match the filters")
        return 0
    ctx.emit()
    columns = [
        Column("FIELD", shrink=True),
        Column("VALUE", shrink=True),
        Column("SELECTED", ">"),
        Column("OTHERS", ">"),
        Column("NOTE"),
    ]
    rows = [
        [
            item["field"],
            value_text(item["value"]),
            f"{count(item['inside'])}/{count(item['inside_total'])}",
            f"{count(item['outside'])}/{count(item['outside_total'])}",
            item.get("note") or "",
        ]
        for item in body["items"]
    ]
    ctx.emit(render_table(columns, rows, stream=ctx.out))
    if body["reasons"]:
        ctx.emit()
        ctx.emit("Rejection shares that differ (rejected for the reason / the step's input)")
        reason_columns = [
            Column("STEP"),
            Column("REASON"),
            Column("SELECTED", ">"),
            Column("OTHERS", ">"),
        ]
        reason_rows = [
            [r["step"], r["reason"], rate(r["inside"]), rate(r["outside"])] for r in body["reasons"]
        ]
        ctx.emit(render_table(reason_columns, reason_rows, stream=ctx.out))
    return 0


def cmd_trends(ctx: Context, args: argparse.Namespace) -> int:
    params = {
        "pipeline": args.pipeline,
        "step": args.step,
        "bucket": args.bucket,
        "since": args.since,
        "until": args.until,
    }
    body = ctx.api.get("/trends", params)
    if ctx.as_json:
        ctx.dump(body)
        return 0
    items = body["items"]
    if not items:
        ctx.emit(f"no runs of {args.pipeline!r} in that time range")
        return 0
    columns = [Column("BUCKET"), Column("RUNS", ">"), Column("STATUS")]
    if args.step:
        columns += [
            Column("ELIMINATED", ">"),
            Column("REJECTED", ">"),
            Column("TOP REASONS", shrink=True),
        ]
    rows = []
    for item in items:
        row = [timestamp(item["start"]), count(item["runs"]), _statuses(item["statuses"])]
        if args.step:
            reasons = ", ".join(f"{r} {rate(v)}" for r, v in item["reason_rates"].items())
            row += [rate(item["elimination_rate"]), rate(item["rejected_rate"]), reasons]
        rows.append(row)
    ctx.emit(render_table(columns, rows, stream=ctx.out))
    return 0


def cmd_fields(ctx: Context, args: argparse.Namespace) -> int:
    body = ctx.api.get(f"/pipelines/{quote_path(args.pipeline)}/keys", {"sample": args.sample})
    if ctx.as_json:
        ctx.dump(body)
        return 0
    ctx.emit(f"{body['pipeline']}: keys of its newest {count(body['runs'])} runs")
    columns = [
        Column("KEY", shrink=True),
        Column("RUNS", ">"),
        Column("DISTINCT", ">"),
        Column("COMMON VALUES", shrink=True),
    ]
    rows = [
        [
            entry["key"],
            count(entry["runs"]),
            count(entry["distinct"]),
            ", ".join(
                f"{value_text(v['value'])} ({count(v['runs'])})" for v in entry["values"][:5]
            ),
        ]
        for section in ("metadata", "outputs", "params")
        for entry in body[section]
    ]
    ctx.emit(render_table(columns, rows, stream=ctx.out))
    return 0


def _cohort_cell(side: dict[str, Any] | None) -> str:
    if not side:
        return "(absent)"
    flow = f"{count(side.get('median_input'))} → {count(side.get('median_output'))}"
    return f"{flow}  {_top_reason(side)}"


def cmd_cohorts(ctx: Context, args: argparse.Namespace) -> int:
    params = {"pipeline": args.pipeline, "a": args.a, "b": args.b, "sample": args.sample}
    body = ctx.api.get("/compare", params | run_filter_params(args))
    if ctx.as_json:
        ctx.dump(body)
        return 0
    a, b = body["a"], body["b"]
    ctx.emit(f"A  {a['label']}  {count(a['runs'])} runs")
    ctx.emit(f"B  {b['label']}  {count(b['runs'])} runs")
    first = body.get("first_divergence")
    if first:
        ctx.emit(
            f"first divergence: {first['step']}: {first['reason']} {rate(first['rate'])} of its "
            f"input in A vs {rate(first['rest_rate'])} in B"
        )
    ctx.emit()
    columns = [
        Column("#", ">"),
        Column("STEP"),
        Column("A: MEDIAN IN → OUT, REJECTED, TOP REASON", shrink=True),
        Column("B", shrink=True),
        Column("PARAMS THAT DIFFER", shrink=True),
    ]
    rows = []
    for step in body["steps"]:
        pa = (step["a"] or {}).get("params") or {}
        pb = (step["b"] or {}).get("params") or {}
        differ = ", ".join(
            f"{k}: {value_text(pa.get(k))} vs {value_text(pb.get(k))}"
            for k in sorted(set(pa) | set(pb))
            if pa.get(k) != pb.get(k) and k in pa and k in pb
        )
        rows.append(
            [
                str(step["position"]),
                step["name"],
                _cohort_cell(step["a"]),
                _cohort_cell(step["b"]),
                differ,
            ]
        )
    ctx.emit(render_table(columns, rows, stream=ctx.out))
    for label, side in (("A", a), ("B", b)):
        outputs = ", ".join(
            f"{brief(o['value'], 60)} ({count(o['runs'])})" for o in side["outputs"]
        )
        ctx.emit(f"{label} outputs: {outputs or '-'}")
    return 0
