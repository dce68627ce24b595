"""``obmen gateway``: the FastAPI application."""

from __future__ import annotations

import gc
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import iter_route_contexts

from config.settings import get_settings
from tasks.machinery.outbox import set_dispatch_mode
from workers.gateway import acts, billing, docs, edo, health, invoices, ops, payments, problems, sep
from workers.gateway.access_log import AccessLog
from workers.gateway.console import app as console
from workers.gateway.edge import EdgeRoute, install
from workers.gateway.limits import BodyLimit

ROUTERS = [
    docs.router,
    health.router,
    ops.router,
    sep.router,
    sep.actions,
    billing.router,
    billing.read_router,
    payments.router,
    payments.ops_router,
    acts.router,
    invoices.router,
    edo.router,
]
DESCRIPTION = """Bank, CRM and ops endpoints of obmen.

Who may call an operation is its `security` and its `x-obmen-access`, checked before the request is
read: a bearer token from OBMEN_API_TOKENS with a scope (`api_token`: read, write, metrics, invoices, cabinet), the
bank's HMAC signature (`bank_signature`), the Bitrix24 portal's application token in the event's form
(`bitrix24_application_token`), the token of a form link (`form_link`), or anyone (`public`, with
`security: []`: the health probes and this description). docs/operations.md says why each public
operation is public."""


def _openapi(api: FastAPI) -> dict[str, Any]:
    if api.openapi_schema is None:
        schema = get_openapi(
            title=api.title, version=api.version, description=api.description, routes=api.routes
        )
        schemes = {
            route.access.kind: route.access.scheme
            for context in iter_route_contexts(api.routes)
            if isinstance(route := context.original_route, EdgeRoute) and route.access.scheme
        }
        components = schema.setdefault("components", {})
        components["securitySchemes"] = schemes
        components.setdefault("schemas", {}).update(problems.SCHEMAS)
        api.openapi_schema = schema
    return api.openapi_schema


def gateway_api() -> FastAPI:
    """The routes, checked against the edge rule, and their OpenAPI text (no settings read, no side effects)."""
    # FastAPI's own /openapi.json, /docs and /redoc are replaced by docs.router: routes with an access rule.
    api = FastAPI(
        title="obmen gateway",
        version="0.1.0",
        description=DESCRIPTION,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    for router in ROUTERS:
        api.include_router(router)
    for router in console.routers():
        api.include_router(router, prefix=console.PREFIX)
    install(api)
    api.openapi = lambda: _openapi(api)  # type: ignore[method-assign]
    return api


def create_app() -> FastAPI:
    # Publishing outbox rows needs the configured Celery app, not Celery's default one.
    import workers.app  # noqa: F401

    settings = get_settings()
    # An HTTP caller gets its answer once the commit is done; publishing happens beside it.
    set_dispatch_mode("background")
    api = gateway_api()
    console.install_console(api)
    api.add_middleware(
        BodyLimit,
        max_bytes=settings.max_request_body_bytes,
        uploads={edo.UPLOADS: settings.edo_max_upload_bytes},
    )
    # Outside the body limit: a refused body is logged and answered with the request id too.
    api.add_middleware(AccessLog)
    # What is built so far (the app, its routes, models and schemas) lives as long as the process:
    # frozen out of the collector's view, a full collection no longer walks it (such collections
    # took the accept's p99 from 84 to 371 ms under load). Once: a test process builds many apps.
    if gc.get_freeze_count() == 0:
        gc.freeze()
    return api
