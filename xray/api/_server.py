"""``serve()``: run the API with uvicorn, as ``python -m xray.api`` and ``xray serve`` do."""

from __future__ import annotations

from xray.shared import APIConfig

__all__ = ["serve"]


def serve(config: APIConfig) -> None:
    """Serve until interrupted (blocking); SIGTERM/Ctrl-C shut down gracefully.

    Example:
        >>> serve(APIConfig(port=8000))  # doctest: +SKIP
    """
    import uvicorn

    from xray.api._app import create_app

    uvicorn.run(
        create_app(config),
        host=config.host,
        port=config.port,
        log_level="debug" if config.debug else "info",
        # Keep-alive a little longer than typical SDK flush intervals.
        timeout_keep_alive=10,
    )
