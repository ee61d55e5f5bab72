"""Cross-run questions: groups, what sets a selection apart, trends, keys, comparisons.

Each answer reads a bounded sample: the newest ``sample`` runs matching the filters (one
index range scan on ``runs (pipeline, started_at, id)``) and their steps (by ``run_id``,
the ``steps (run_id, seq)`` index), then aggregates in Python. An answer says how many
runs it read and whether the sample stopped short (``sampled``), so a partial answer is
never mistaken for a complete one.
"""

from __future__ import annotations

import json
import statistics
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from xray.api.db.models import RunRow, StepRow
from xray.api.services._filters import RunFilters, StepFilters, metadata_filter
from xray.api.services._rates import readmitted

__all__ = [
    "DEFAULT_SAMPLE",
    "GroupKey",
    "RunFilters",
    "compare_cohorts",
    "compare_runs",
    "contrast",
    "count_runs",
    "count_steps",
    "groups",
    "parse_bucket",
    "parse_group_key",
    "pipeline_keys",
    "trends",
]

DEFAULT_SAMPLE = 1000
_CHUNK = 500
_TOP_VALUES = 10
_TEXT_MAX = 200
# A change of output count smaller than this share of the larger count is noise.
_COUNT_NOISE = 0.1


# --- reading the sample ---------------------------------------------------------------


@dataclass
class StepSample:
    name: str
    seq: int
    type: str
    input_count: int | None
    output_count: int | None
    elimination_rate: float | None
    rejected_rate: float | None
    reason_counts: dict[str, int]
    params: dict[str, Any]
    # Read for comparisons only (``details=True``).
    id: uuid.UUID | None = None
    output: Any = None
    reasoning: str | None = None
    duration_ms: float | None = None
    candidates_recorded: int = 0


@dataclass
class RunSample:
    id: uuid.UUID
    status: str
    started_at: datetime
    metadata: dict[str, Any]
    output: Any
    input: Any = None
    pipeline: str = ""
    duration_ms: float | None = None
    steps: list[StepSample] = field(default_factory=list)

    def first_step(self, name: str) -> StepSample | None:
        return next((s for s in self.steps if s.name == name), None)


async def _sample(
    session: AsyncSession,
    conditions: Sequence[ColumnElement[bool]],
    limit: int,
    *,
    with_steps: bool = True,
    details: bool = False,
) -> tuple[list[RunSample], bool]:
    columns: list[Any] = [RunRow.id, RunRow.status, RunRow.started_at, RunRow.meta, RunRow.output]
    if details:
        columns += [RunRow.input, RunRow.pipeline, RunRow.duration_ms]
    rows = (
        await session.execute(
            select(*columns)
            .where(*conditions)
            .order_by(RunRow.started_at.desc(), RunRow.id.desc())
            .limit(limit + 1)
        )
    ).all()
    truncated = len(rows) > limit
    runs = [
        RunSample(
            row[0],
            row[1],
            row[2],
            row[3] if isinstance(row[3], dict) else {},
            row[4],
            *(row[5:8] if details else ()),
        )
        for row in rows[:limit]
    ]
    if with_steps and runs:
        await _attach_steps(session, runs, details=details)
    return runs, truncated


async def _attach_steps(session: AsyncSession, runs: list[RunSample], *, details: bool) -> None:
    by_id = {run.id: run for run in runs}
    ids = list(by_id)
    columns: list[Any] = [
        StepRow.run_id,
        StepRow.name,
        StepRow.seq,
        StepRow.type,
        StepRow.input_count,
        StepRow.output_count,
        StepRow.elimination_rate,
        StepRow.rejected_rate,
        StepRow.reason_counts,
        StepRow.params,
    ]
    if details:
        columns += [
            StepRow.id,
            StepRow.output,
            StepRow.reasoning,
            StepRow.duration_ms,
            StepRow.candidates_recorded,
        ]
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        rows = await session.execute(
            select(*columns)
            .where(StepRow.run_id.in_(chunk))
            .order_by(StepRow.run_id, StepRow.seq, StepRow.started_at)
        )
        for row in rows:
            by_id[row[0]].steps.append(
                StepSample(
                    name=row[1],
                    seq=row[2],
                    type=row[3],
                    input_count=row[4],
                    output_count=row[5],
                    elimination_rate=row[6],
                    rejected_rate=row[7],
                    reason_counts=row[8] if isinstance(row[8], dict) else {},
                    params=row[9] if isinstance(row[9], dict) else {},
                )
            )
            if details:
                step = by_id[row[0]].steps[-1]
                step.id, step.output, step.reasoning, step.duration_ms = row[10:14]
                step.candidates_recorded = row[14]


