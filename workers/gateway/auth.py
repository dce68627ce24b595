"""Bearer tokens with scopes for ops and manager endpoints (``OBMEN_API_TOKENS``).

``Depends(require("read"))`` on a router or a route is its access rule (``workers/gateway/access.py``):
401 without a valid token, 403 with too little scope, checked before the request is read.
"""

from __future__ import annotations

from functools import cache

from workers.gateway.access import ApiToken

WHO = {
    "read": "ops people, dashboards and other services with a read token",
    "write": "ops people and managers' tools with a write token",
    "metrics": "the Prometheus scraper (a metrics, read or write token)",
}


@cache
def require(scope: str) -> ApiToken:
    """The access rule of a token with ``scope`` (one object per scope)."""
    return ApiToken(scope, WHO.get(scope, f"services holding a token with the {scope!r} scope"))
