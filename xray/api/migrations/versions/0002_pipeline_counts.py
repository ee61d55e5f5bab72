"""pipelines counts kept at ingest; a finer statistics target for runs.metadata

``GET /pipelines`` reads the small ``pipelines`` table instead of grouping every run.

On PostgreSQL, ``metadata @> ...`` is estimated from the column's histogram of sampled
documents, and a value found in none of them is estimated at 1 / (histogram size) of the
runs: 1% at the default target, enough for the planner to prefer walking ``started_at``
backwards and filtering (every run read when the value is rare) over the GIN index. A
target of 1000 makes that floor 0.1%: rare values use the GIN index, common ones the
ordered walk, after any ANALYZE, for a planning cost of about a millisecond.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pipelines",
        sa.Column("pipeline", sa.String(200), primary_key=True),
        sa.Column("run_count", sa.BigInteger(), nullable=False),
        sa.Column("last_started_at", sa.DateTime(timezone=True), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE runs ALTER COLUMN metadata SET STATISTICS 1000")
        op.execute("ANALYZE runs")
    op.execute(
        "INSERT INTO pipelines (pipeline, run_count, last_started_at) "
        "SELECT pipeline, count(*), max(started_at) FROM runs GROUP BY pipeline"
    )


def downgrade() -> None:
    op.drop_table("pipelines")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE runs ALTER COLUMN metadata SET STATISTICS -1")
