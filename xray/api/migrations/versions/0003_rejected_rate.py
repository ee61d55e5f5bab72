"""steps.rejected_rate (rejected / input, from reason_counts) and the index that serves
per-pipeline, per-step questions over time (groups, trends, reason filters).

Revision ID: 0003
Revises: 0001
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("steps", sa.Column("rejected_rate", sa.Float(), nullable=True))
    # Rows written before this column existed: same formula as ingest, capped at 1.
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(
            """
            UPDATE steps SET rejected_rate = LEAST(1.0, sums.rejected / steps.input_count)
            FROM (
                SELECT s.id, SUM(GREATEST(v.value::numeric, 0))::float AS rejected
                FROM steps s, jsonb_each_text(s.reason_counts) v
                GROUP BY s.id
            ) sums
            WHERE sums.id = steps.id AND steps.input_count > 0 AND sums.rejected > 0
            """
        )
    else:
        op.execute(
            """
            UPDATE steps SET rejected_rate = MIN(1.0, (
                SELECT SUM(MAX(CAST(value AS REAL), 0)) FROM json_each(steps.reason_counts)
            ) / input_count)
            WHERE input_count > 0 AND (
                SELECT SUM(MAX(CAST(value AS REAL), 0)) FROM json_each(steps.reason_counts)
            ) > 0
            """
        )
    op.create_index(
        "ix_steps_pipeline_name_run_started", "steps", ["pipeline", "name", "run_started_at"]
    )
    op.create_index("ix_steps_type_rejected", "steps", ["type", "rejected_rate", "run_id"])
    # "runs of P where a step rejected at least x of its input", answered from the index.
    op.create_index("ix_steps_pipeline_rejected", "steps", ["pipeline", "rejected_rate", "run_id"])


def downgrade() -> None:
    op.drop_index("ix_steps_pipeline_rejected", "steps")
    op.drop_index("ix_steps_type_rejected", "steps")
    op.drop_index("ix_steps_pipeline_name_run_started", "steps")
    op.drop_column("steps", "rejected_rate")
