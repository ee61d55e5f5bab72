"""runs, steps, decisions and api_keys, with the indexes the query endpoints need.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from xray.api.db.models import json_type

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _json(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, json_type(), nullable=nullable)


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "runs",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("pipeline", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _ts("started_at"),
        _ts("ended_at", nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        _json("input", nullable=True),
        _json("output", nullable=True),
        _json("metadata"),
        _json("error", nullable=True),
        _json("sdk"),
        _ts("received_at"),
    )
    op.create_table(
        "steps",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("parent_id", sa.Uuid(), nullable=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("pipeline", sa.String(200), nullable=False),
        _ts("run_started_at"),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _ts("started_at"),
        _ts("ended_at", nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.Column("input_count", sa.BigInteger(), nullable=True),
        sa.Column("output_count", sa.BigInteger(), nullable=True),
        sa.Column("elimination_rate", sa.Float(), nullable=True),
        _json("params"),
        sa.Column("reasoning", sa.Text(), nullable=True),
        _json("reason_counts"),
        _json("input", nullable=True),
        _json("output", nullable=True),
        _json("metadata"),
        _json("error", nullable=True),
        sa.Column("detail", sa.String(16), nullable=False),
        sa.Column("candidates_total", sa.BigInteger(), nullable=True),
        sa.Column("candidates_recorded", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "decisions",
        sa.Column("id", big_id, primary_key=True, autoincrement=True),
        sa.Column("step_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("pipeline", sa.String(200), nullable=False),
        sa.Column("step_name", sa.String(200), nullable=False),
        sa.Column("step_type", sa.String(16), nullable=False),
        sa.Column("step_seq", sa.BigInteger(), nullable=False),
        _ts("started_at"),
        _ts("run_started_at"),
        sa.Column("candidate_key", sa.String(512), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("rank", sa.BigInteger(), nullable=True),
        _json("attributes"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        _ts("created_at"),
        _ts("revoked_at", nullable=True),
    )

    # runs: GET /runs orders by (started_at, id) desc, optionally per pipeline or status;
    # GET /pipelines groups by pipeline (index-only scan of the pipeline index).
    op.create_index("ix_runs_started", "runs", ["started_at", "id"])
    op.create_index("ix_runs_pipeline_started", "runs", ["pipeline", "started_at", "id"])
    op.create_index("ix_runs_status_started", "runs", ["status", "started_at", "id"])

    # steps: the cross-pipeline question (type + elimination rate; run_id included so
    # "runs having such a step" is answered from the index alone), time-ordered lists per
    # pipeline / type / name, and a run's steps in order (GET /runs/{id}, step_count).
    op.create_index("ix_steps_type_rate", "steps", ["type", "elimination_rate", "run_id"])
    op.create_index("ix_steps_started", "steps", ["started_at", "id"])
    op.create_index("ix_steps_pipeline_started", "steps", ["pipeline", "started_at", "id"])
    op.create_index("ix_steps_type_started", "steps", ["type", "started_at", "id"])
    op.create_index("ix_steps_name_started", "steps", ["name", "started_at", "id"])
    op.create_index("ix_steps_run_seq", "steps", ["run_id", "seq"])
    op.create_index("ix_steps_run_started", "steps", ["run_started_at"])

    # decisions: a step's decisions in recorded order (also the idempotency key of a
    # re-sent step's set), one candidate across runs, and retention by run start.
    op.create_index("ux_decisions_step_seq", "decisions", ["step_id", "seq"], unique=True)
    op.create_index(
        "ix_decisions_candidate", "decisions", ["candidate_key", "run_started_at", "run_id"]
    )
    op.create_index("ix_decisions_run_started", "decisions", ["run_started_at"])

    if op.get_bind().dialect.name == "postgresql":
        # metadata.<key>=<value> is answered with `metadata @> {...}`, which this serves.
        op.create_index(
            "ix_runs_metadata",
            "runs",
            ["metadata"],
            postgresql_using="gin",
            postgresql_ops={"metadata": "jsonb_path_ops"},
        )


def downgrade() -> None:
    for table in ("api_keys", "decisions", "steps", "runs"):
        op.drop_table(table)