# --- values ---------------------------------------------------------------------------


def _text(value: Any) -> str:
    """A value's grouping text: strings as they are, anything else as compact JSON."""
    if isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= _TEXT_MAX else text[: _TEXT_MAX - 1] + "…"


def _shown(value: Any) -> Any:
    """A value as an answer shows it: scalars as they are, big structures as text."""
    if value is None or isinstance(value, bool | int | float):
        return value
    return _text(value)


_MISSING = object()


@dataclass(frozen=True)
class GroupKey:
    """What ``by=`` names: ``status``, ``metadata.<k>``, ``output.<f>`` or
    ``step.<name>.params.<k>``."""

    kind: str
    name: str
    key: str = ""

    def of(self, run: RunSample) -> Any:
        if self.kind == "status":
            return run.status
        if self.kind == "metadata":
            return run.metadata.get(self.name, _MISSING)
        if self.kind == "output":
            if isinstance(run.output, dict):
                return run.output.get(self.name, _MISSING)
            return _MISSING
        step = run.first_step(self.name)
        if step is None:
            return _MISSING
        return step.params.get(self.key, _MISSING)

    def __str__(self) -> str:
        if self.kind == "status":
            return "status"
        if self.kind == "step":
            return f"step.{self.name}.params.{self.key}"
        return f"{self.kind}.{self.name}"


def parse_group_key(text: str) -> GroupKey:
    """``by=`` as a ``GroupKey``; ``ValueError`` names what is accepted.

    Example:
        >>> parse_group_key("step.price_filter.params.max_price")
        GroupKey(kind='step', name='price_filter', key='max_price')
    """
    if text == "status":
        return GroupKey("status", "")
    for kind in ("metadata", "output"):
        if text.startswith(kind + ".") and len(text) > len(kind) + 1:
            return GroupKey(kind, text[len(kind) + 1 :])
    if text.startswith("step.") and ".params." in text:
        name, _, key = text[len("step.") :].rpartition(".params.")
        if name and key:
            return GroupKey("step", name, key)
    raise ValueError("use status, metadata.<key>, output.<field> or step.<step name>.params.<key>")


# --- aggregates over a set of runs ------------------------------------------------------


@dataclass
class _StepTotals:
    """One step name's sums over a set of runs (rates are sums, not means of rates)."""

    name: str
    type: str
    order: float
    runs: int = 0
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    input_sum: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    params: dict[str, Any] | None = None
    params_varied: set[str] = field(default_factory=set)
    readmitted: int = 0

    def add(self, step: StepSample) -> None:
        self.runs += 1
        if step.input_count is not None:
            self.inputs.append(step.input_count)
            self.input_sum += step.input_count
        if step.output_count is not None:
            self.outputs.append(step.output_count)
        self.rejected.update({k: v for k, v in step.reason_counts.items() if v > 0})
        if readmitted(step.input_count, step.output_count, step.reason_counts):
            self.readmitted += 1
        if self.params is None:
            self.params = dict(step.params)
            return
        for key in set(self.params) | set(step.params):
            if key in self.params_varied:
                continue
            if self.params.get(key, _MISSING) != step.params.get(key, _MISSING):
                self.params_varied.add(key)

    def reason_rate(self, reason: str) -> float:
        return self.rejected[reason] / self.input_sum if self.input_sum else 0.0

    def rejected_rate(self) -> float | None:
        if not self.input_sum or not self.rejected:
            return None
        return min(1.0, sum(self.rejected.values()) / self.input_sum)

    def out(self) -> dict[str, Any]:
        reasons = sorted(self.rejected, key=lambda r: (-self.rejected[r], r))
        return {
            "name": self.name,
            "type": self.type,
            "runs": self.runs,
            "median_input": _median(self.inputs),
            "median_output": _median(self.outputs),
            "rejected_rate": self.rejected_rate(),
            "reason_rates": {r: self.reason_rate(r) for r in reasons},
            "reason_counts": {r: self.rejected[r] for r in reasons},
            "readmitted_runs": self.readmitted,
            "params": {k: v for k, v in (self.params or {}).items() if k not in self.params_varied},
            "varied_params": sorted(self.params_varied),
        }


def _median(values: list[int]) -> float | None:
    return float(statistics.median(values)) if values else None


def _step_totals(runs: Iterable[RunSample]) -> dict[str, _StepTotals]:
    totals: dict[str, _StepTotals] = {}
    for run in runs:
        seen: set[str] = set()
        for position, step in enumerate(run.steps):
            if step.name in seen:  # a repeated name counts its first occurrence
                continue
            seen.add(step.name)
            entry = totals.get(step.name)
            if entry is None:
                entry = totals[step.name] = _StepTotals(step.name, step.type, position)
            entry.add(step)
    return dict(sorted(totals.items(), key=lambda kv: kv[1].order))


