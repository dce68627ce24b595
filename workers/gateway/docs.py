"""The API's own description: ``/openapi.json``, ``/docs`` (Swagger UI) and ``/redoc``, public.

Public because it is the contract the bank's and other services' integrators build against
(``docs/bank-api.md`` sends them here), it holds no data and no secret, and hiding it would hide
nothing: every operation in it refuses a caller without its credentials before reading the request.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from workers.gateway.access import Public
from workers.gateway.edge import EdgeRoute

CONTRACT = Public("anyone: the API's description holds no data or secrets, and integrators build against it")
router = APIRouter(route_class=EdgeRoute, dependencies=[Depends(CONTRACT)], include_in_schema=False)
OPENAPI_URL = "/openapi.json"


@router.get(OPENAPI_URL)
def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url=OPENAPI_URL, title=f"{request.app.title} — Swagger UI")


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(openapi_url=OPENAPI_URL, title=f"{request.app.title} — ReDoc")
