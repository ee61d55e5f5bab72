"""The read commands: ``runs``, ``run``, ``steps``, ``decisions``, ``candidate``, ``diff``,
``pipelines``. Each asks the HTTP API and prints a table, or the JSON with ``--json``."""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from xray.cli._errors import EXIT_USAGE, CLIError
from xray.cli._format import (
    Column,
    brief,
    count,
    duration,
    flow,
    rate,
    rejected,
    render_table,
    timestamp,
    top_reasons,
    value_text,
    wrap,
)
from xray.cli._http import ApiClient, quote_path

__all__ = [
    "Context",
    "cmd_candidate",
    "cmd_decisions",
    "cmd_pipelines",
    "cmd_run",
    "cmd_runs",
    "cmd_steps",
    "parse_rate",
    "parse_time",
    "run_filter_params",
]


@dataclass
class Context:
    """What every read command needs: the API, the output stream, JSON or tables."""

    api: ApiClient
    out: TextIO
    as_json: bool

    def emit(self, text: str = "") -> None:
        self.out.write(text + "\n")

    def dump(self, value: Any) -> None:
        self.out.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(value: str) -> str:
    """``--since``/``--until``: ISO-8601, or an age such as ``30m``, ``2h``, ``7d``."""
    text = value.strip()
    match = _RELATIVE.match(text)
    if match:
        age = timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
        return (datetime.now(UTC) - age).isoformat(timespec="seconds")
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a time: use ISO-8601 (2026-01-31T12:00) or an age (30m, 2h, 7d)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.isoformat()


def parse_rate(value: str) -> float:
    """An elimination rate as ``0.9`` or ``90%``."""
    text = value.strip()
    try:
        number = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a rate: use 0.9 or 90%") from None
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"{value!r} is outside 0..1 (0%..100%)")
    return number


def parse_metadata(pairs: list[str] | None) -> dict[str, str]:
    """``--metadata k=v`` (equals) and ``--metadata k!=v`` (differs or is missing)."""
    params: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key or key == "!":
            raise CLIError(
                f"--metadata expects key=value or key!=value, got {pair!r}", exit_code=EXIT_USAGE
            )
        params[f"metadata.{key}"] = value
    return params


def run_filter_params(args: argparse.Namespace) -> dict[str, Any]:
    """The query parameters of the run filters shared by runs, groups and contrast."""
    return {
        "status": args.status,
        "since": args.since,
        "until": args.until,
        "step_type": args.step_type,
        "step_name": args.step_name,
        "min_elimination_rate": args.min_elimination_rate,
        "max_elimination_rate": args.max_elimination_rate,
        "reason": args.reason,
        "min_reason_rate": args.min_reason_rate,
        "min_rejected_rate": args.min_rejected_rate,
        **parse_metadata(args.metadata),
    }


def _more(ctx: Context, more: bool, shown: int, noun: str) -> None:
    if more:
        ctx.emit(f"(showing the first {shown} {noun}; pass --limit to see more)")


# --- runs ---------------------------------------------------------------------------


def _metadata_columns(value: str | None) -> list[str]:
    return [k.strip() for k in (value or "").split(",") if k.strip()]


def cmd_runs(ctx: Context, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"pipeline": args.pipeline, **run_filter_params(args)}
    items, more = ctx.api.collect("/runs", params, limit=args.limit)
    if ctx.as_json:
        ctx.dump(items)
        return 0
    if not items:
        ctx.emit("no runs match")
        return 0
    columns = [
        Column("RUN ID"),
        Column("STARTED"),
        Column("PIPELINE"),
        Column("STATUS"),
        Column("STEPS", ">"),
        Column("DURATION", ">"),
    ]
    keys = _metadata_columns(args.columns)
    columns += [Column(key.upper(), shrink=True) for key in keys]
    columns.append(Column("OUTPUT", shrink=True))
    rows = [
        [
            str(run["id"]),
            timestamp(run.get("started_at")),
            str(run.get("pipeline", "")),
            str(run.get("status", "")),
            count(run.get("step_count")),
            duration(run.get("duration_ms")),
            *(
                value_text(run["metadata"][k]) if k in (run.get("metadata") or {}) else "-"
                for k in keys
            ),
            brief(run.get("output"), 200),
        ]
        for run in items
    ]
    ctx.emit(render_table(columns, rows, stream=ctx.out))
    total = ctx.api.get("/runs/count", params)
    of = f"{total['total']:,}" if total.get("exact") else f"more than {total['total']:,}"
    ctx.emit(f"({len(items):,} of {of} matching runs shown)")
    _more(ctx, more, len(items), "runs")
    return 0


# --- run ----------------------------------------------------------------------------


def _depths(steps: list[dict[str, Any]]) -> dict[str, int]:
    parents = {str(s["id"]): s.get("parent_id") for s in steps}
    depths: dict[str, int] = {}
    for step_id in parents:
        depth, parent, seen = 0, parents[step_id], set()
        while parent and str(parent) in parents and parent not in seen:
            seen.add(parent)
            depth += 1
            parent = parents[str(parent)]
        depths[step_id] = depth
    return depths


