"""Alembic migrations, run programmatically (no alembic.ini) so they work when installed."""
