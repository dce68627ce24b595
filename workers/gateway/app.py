"""``obmen gateway``: the FastAPI application."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from config.settings import get_settings
from tasks.machinery.outbox import set_dispatch_mode
from workers.gateway import acts, health, ops, payments, sep
from workers.gateway.console.app import install_console
from workers.gateway.limits import BodyLimit

ROUTERS = [health.router, ops.router, sep.router, payments.router, payments.ops_router, acts.router]


def create_app() -> FastAPI:
    # Publishing outbox rows needs the configured Celery app, not Celery's default one.
    import workers.app  # noqa: F401

    settings = get_settings()
    # An HTTP caller gets its answer once the commit is done; publishing happens beside it.
    set_dispatch_mode("background")
    # /docs and /redoc from assets obmen serves itself: the pages work on a network closed to CDNs.
    api = FastAPIOffline(
        title="obmen gateway",
        version="0.1.0",
        description="Bank, CRM and ops endpoints of obmen. Every endpoint but health is authenticated.",
    )
    for router in ROUTERS:
        api.include_router(router)
    install_console(api)
    api.add_middleware(BodyLimit, max_bytes=settings.max_request_body_bytes)
    return api