def _params_text(params: Any) -> str:
    if not isinstance(params, dict) or not params:
        return ""
    return ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in params.items())


def cmd_run(ctx: Context, args: argparse.Namespace) -> int:
    run = ctx.api.get(f"/runs/{quote_path(args.run_id)}")
    if ctx.as_json:
        ctx.dump(run)
        return 0
    steps: list[dict[str, Any]] = list(run.get("steps") or [])
    ctx.emit(f"run       {run['id']}")
    ctx.emit(f"pipeline  {run.get('pipeline')}   status {run.get('status')}")
    ctx.emit(
        f"started   {timestamp(run.get('started_at'))}   duration {duration(run.get('duration_ms'))}"
    )
    if run.get("metadata"):
        ctx.emit(f"metadata  {_params_text(run['metadata'])}")
    ctx.emit(f"input     {brief(run.get('input'), 200)}")
    ctx.emit(f"output    {brief(run.get('output'), 200)}")
    if run.get("error"):
        error = run["error"]
        ctx.emit(f"error     {error.get('type')}: {error.get('message')}")
    ctx.emit()
    if not steps:
        ctx.emit("no steps recorded")
        return 0
    depths = _depths(steps)
    columns = [
        Column("#", ">"),
        Column("STEP"),
        Column("TYPE"),
        Column("IN → OUT", ">"),
        Column("ELIMINATED", ">"),
        Column("REJECTED", ">"),
        Column("TIME", ">"),
        Column("DETAIL"),
        Column("TOP REASONS", shrink=True),
    ]
    rows = []
    for position, step in enumerate(steps, start=1):
        name = "  " * depths.get(str(step["id"]), 0) + str(step.get("name"))
        if step.get("status") == "error":
            name += " (error)"
        rows.append(
            [
                str(position),
                name,
                str(step.get("type")),
                flow(step),
                rate(step.get("elimination_rate")),
                rejected(step),
                duration(step.get("duration_ms")),
                str(step.get("detail", "")),
                top_reasons(step.get("reason_counts")),
            ]
        )
    ctx.emit(render_table(columns, rows, stream=ctx.out))
    ctx.emit()
    for position, step in enumerate(steps, start=1):
        params, reasoning, error = (
            _params_text(step.get("params")),
            step.get("reasoning"),
            step.get("error"),
        )
        if not (params or reasoning or error):
            continue
        ctx.emit(f"{position}. {step.get('name')}  (step {step['id']})")
        if params:
            ctx.emit(wrap(f"params: {params}", indent="     "))
        if reasoning:
            ctx.emit(wrap(f"reasoning: {reasoning}", indent="     "))
        if error:
            ctx.emit(wrap(f"error: {error.get('type')}: {error.get('message')}", indent="     "))
    return 0


# --- steps --------------------------------------------------------------------------


