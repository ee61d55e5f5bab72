"""What the services refuse, in domain terms; ``xray.api.errors`` maps these to HTTP."""

from __future__ import annotations

__all__ = ["InvalidInputError", "NotFoundError", "ServiceError"]


class ServiceError(Exception):
    """A request the service cannot carry out; nothing was written."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFoundError(ServiceError):
    """Something the request refers to does not exist (e.g. a step's run)."""


class InvalidInputError(ServiceError):
    """A value the models accept but the operation cannot use; ``field`` names it."""
