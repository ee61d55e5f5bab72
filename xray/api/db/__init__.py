"""Storage: the SQLAlchemy models and the async engine/session factory."""