def _outputs(runs: Sequence[RunSample], n: int = 3) -> list[dict[str, Any]]:
    counts = Counter(_text(run.output) for run in runs)
    firsts: dict[str, Any] = {}
    for run in runs:
        firsts.setdefault(_text(run.output), run.output)
    return [{"value": _shown(firsts[t]), "runs": c} for t, c in counts.most_common(n)]


@dataclass(frozen=True)
class _Divergence:
    step: str
    reason: str | None
    rate: float
    rest_rate: float

    @property
    def gap(self) -> float:
        return abs(self.rate - self.rest_rate)

    def out(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "reason": self.reason,
            "rate": self.rate,
            "rest_rate": self.rest_rate,
        }


# Per step name: rejections by reason and the input they are a share of.
_Pool = dict[str, tuple[Counter[str], int]]


def _pool(totals: dict[str, _StepTotals]) -> _Pool:
    return {name: (t.rejected, t.input_sum) for name, t in totals.items()}


def _pool_minus(everyone: _Pool, part: _Pool) -> _Pool:
    """Every run's pool without one group's: the rest, without adding it up again."""
    rest: _Pool = {}
    for name, (rejected, inputs) in everyone.items():
        mine = part.get(name)
        if mine is None:
            rest[name] = (rejected, inputs)
        else:
            rest[name] = (rejected - mine[0], inputs - mine[1])
    return rest


def _pool_sum(pools: Iterable[_Pool]) -> _Pool:
    total: _Pool = {}
    for pool in pools:
        for name, (rejected, inputs) in pool.items():
            have = total.get(name)
            total[name] = (
                (rejected.copy(), inputs)
                if have is None
                else (have[0] + rejected, have[1] + inputs)
            )
    return total


def _share(pool: tuple[Counter[str], int], reason: str) -> float:
    rejected, inputs = pool
    return rejected[reason] / inputs if inputs else 0.0


def _divergence(inside: _Pool, rest: _Pool) -> _Divergence | None:
    """The step and reason whose rejection share differs most between two sets of runs."""
    best: _Divergence | None = None
    for name, mine in inside.items():
        other = rest.get(name)
        if other is None or not other[1]:
            continue
        for reason in set(mine[0]) | set(other[0]):
            candidate = _Divergence(name, reason, _share(mine, reason), _share(other, reason))
            if best is None or candidate.gap > best.gap:
                best = candidate
    return best if best is not None and best.gap > 0 else None


# --- totals ---------------------------------------------------------------------------

COUNT_CAP = 100_000


async def count_runs(
    session: AsyncSession, *, pipeline: str | None, filters: RunFilters, cap: int = COUNT_CAP
) -> dict[str, Any]:
    """How many runs match, exact up to ``cap`` (counting stops there: ``exact: false``).

    Example:
        >>> await count_runs(session, pipeline="support-answer", filters=RunFilters())  # doctest: +SKIP
        {'total': 16, 'exact': True}
    """
    dialect = session.get_bind().dialect.name
    conditions = filters.conditions(dialect, pipeline)
    # A bounded subquery: counting a billion rows to print one number is not worth it.
    capped = select(RunRow.id).where(*conditions).limit(cap + 1).subquery()
    total = int(await session.scalar(select(func.count()).select_from(capped)) or 0)
    return {"total": min(total, cap), "exact": total <= cap}


async def count_steps(
    session: AsyncSession,
    filters: StepFilters,
    *,
    metadata: Sequence[tuple[str, str]] = (),
    cap: int = COUNT_CAP,
) -> dict[str, Any]:
    """How many steps ``GET /steps`` lists for the same filters, exact up to ``cap``."""
    dialect = session.get_bind().dialect.name
    conditions = filters.conditions(dialect)
    if metadata:
        runs = select(RunRow.id).where(*(metadata_filter(dialect, k, v) for k, v in metadata))
        conditions.append(StepRow.run_id.in_(runs))
    capped = select(StepRow.id).where(*conditions).limit(cap + 1).subquery()
    total = int(await session.scalar(select(func.count()).select_from(capped)) or 0)
    return {"total": min(total, cap), "exact": total <= cap}


# --- groups ---------------------------------------------------------------------------


