"""The API's own description: ``/openapi.json``, ``/docs`` (Swagger UI) and ``/redoc``, public.

Public because it is the contract the bank's and other services' integrators build against
(``docs/bank-api.md`` sends them here), it holds no data and no secret, and hiding it would hide
nothing: every operation in it refuses a caller without its credentials before reading the request.

The pages' scripts, styles and icon are the ``fastapi-offline`` package's copies, served by the
gateway itself: the pages work on a network closed to the CDNs FastAPI's defaults load them from.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from workers.gateway.access import Public
from workers.gateway.edge import EdgeRoute

CONTRACT = Public("anyone: the API's description holds no data or secrets, and integrators build against it")
router = APIRouter(route_class=EdgeRoute, dependencies=[Depends(CONTRACT)], include_in_schema=False)
OPENAPI_URL = "/openapi.json"
ASSETS_URL = "/docs/assets"
ASSETS = Path(str(files("fastapi_offline") / "static"))
MEDIA = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


def _asset(path: Path) -> Callable[[], FileResponse]:
    def asset() -> FileResponse:
        return FileResponse(path, media_type=MEDIA[path.suffix], headers={"cache-control": "max-age=86400"})

    return asset


# One route per file (no path parameter: nothing else in the package's folder can be asked for).
for _path in sorted(ASSETS.iterdir()):
    if _path.suffix in MEDIA:
        router.add_api_route(f"{ASSETS_URL}/{_path.name}", _asset(_path), methods=["GET"], name=_path.name)


@router.get(OPENAPI_URL)
def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=OPENAPI_URL,
        title=f"{request.app.title} — Swagger UI",
        swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
    )


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(
        openapi_url=OPENAPI_URL,
        title=f"{request.app.title} — ReDoc",
        redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
        redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
        with_google_fonts=False,
    )
