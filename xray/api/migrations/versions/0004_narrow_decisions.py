"""Narrower decisions; run metadata as key/value rows; statistics kept current.

``decisions`` keeps only what is its own: the step's identity (pipeline, run, name, type,
seq, start) is read from ``steps`` by ``step_id`` (one primary-key probe per row shown),
the decision is a small integer code (``xray.api.db.models.DECISION_CODES``) and
``attributes`` is stored as JSON text (the server never looks inside it). On PostgreSQL the
primary key is ``(step_id, seq)`` (the index every step's list reads anyway) instead of a
separate index on ``id``, and retention's range on ``run_started_at`` is a BRIN index
(rows arrive in time order), so the per-row indexes are the step's and the candidate's.

On SQLite, ``run_metadata`` holds one row per run and scalar metadata value, so
``metadata.<key>=<value>`` is an index lookup instead of reading every run's JSON
(PostgreSQL answers it from the GIN index on ``runs.metadata`` and has no such table).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The same codes as xray.api.db.models.DECISION_CODES, spelled here so this migration
# keeps meaning what it meant when the codes change.
_CODES = (("accepted", 1), ("rejected", 2), ("selected", 3), ("scored", 4))


def _code_case(column: str) -> str:
    whens = " ".join(f"WHEN '{name}' THEN {code}" for name, code in _CODES)
    return f"CASE {column} {whens} END"


def _name_case(column: str) -> str:
    whens = " ".join(f"WHEN {code} THEN '{name}'" for name, code in _CODES)
    return f"CASE {column} {whens} END"


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    # Fixed-width columns first: PostgreSQL aligns each to its size, so this order
    # leaves no padding between them.
    columns: list[sa.Column[object]] = [
        sa.Column("id", big_id, primary_key=not postgres, autoincrement=True, nullable=False),
        sa.Column("run_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("rank", sa.BigInteger(), nullable=True),
        sa.Column("step_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("decision", sa.SmallInteger(), nullable=False),
        sa.Column("candidate_key", sa.String(512), nullable=False),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.Column("attributes", sa.JSON(), nullable=False),
    ]
    if postgres:
        op.execute("CREATE SEQUENCE decisions_narrow_id_seq")
        columns[0] = sa.Column(
            "id",
            sa.BigInteger(),
            sa.Sequence("decisions_narrow_id_seq"),
            server_default=sa.text("nextval('decisions_narrow_id_seq')"),
            nullable=False,
        )
    op.create_table("decisions_narrow", *columns)
    op.execute(
        "INSERT INTO decisions_narrow (id, run_started_at, score, rank, step_id, seq, decision, "  # noqa: S608 (constants only)
        "candidate_key, reason, attributes) "
        "SELECT id, run_started_at, score, rank, step_id, seq, "
        f"{_code_case('decision')}, candidate_key, reason, "
        + ("attributes::json" if postgres else "attributes")
        + " FROM decisions"
    )
    op.drop_table("decisions")
    op.rename_table("decisions_narrow", "decisions")
    if postgres:
        op.execute(
            "SELECT setval('decisions_narrow_id_seq', "
            "coalesce((SELECT max(id) FROM decisions), 0) + 1, false)"
        )
        op.execute("ALTER SEQUENCE decisions_narrow_id_seq RENAME TO decisions_id_seq")
        op.execute("ALTER SEQUENCE decisions_id_seq OWNED BY decisions.id")
        op.execute("ALTER TABLE decisions ALTER COLUMN id SET DEFAULT nextval('decisions_id_seq')")
        op.create_primary_key("pk_decisions", "decisions", ["step_id", "seq"])
        op.create_index(
            "ix_decisions_run_started", "decisions", ["run_started_at"], postgresql_using="brin"
        )
    else:
        op.create_index("ux_decisions_step_seq", "decisions", ["step_id", "seq"], unique=True)
        op.create_index("ix_decisions_run_started", "decisions", ["run_started_at"])
    # One candidate, newest run first; the run and step order come from steps.
    op.create_index("ix_decisions_candidate", "decisions", ["candidate_key", "run_started_at"])

    if not postgres:
        # A JSON value keeps its SQLite type in `atom` (no declared type: no affinity), so
        # 7 and "7" stay apart and numbers compare as numbers, as with json_each.
        op.execute(
            "CREATE TABLE run_metadata (run_id CHAR(32) NOT NULL, key VARCHAR(200) NOT NULL, "
            "type VARCHAR(8) NOT NULL, atom, PRIMARY KEY (run_id, key)) WITHOUT ROWID"
        )
        op.execute("CREATE INDEX ix_run_metadata_key_atom ON run_metadata (key, atom)")
        op.execute(
            "INSERT INTO run_metadata (run_id, key, type, atom) "
            "SELECT runs.id, e.key, e.type, e.atom FROM runs, json_each(runs.metadata) AS e "
            "WHERE e.type NOT IN ('object', 'array')"
        )
        op.execute("ANALYZE")


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if not postgres:
        op.drop_table("run_metadata")
    op.drop_index("ix_decisions_candidate", "decisions")
    op.drop_index("ix_decisions_run_started", "decisions")
    op.rename_table("decisions", "decisions_narrow")
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    json = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")
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
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("candidate_key", sa.String(512), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("rank", sa.BigInteger(), nullable=True),
        sa.Column("attributes", json, nullable=False),
    )
    op.execute(
        "INSERT INTO decisions (id, step_id, seq, run_id, pipeline, step_name, step_type, "  # noqa: S608 (constants only)
        "step_seq, started_at, run_started_at, candidate_key, decision, reason, score, rank, "
        "attributes) SELECT d.id, d.step_id, d.seq, s.run_id, s.pipeline, s.name, s.type, "
        f"s.seq, s.started_at, d.run_started_at, d.candidate_key, {_name_case('d.decision')}, "
        "d.reason, d.score, d.rank, "
        + ("d.attributes::jsonb" if postgres else "d.attributes")
        + " FROM decisions_narrow d JOIN steps s ON s.id = d.step_id"
    )
    op.drop_table("decisions_narrow")
    if postgres:
        op.execute(
            "SELECT setval(pg_get_serial_sequence('decisions', 'id'), "
            "coalesce((SELECT max(id) FROM decisions), 0) + 1, false)"
        )
    op.create_index("ux_decisions_step_seq", "decisions", ["step_id", "seq"], unique=True)
    op.create_index(
        "ix_decisions_candidate", "decisions", ["candidate_key", "run_started_at", "run_id"]
    )
    op.create_index("ix_decisions_run_started", "decisions", ["run_started_at"])