async def groups(
    session: AsyncSession,
    *,
    pipeline: str,
    by: GroupKey,
    filters: RunFilters,
    sample: int = DEFAULT_SAMPLE,
    limit: int = 50,
) -> dict[str, Any]:
    """One item per value of ``by`` among the pipeline's newest ``sample`` runs.

    The item whose rejection shares differ most from the other runs' is marked
    ``outlier``, with the step and reason that make the difference.

    Example:
        >>> await groups(session, pipeline="support-answer",
        ...              by=parse_group_key("metadata.locale"), filters=RunFilters())  # doctest: +SKIP
    """
    dialect = session.get_bind().dialect.name
    runs, truncated = await _sample(session, filters.conditions(dialect, pipeline), sample)
    buckets: dict[str, list[RunSample]] = defaultdict(list)
    values: dict[str, Any] = {}
    for run in runs:
        value = by.of(run)
        text = "\0missing" if value is _MISSING else _text(value)
        buckets[text].append(run)
        values.setdefault(text, None if value is _MISSING else value)
    ordered = sorted(buckets, key=lambda t: (-len(buckets[t]), t))
    totals = {text: _step_totals(buckets[text]) for text in ordered}
    pools = {text: _pool(totals[text]) for text in ordered}
    everyone = _pool_sum(pools.values())
    outlier: tuple[str, _Divergence] | None = None
    if len(ordered) > 1:
        for text in ordered:
            found = _divergence(pools[text], _pool_minus(everyone, pools[text]))
            if found is not None and (outlier is None or found.gap > outlier[1].gap):
                outlier = (text, found)
    items = []
    for text in ordered[:limit]:
        members = buckets[text]
        items.append(
            {
                "value": _shown(values[text]),
                "missing": text == "\0missing",
                "runs": len(members),
                "statuses": dict(Counter(r.status for r in members)),
                "outputs": _outputs(members),
                "steps": [t.out() for t in totals[text].values()],
                "outlier": outlier is not None and outlier[0] == text,
            }
        )
    return {
        "pipeline": pipeline,
        "by": str(by),
        "runs": len(runs),
        "sampled": truncated,
        "groups": len(ordered),
        "outlier": None
        if outlier is None
        else {"value": _shown(values[outlier[0]])} | outlier[1].out(),
        "items": items,
    }


# --- contrast -------------------------------------------------------------------------


def _features(run: RunSample) -> dict[str, Any]:
    """Every metadata key, top-level output field and step parameter of one run."""
    found: dict[str, Any] = {}
    for key, value in run.metadata.items():
        found[f"metadata.{key}"] = value
    if isinstance(run.output, dict):
        for key, value in run.output.items():
            found[f"output.{key}"] = value
    for step in run.steps:
        for key, value in step.params.items():
            found.setdefault(f"step.{step.name}.params.{key}", value)
    return found


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _ratio_note(inside: list[float], outside: list[float]) -> tuple[float | None, str | None]:
    if not inside or not outside:
        return None, None
    a, b = statistics.median(inside), statistics.median(outside)
    if a == 0 or b == 0 or a == b:
        return None, None
    ratio = a / b
    if ratio >= 1:
        return ratio, f"≈ {ratio:,.3g}× larger"  # noqa: RUF001
    return ratio, f"≈ {1 / ratio:,.3g}× smaller"  # noqa: RUF001


