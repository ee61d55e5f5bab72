"""The dashboard's static shell: ``GET /`` and ``/static/*`` (no data, no key needed)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from starlette.staticfiles import StaticFiles

from xray.api.dashboard import STATIC_DIR
from xray.api.errors import APIError

__all__ = ["mount_dashboard", "router"]

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index() -> FileResponse:
    page = STATIC_DIR / "index.html"
    if not page.is_file():
        raise APIError(404, "the dashboard is not installed (no static/index.html)")
    return FileResponse(page, headers={"Cache-Control": "no-cache"})


def mount_dashboard(app: FastAPI) -> None:
    """Serve the dashboard; without its directory, ``/`` and ``/static`` answer 404."""
    app.include_router(router)
    # Without the directory (e.g. a trimmed install) /static/* simply matches nothing: 404.
    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
