"""Liveness, readiness and Prometheus metrics (including figures read from the registers).

``/healthz`` and ``/readyz`` are public: orchestrators and load balancers probe them without
credentials, and they say only up or down (why a check failed goes to the log). ``/metrics`` shows
business volumes (payments posted, acts by status) and needs a token with the ``metrics`` scope.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import structlog
from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import text

from models.db import session_scope
from models.gauges import GAUGES
from tasks.machinery.policy import describe
from workers.gateway.access import AUTH_FAILURES, Public
from workers.gateway.auth import require
from workers.gateway.edge import EdgeRoute

log = structlog.get_logger(__name__)

PROBE = Public(
    "anyone: liveness and readiness probes carry no credentials, and the answer is only up or down"
)
router = APIRouter(tags=["health"], route_class=EdgeRoute)


def _check_database() -> str:
    with session_scope() as session:
        session.execute(text("SELECT 1"))
    return "ok"


def _check_broker() -> str:
    from workers.app import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        if conn.transport_cls in ("redis", "rediss"):
            cast(Any, conn.default_channel).client.ping()
    return "ok"


@router.get("/healthz", dependencies=[Depends(PROBE)])
def healthz() -> dict[str, str]:
    """The process is up (no dependencies checked)."""
    return {"status": "ok"}


@router.get("/readyz", dependencies=[Depends(PROBE)])
def readyz() -> JSONResponse:
    """Ready when the register store and the broker both answer (why not is in the log)."""
    checks: dict[str, str] = {}
    for name, check in (("database", _check_database), ("broker", _check_broker)):
        try:
            checks[name] = check()
        except Exception as exc:
            log.warning("gateway.not_ready", check=name, error=describe(exc)[:300])
            checks[name] = "unavailable"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


class RegisterCollector:
    """Runs every registered gauge query at scrape time, in one read-only transaction."""

    def collect(self) -> Iterator[Any]:
        with session_scope() as session:
            for gauge in GAUGES:
                family = GaugeMetricFamily(gauge.name, gauge.help, labels=list(gauge.labels))
                for labels, value in gauge.collect(session):
                    family.add_metric([labels[k] for k in gauge.labels], float(value))
                yield family


_registry = CollectorRegistry()
_registry.register(RegisterCollector())
_registry.register(AUTH_FAILURES)


@router.get("/metrics", dependencies=[Depends(require("metrics"))])
def metrics() -> Response:
    return Response(generate_latest(_registry), media_type=CONTENT_TYPE_LATEST)