def _contrast_items(inside: list[RunSample], outside: list[RunSample]) -> list[dict[str, Any]]:
    features_in = [_features(r) for r in inside]
    features_out = [_features(r) for r in outside]
    names = sorted({k for f in features_in for k in f} | {k for f in features_out for k in f})
    n_in, n_out = len(inside), len(outside)
    items = []
    for name in names:
        texts_in = Counter(_text(f.get(name)) for f in features_in)
        texts_out = Counter(_text(f.get(name)) for f in features_out)
        distinct = len(set(texts_in) | set(texts_out))
        # Identifiers (a value per run) separate anything from anything; they say nothing.
        total = n_in + n_out
        if (total >= 6 and distinct == total) or distinct > max(4, total // 2):
            continue
        best_text, best_score = "", -2.0
        for text in set(texts_in) | set(texts_out):
            score = texts_in[text] / n_in - (texts_out[text] / n_out if n_out else 0.0)
            if score > best_score:
                best_text, best_score = text, score
        example = next((f.get(name) for f in features_in if _text(f.get(name)) == best_text), None)
        ratio, note = _ratio_note(
            [x for f in features_in if (x := _number(f.get(name))) is not None],
            [x for f in features_out if (x := _number(f.get(name))) is not None],
        )
        items.append(
            {
                "field": name,
                "value": _shown(example),
                "inside": texts_in[best_text],
                "inside_total": n_in,
                "outside": texts_out[best_text],
                "outside_total": n_out,
                "score": round(best_score, 6),
                "ratio": ratio,
                "note": note,
                "values": [
                    {"value": text, "inside": texts_in[text], "outside": texts_out[text]}
                    for text, _ in (texts_in + texts_out).most_common(_TOP_VALUES)
                ],
            }
        )
    # A value as common outside as inside separates nothing.
    items = [i for i in items if i["score"] > 0]
    items.sort(key=lambda i: (-i["score"], i["field"]))
    return items


def _reason_contrast(inside: list[RunSample], outside: list[RunSample]) -> list[dict[str, Any]]:
    mine, rest = _step_totals(inside), _step_totals(outside)
    rows: list[dict[str, Any]] = []
    for name, totals in mine.items():
        other = rest.get(name)
        if other is None:
            continue
        for reason in set(totals.rejected) | set(other.rejected):
            a, b = totals.reason_rate(reason), other.reason_rate(reason)
            if a != b:
                rows.append(
                    {"step": name, "reason": reason, "inside": a, "outside": b, "gap": a - b}
                )
    rows.sort(key=lambda r: (-abs(r["gap"]), r["step"], r["reason"]))
    return rows[:_TOP_VALUES]


async def contrast(
    session: AsyncSession,
    *,
    pipeline: str,
    filters: RunFilters,
    sample: int = DEFAULT_SAMPLE,
    limit: int = 20,
) -> dict[str, Any]:
    """What sets the runs matching ``filters`` apart from the pipeline's other runs in the
    same time range: each field's best-separating value, share inside vs outside.

    Example:
        >>> await contrast(session, pipeline="recommender",
        ...                filters=RunFilters(metadata=[("segment", "bad")]))  # doctest: +SKIP
    """
    dialect = session.get_bind().dialect.name
    base = RunFilters(since=filters.since, until=filters.until)
    everyone, truncated = await _sample(session, base.conditions(dialect, pipeline), sample)
    ids = (
        await session.scalars(
            select(RunRow.id)
            .where(*filters.conditions(dialect, pipeline))
            .order_by(RunRow.started_at.desc(), RunRow.id.desc())
            .limit(sample)
        )
    ).all()
    chosen = set(ids)
    inside = [r for r in everyone if r.id in chosen]
    outside = [r for r in everyone if r.id not in chosen]
    items = _contrast_items(inside, outside) if inside else []
    return {
        "pipeline": pipeline,
        "inside": len(inside),
        "outside": len(outside),
        "sampled": truncated,
        "items": items[:limit],
        "reasons": _reason_contrast(inside, outside) if inside and outside else [],
    }


# --- trends ---------------------------------------------------------------------------

_BUCKET_UNITS = {"m": 60, "h": 3600, "d": 86400}
MAX_BUCKETS = 500
MAX_BUCKET = timedelta(days=366)
_TREND_STEPS = 20_000


def parse_bucket(text: str) -> timedelta:
    """``15m``, ``1h``, ``1d`` as a ``timedelta``; ``ValueError`` otherwise.

    Example:
        >>> parse_bucket("6h")
        datetime.timedelta(seconds=21600)
    """
    unit = text[-1:]
    if unit not in _BUCKET_UNITS or not text[:-1].isdigit() or int(text[:-1]) < 1:
        raise ValueError("use a whole number and a unit: 15m, 1h, 1d")
    size = timedelta(seconds=int(text[:-1]) * _BUCKET_UNITS[unit])
    if size > MAX_BUCKET:
        raise ValueError("at most 366d")
    return size


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def _floor(moment: datetime, size: timedelta) -> datetime:
    seconds = int((moment - _EPOCH).total_seconds())
    step = int(size.total_seconds())
    return _EPOCH + timedelta(seconds=seconds - seconds % step)


async def trends(
    session: AsyncSession,
    *,
    pipeline: str,
    step: str | None,
    bucket: timedelta,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """Per time bucket (by run start): runs, statuses; with ``step``, that step's
    elimination, rejection share and top reason shares.

    Example:
        >>> await trends(session, pipeline="support-answer", step="locale_filter",
        ...              bucket=parse_bucket("1h"))  # doctest: +SKIP
    """
    # Clamped to a range where bucket arithmetic cannot overflow a datetime.
    until = min(until or datetime.now(UTC), _LATEST)
    until = max(until, _EPOCH + bucket)
    since = max(since or until - bucket * 48, _EPOCH)
    if (until - since) / bucket > MAX_BUCKETS:
        since = until - bucket * MAX_BUCKETS
    runs = (
        await session.execute(
            select(RunRow.started_at, RunRow.status)
            .where(
                RunRow.pipeline == pipeline, RunRow.started_at >= since, RunRow.started_at <= until
            )
            .order_by(RunRow.started_at.desc())
            .limit(_TREND_STEPS)
        )
    ).all()
    buckets: dict[datetime, dict[str, Any]] = {}

    def slot(moment: datetime) -> dict[str, Any]:
        start = _floor(moment, bucket)
        entry = buckets.get(start)
        if entry is None:
            entry = buckets[start] = {
                "start": start,
                "runs": 0,
                "statuses": Counter(),
                "steps": 0,
                "input": 0,
                "output": 0,
                "rejected": Counter(),
            }
        return entry

    for started_at, status in runs:
        entry = slot(started_at)
        entry["runs"] += 1
        entry["statuses"][status] += 1
    truncated = len(runs) >= _TREND_STEPS
    if step is not None:
        rows = (
            await session.execute(
                select(
                    StepRow.run_started_at,
                    StepRow.input_count,
                    StepRow.output_count,
                    StepRow.reason_counts,
                )
                .where(
                    StepRow.pipeline == pipeline,
                    StepRow.name == step,
                    StepRow.run_started_at >= since,
                    StepRow.run_started_at <= until,
                )
                .order_by(StepRow.run_started_at.desc())
                .limit(_TREND_STEPS)
            )
        ).all()
        truncated = truncated or len(rows) >= _TREND_STEPS
        for started_at, input_count, output_count, reason_counts in rows:
            entry = slot(started_at)
            entry["steps"] += 1
            if input_count:
                entry["input"] += input_count
                entry["output"] += output_count or 0
                if isinstance(reason_counts, dict):
                    entry["rejected"].update({k: v for k, v in reason_counts.items() if v > 0})
    # Every bucket of the range, empty ones too, so a chart's x axis is time.
    moment = _floor(since, bucket)
    while moment <= until:
        slot(moment)
        moment += bucket
    items = []
    for start in sorted(buckets):
        entry = buckets[start]
        total_in = entry["input"]
        rejected: Counter[str] = entry["rejected"]
        items.append(
            {
                "start": start,
                "runs": entry["runs"],
                "statuses": dict(entry["statuses"]),
                "steps": entry["steps"],
                "elimination_rate": (
                    max(0.0, (total_in - entry["output"]) / total_in) if total_in else None
                ),
                "rejected_rate": (
                    min(1.0, sum(rejected.values()) / total_in) if total_in and rejected else None
                ),
                "reason_rates": {r: n / total_in for r, n in rejected.most_common(5) if total_in},
            }
        )
    return {
        "pipeline": pipeline,
        "step": step,
        "bucket_seconds": int(bucket.total_seconds()),
        "since": since,
        "until": until,
        "sampled": truncated,
        "items": items,
    }


# --- keys -----------------------------------------------------------------------------


async def pipeline_keys(
    session: AsyncSession, *, pipeline: str, sample: int = 1000
) -> dict[str, Any] | None:
    """The metadata keys, output fields and step parameters of a pipeline's newest runs,
    each with its most common values; ``None`` when the pipeline has no runs."""
    runs, truncated = await _sample(session, [RunRow.pipeline == pipeline], sample)
    if not runs:
        return None
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    firsts: dict[tuple[str, str], Any] = {}
    for run in runs:
        for name, value in _features(run).items():
            text = _text(value)
            counts[name][text] += 1
            firsts.setdefault((name, text), value)

    def entries(prefix: str) -> list[dict[str, Any]]:
        out = []
        for name in sorted(k for k in counts if k.startswith(prefix)):
            values = counts[name]
            out.append(
                {
                    "key": name,
                    "runs": sum(values.values()),
                    "distinct": len(values),
                    "values": [
                        {"value": _shown(firsts[(name, t)]), "runs": c}
                        for t, c in values.most_common(_TOP_VALUES)
                    ],
                }
            )
        return out

    return {
        "pipeline": pipeline,
        "runs": len(runs),
        "sampled": truncated,
        "metadata": entries("metadata."),
        "outputs": entries("output."),
        "params": entries("step."),
        "steps": list(_step_totals(runs)),
    }


# --- comparisons ----------------------------------------------------------------------

# How telling each kind of difference is; from _TELLING up, a difference is a change in
# kind (parameters, a whole input rejected, a new reason, another output), below it a
# change in degree (counts).
_WEIGHTS = {
    "params": 100.0,
    "rejected_all": 90.0,
    "new_reason": 80.0,
    "step_output": 70.0,
    "absent": 65.0,
    "status": 60.0,
    "reason_counts": 40.0,
    "counts": 30.0,
}
_TELLING = 50.0


def _pairs(
    a: list[StepSample], b: list[StepSample]
) -> list[tuple[StepSample | None, StepSample | None]]:
    """Steps paired by name and occurrence (the n-th ``price_filter`` of A with B's n-th),
    so a step only one side has shows as absent instead of shifting every row."""

    def keyed(steps: list[StepSample]) -> list[tuple[str, int]]:
        seen: Counter[str] = Counter()
        keys = []
        for s in steps:
            keys.append((s.name, seen[s.name]))
            seen[s.name] += 1
        return keys

    keys_a, keys_b = keyed(a), keyed(b)
    index_b = {key: i for i, key in enumerate(keys_b)}
    only_b = set(keys_b) - set(keys_a)
    pairs: list[tuple[StepSample | None, StepSample | None]] = []
    used: set[int] = set()
    next_b = 0
    for i, key in enumerate(keys_a):
        j = index_b.get(key)
        if j is None:
            pairs.append((a[i], None))
            continue
        for k in range(next_b, j):
            if k not in used and keys_b[k] in only_b:
                pairs.append((None, b[k]))
                used.add(k)
        pairs.append((a[i], b[j]))
        used.add(j)
        next_b = max(next_b, j + 1)
    pairs.extend((None, b[k]) for k in range(len(b)) if k not in used)
    return pairs


def _changes(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    keys = sorted(set(a) | set(b))
    return [{"key": k, "a": a.get(k), "b": b.get(k)} for k in keys if a.get(k) != b.get(k)]


def _side(step: StepSample | None) -> dict[str, Any] | None:
    if step is None:
        return None
    return {
        "id": step.id,
        "duration_ms": step.duration_ms,
        "candidates_recorded": step.candidates_recorded,
        "type": step.type,
        "input_count": step.input_count,
        "output_count": step.output_count,
        "elimination_rate": step.elimination_rate,
        "rejected_rate": step.rejected_rate,
        "readmitted": readmitted(step.input_count, step.output_count, step.reason_counts),
        "reason_counts": step.reason_counts,
        "params": step.params,
    }


def _count_change(a: int | None, b: int | None) -> float:
    if a is None or b is None or a == b:
        return 0.0
    return abs(a - b) / max(abs(a), abs(b), 1)


def _step_differences(
    position: int, name: str, sa: StepSample | None, sb: StepSample | None, outputs: bool
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def add(kind: str, text: str, weight: float) -> None:
        found.append(
            {"kind": kind, "step": name, "position": position, "text": text, "weight": weight}
        )

    if sa is None or sb is None:
        add("absent", f"{name} ran only in {'B' if sa is None else 'A'}", _WEIGHTS["absent"])
        return found
    for change in _changes(sa.params, sb.params):
        a_text, b_text = json.dumps(change["a"]), json.dumps(change["b"])
        add("params", f"{name}.params.{change['key']}: {a_text} → {b_text}", _WEIGHTS["params"])
    full_a = sa.rejected_rate is not None and sa.rejected_rate >= 1.0
    full_b = sb.rejected_rate is not None and sb.rejected_rate >= 1.0
    if full_a != full_b:
        add(
            "rejected_all",
            f"{name} rejected its whole input in {'A' if full_a else 'B'} only",
            _WEIGHTS["rejected_all"],
        )
    reasons = sorted(set(sa.reason_counts) | set(sb.reason_counts))
    for reason in reasons:
        ca, cb = sa.reason_counts.get(reason, 0), sb.reason_counts.get(reason, 0)
        if (ca == 0) != (cb == 0):
            add("new_reason", f"{name}: {reason} {ca:,} vs {cb:,}", _WEIGHTS["new_reason"])
        elif ca != cb:
            share = _count_change(ca, cb)
            if share >= _COUNT_NOISE:
                add(
                    "reason_counts",
                    f"{name}: {reason} {ca:,} vs {cb:,}",
                    _WEIGHTS["reason_counts"] * share,
                )
    if outputs and sa.output != sb.output and sa.output is not None and sb.output is not None:
        add("step_output", f"{name} output differs", _WEIGHTS["step_output"])
    moved = max(
        _count_change(sa.input_count, sb.input_count),
        _count_change(sa.output_count, sb.output_count),
    )
    if moved >= _COUNT_NOISE:
        add(
            "counts",
            f"{name}: {sa.input_count} → {sa.output_count} in A, "
            f"{sb.input_count} → {sb.output_count} in B",
            _WEIGHTS["counts"] * moved,
        )
    return found


async def compare_runs(
    session: AsyncSession, *, run_a: uuid.UUID, run_b: uuid.UUID
) -> dict[str, Any] | None:
    """Two runs step by step, with every difference ranked by how telling it is; ``None``
    when either run is unknown."""
    runs, _ = await _sample(session, [RunRow.id.in_([run_a, run_b])], 2, details=True)
    by_id = {r.id: r for r in runs}
    a, b = by_id.get(run_a), by_id.get(run_b)
    if a is None or b is None:
        return None
    steps = []
    differences: list[dict[str, Any]] = []
    for position, (sa, sb) in enumerate(_pairs(a.steps, b.steps), start=1):
        ref = sa or sb
        assert ref is not None
        found = _step_differences(position, ref.name, sa, sb, outputs=True)
        differences += found
        steps.append(
            {
                "position": position,
                "name": ref.name,
                "type": ref.type,
                "a": _side(sa),
                "b": _side(sb),
                "params": _changes(sa.params if sa else {}, sb.params if sb else {}),
                "reasoning": _either(sa.reasoning if sa else None, sb.reasoning if sb else None),
                "reason_counts": _reason_rows(sa, sb),
                "changed": sorted({d["kind"] for d in found}),
            }
        )
    if a.status != b.status:
        differences.append(
            {
                "kind": "status",
                "step": None,
                "position": 0,
                "text": f"status {a.status} vs {b.status}",
                "weight": _WEIGHTS["status"],
            }
        )
    if a.output != b.output:
        differences.append(
            {
                "kind": "output",
                "step": None,
                "position": len(steps) + 1,
                "text": "the runs' outputs differ",
                "weight": _WEIGHTS["step_output"] - 1,
            }
        )
    differences.sort(key=_rank)
    return {
        "a": _run_side(a),
        "b": _run_side(b),
        "metadata": _changes(a.metadata, b.metadata),
        "same_input": a.input == b.input,
        "same_output": a.output == b.output,
        "first_difference": differences[0] if differences else None,
        "differences": differences,
        "steps": steps,
    }


def _rank(difference: dict[str, Any]) -> tuple[int, float, float]:
    """Telling differences first, in pipeline order (a changed keyword list upstream
    explains the changed search parameters below it); count changes after, largest first."""
    if difference["weight"] >= _TELLING:
        return (0, difference["position"], -difference["weight"])
    return (1, -difference["weight"], difference["position"])


def _either(a: Any, b: Any) -> dict[str, Any] | None:
    return None if a == b else {"a": a, "b": b}


def _reason_rows(sa: StepSample | None, sb: StepSample | None) -> list[dict[str, Any]]:
    ra = sa.reason_counts if sa else {}
    rb = sb.reason_counts if sb else {}
    return [
        {"reason": r, "a": ra.get(r, 0), "b": rb.get(r, 0)}
        for r in sorted(set(ra) | set(rb), key=lambda r: (-(ra.get(r, 0) + rb.get(r, 0)), r))
    ]


def _run_side(run: RunSample) -> dict[str, Any]:
    return {
        "id": run.id,
        "pipeline": run.pipeline,
        "status": run.status,
        "started_at": run.started_at,
        "duration_ms": run.duration_ms,
        "metadata": run.metadata,
        "input": run.input,
        "output": run.output,
    }


async def compare_cohorts(
    session: AsyncSession,
    *,
    pipeline: str,
    a: tuple[GroupKey, str],
    b: tuple[GroupKey, str] | None,
    filters: RunFilters,
    sample: int = DEFAULT_SAMPLE,
) -> dict[str, Any]:
    """Two groups of a pipeline's runs (``b=None``: every other run) step by step: reason
    shares, constant params, median counts and outputs side by side, and the step and
    reason where they diverge most."""
    dialect = session.get_bind().dialect.name
    runs, truncated = await _sample(session, filters.conditions(dialect, pipeline), sample)

    def member(run: RunSample, side: tuple[GroupKey, str]) -> bool:
        value = side[0].of(run)
        return value is not _MISSING and _text(value) == side[1]

    group_a = [r for r in runs if member(r, a)]
    group_b = [r for r in runs if (member(r, b) if b else not member(r, a))]
    totals_a, totals_b = _step_totals(group_a), _step_totals(group_b)
    names = list(totals_a) + [n for n in totals_b if n not in totals_a]
    steps = []
    for position, name in enumerate(names, start=1):
        ta, tb = totals_a.get(name), totals_b.get(name)
        steps.append(
            {
                "position": position,
                "name": name,
                "a": ta.out() if ta else None,
                "b": tb.out() if tb else None,
            }
        )
    divergence = _divergence(_pool(totals_a), _pool(totals_b))
    return {
        "pipeline": pipeline,
        "a": {"label": f"{a[0]}={a[1]}", "runs": len(group_a), "outputs": _outputs(group_a)},
        "b": {
            "label": f"{b[0]}={b[1]}" if b else "rest",
            "runs": len(group_b),
            "outputs": _outputs(group_b),
        },
        "sampled": truncated,
        "first_divergence": divergence.out() if divergence else None,
        "steps": steps,
    }
