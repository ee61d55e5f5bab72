"""pipelines: each pipeline's run count and latest start, kept at ingest.

``GET /pipelines`` reads this small table instead of grouping every run.

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
    op.execute(
        "INSERT INTO pipelines (pipeline, run_count, last_started_at) "
        "SELECT pipeline, count(*), max(started_at) FROM runs GROUP BY pipeline"
    )


def downgrade() -> None:
    op.drop_table("pipelines")