def cmd_steps(ctx: Context, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {
        "type": args.type,
        "name": args.name,
        "pipeline": args.pipeline,
        "run_id": args.run,
        "status": args.status,
        "min_elimination_rate": args.min_elimination_rate,
        "max_elimination_rate": args.max_elimination_rate,
        "min_input_count": args.min_input_count,
        "since": args.since,
        "until": args.until,
        "reason": args.reason,
        "min_reason_rate": args.min_reason_rate,
        "min_rejected_rate": args.min_rejected_rate,
        **parse_metadata(args.metadata),
    }
    items, more = ctx.api.collect("/steps", params, limit=args.limit)
    if ctx.as_json:
        ctx.dump(items)
        return 0
    if not items:
        ctx.emit("no steps match")
        return 0
    columns = [
        Column("STARTED"),
        Column("PIPELINE"),
        Column("RUN ID"),
        Column("STEP"),
        Column("TYPE"),
        Column("IN → OUT", ">"),
        Column("ELIMINATED", ">"),
        Column("REJECTED", ">"),
        Column("TOP REASONS", shrink=True),
        Column("PARAMS", shrink=True),
    ]
    rows = [
        [
            timestamp(s.get("started_at")),
            str(s.get("pipeline")),
            str(s.get("run_id")),
            str(s.get("name")),
            str(s.get("type")),
            flow(s),
            rate(s.get("elimination_rate")),
            rejected(s),
            top_reasons(s.get("reason_counts"), 1),
            _params_text(s.get("params")),
        ]
        for s in items
    ]
    ctx.emit(render_table(columns, rows, stream=ctx.out))
    by_pipeline = Counter(str(s.get("pipeline")) for s in items)
    summary = ", ".join(f"{p} {n}" for p, n in sorted(by_pipeline.items()))
    total = ctx.api.get("/steps/count", params)
    of = f"{total['total']:,}" if total.get("exact") else f"more than {total['total']:,}"
    ctx.emit(f"{len(items):,} of {of} matching steps shown ({summary})")
    _more(ctx, more, len(items), "steps")
    return 0


# --- decisions ----------------------------------------------------------------------


def _score(value: Any) -> str:
    return "" if value is None else f"{float(value):.3g}"


def _attrs(value: Any) -> str:
    if not isinstance(value, dict) or not value:
        return ""
    return " ".join(f"{k}={brief(v, 60)}" for k, v in value.items())


def _step_id(ctx: Context, args: argparse.Namespace) -> str:
    """The step to read: the argument itself, or with ``--step NAME`` the run's step of
    that name (``NAME#2`` for its second occurrence)."""
    if not args.step:
        return str(args.target)
    name, _, nth = args.step.rpartition("#") if "#" in args.step else (args.step, "", "1")
    if not nth.isdigit() or int(nth) < 1:
        raise CLIError(f"--step {args.step!r}: use NAME or NAME#N (N from 1)", exit_code=EXIT_USAGE)
    run = ctx.api.get(f"/runs/{quote_path(args.target)}")
    matches = [s for s in run.get("steps") or [] if s.get("name") == name]
    if len(matches) < int(nth):
        names = ", ".join(dict.fromkeys(str(s.get("name")) for s in run.get("steps") or []))
        raise CLIError(
            f"run {args.target} has no step {args.step!r} (its steps: {names or 'none'})",
            exit_code=EXIT_USAGE,
        )
    return str(matches[int(nth) - 1]["id"])


def cmd_decisions(ctx: Context, args: argparse.Namespace) -> int:
    params = {"decision": args.decision, "reason": args.reason, "candidate_key": args.candidate}
    step_id = _step_id(ctx, args)
    items, more = ctx.api.collect(
        f"/steps/{quote_path(step_id)}/decisions", params, limit=args.limit
    )
    if ctx.as_json:
        ctx.dump(items)
        return 0
    if not items:
        ctx.emit("no decisions match (a summary-detail step records counts and reasons only)")
        return 0
    columns = [
        Column("CANDIDATE"),
        Column("DECISION"),
        Column("REASON"),
        Column("SCORE", ">"),
        Column("RANK", ">"),
        Column("ATTRIBUTES", shrink=True),
    ]
    rows = [
        [
            str(d.get("candidate_key")),
            str(d.get("decision")),
            str(d.get("reason") or ""),
            _score(d.get("score")),
            "" if d.get("rank") is None else str(d["rank"]),
            _attrs(d.get("attributes")),
        ]
        for d in items
    ]
    ctx.emit(render_table(columns, rows, stream=ctx.out))
    _more(ctx, more, len(items), "decisions")
    return 0


# --- candidate ----------------------------------------------------------------------


def cmd_candidate(ctx: Context, args: argparse.Namespace) -> int:
    params = {"run_id": args.run, "pipeline": args.pipeline}
    items, more = ctx.api.collect(f"/candidates/{quote_path(args.key)}", params, limit=args.limit)
    if ctx.as_json:
        ctx.dump(items)
        return 0
    if not items:
        ctx.emit(f"no decisions recorded about {args.key!r}")
        return 0
    runs: dict[str, list[dict[str, Any]]] = {}
    for decision in items:
        runs.setdefault(str(decision.get("run_id")), []).append(decision)
    columns = [
        Column("#", ">"),
        Column("STEP"),
        Column("TYPE"),
        Column("DECISION"),
        Column("REASON"),
        Column("SCORE", ">"),
        Column("RANK", ">"),
        Column("ATTRIBUTES", shrink=True),
    ]
    first = True
    for run_id, decisions in runs.items():
        if not first:
            ctx.emit()
        first = False
        head = decisions[0]
        ctx.emit(f"run {run_id}  {head.get('pipeline')}  {timestamp(head.get('started_at'))}")
        rows = [
            [
                str(int(d.get("step_seq", 0)) + 1),
                str(d.get("step_name")),
                str(d.get("step_type")),
                str(d.get("decision")),
                str(d.get("reason") or ""),
                _score(d.get("score")),
                "" if d.get("rank") is None else str(d["rank"]),
                _attrs(d.get("attributes")),
            ]
            for d in decisions
        ]
        ctx.emit(render_table(columns, rows, stream=ctx.out))
    ctx.emit()
    ctx.emit(f"{len(items)} decisions about {args.key} in {len(runs)} run(s)")
    _more(ctx, more, len(items), "decisions")
    return 0


# --- pipelines ----------------------------------------------------------------------


def cmd_pipelines(ctx: Context, args: argparse.Namespace) -> int:
    items, more = ctx.api.collect("/pipelines", {}, limit=args.limit)
    if ctx.as_json:
        ctx.dump(items)
        return 0
    if not items:
        ctx.emit("no pipelines recorded yet")
        return 0
    columns = [Column("PIPELINE"), Column("RUNS", ">"), Column("LAST RUN")]
    rows = [
        [str(p.get("pipeline")), count(p.get("run_count")), timestamp(p.get("last_started_at"))]
        for p in items
    ]
    ctx.emit(render_table(columns, rows, stream=ctx.out))
    _more(ctx, more, len(items), "pipelines")
    return 0
