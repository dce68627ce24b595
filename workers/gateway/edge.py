"""The gateway's edge: every route admits by its access rule first and takes only edge-typed parameters.

:class:`EdgeRoute` is the route class of every router (``APIRouter(route_class=EdgeRoute)``). Building
one fails unless the route declares exactly one access rule (``workers/gateway/access.py``) and
every parameter is an edge type (``workers/gateway/params.py``). At request time it admits the
request by the rule before FastAPI reads the body or parses a parameter, and reads a JSON body
with one meaning (a repeated key, ``NaN``, a number of 5,000 digits are a 422).
An application mounted whole that checks its callers on each page itself is an
:class:`EdgeMount` declaring the rule its callers pass. :func:`install` checks the built app
(:func:`audit`: every route it serves is an ``EdgeRoute`` that kept its rule, or an ``EdgeMount``) and
answers every refusal and failure as a problem document (``workers/gateway/problems.py``), documented
on every route: an error that quotes the caller's own NUL or lone surrogate back is escaped, never a
500 of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_flat_params
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.exceptions import HTTPException
from starlette.routing import Mount
from starlette.types import ASGIApp

from integrations import strictjson
from workers.gateway import problems
from workers.gateway.access import Access, media_type
from workers.gateway.access_log import REQUEST_ID_HEADER, REQUEST_ID_SCOPE_KEY
from workers.gateway.params import unbounded

log = structlog.get_logger(__name__)


class EdgeRuleBroken(Exception):
    """A route that would let a request past the edge unchecked; raised when the app is built."""


def _accesses(dependant: Dependant) -> Iterator[Access]:
    for dependency in dependant.dependencies:
        if isinstance(dependency.call, Access):
            yield dependency.call
        yield from _accesses(dependency)


def _unbounded_params(dependant: Dependant) -> Iterator[str]:
    for where, fields in (
        ("path", dependant.path_params),
        ("query", dependant.query_params),
        ("header", dependant.header_params),
        ("cookie", dependant.cookie_params),
        ("body", dependant.body_params),
    ):
        for field in fields:
            why = unbounded(field.field_info.annotation, field.field_info.metadata)
            if why:
                yield f"{where} parameter {field.name!r}: {why}"
    for dependency in dependant.dependencies:
        yield from _unbounded_params(dependency)


def _is_json(request: Request) -> bool:
    kind = media_type(request)
    return kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))


class EdgeRoute(APIRoute):
    """A route of the gateway: one access rule, checked first; only edge-typed parameters."""

    access: Access

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        where = f"{sorted(self.methods or [])} {path}"
        rules = list(dict.fromkeys(_accesses(self.dependant)))
        if len(rules) != 1:
            raise EdgeRuleBroken(
                f"{where} declares {len(rules)} access rules; give it exactly one "
                "(workers/gateway/access.py: Public, ApiToken, BankSignature, …)"
            )
        breaches = list(_unbounded_params(self.dependant))
        if breaches:
            raise EdgeRuleBroken(f"{where}: " + "; ".join(breaches))
        self.access = rules[0]
        self.openapi_extra = {**(self.openapi_extra or {}), **self.access.openapi()}
        takes_input = self.body_field is not None or bool(get_flat_params(self.dependant))
        self.responses = problems.responses(
            [*self.access.refusals, *([422] if takes_input else [])], self.responses
        )

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def admitted(request: Request) -> Response:
            await self.access.admit(request)
            if self.body_field is not None and _is_json(request):
                try:
                    strictjson.loads(await request.body())
                except ValueError as exc:  # json.JSONDecodeError
                    raise RequestValidationError(
                        [
                            {
                                "type": "json_invalid",
                                "loc": ("body",),
                                "msg": "JSON decode error",
                                "input": {},
                                "ctx": {"error": str(exc)},
                            }
                        ]
                    ) from exc
            return await handler(request)

        return admitted


class EdgeMount(Mount):
    """An application mounted whole that checks its own callers, declared with who they are (``access``)."""

    def __init__(self, path: str, app: ASGIApp, access: Access, name: str | None = None) -> None:
        super().__init__(path, app=app, name=name)
        self.access = access


def audit(app: FastAPI) -> list[str]:
    """What in ``app`` breaks the edge rule: a route that is no ``EdgeRoute``, a rule lost on inclusion."""
    problems = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        where = f"{sorted(context.methods or [])} {context.path}"
        if isinstance(route, EdgeMount):
            continue
        if not isinstance(route, EdgeRoute):
            problems.append(
                f"{where} is a {type(route).__name__}, not an EdgeRoute (workers/gateway/edge.py)"
            )
            continue
        rules = set(_accesses(context.dependant))
        if rules != {route.access}:
            problems.append(f"{where}: access rules {len(rules)} after inclusion; declare them on the router")
    return problems


async def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if problems.owns_errors(request.url.path):
        return await request_validation_exception_handler(request, exc)
    return problems.validation_problem(exc.errors())


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if problems.owns_errors(request.url.path):
        return await http_exception_handler(request, exc)
    detail = exc.detail if isinstance(exc.detail, str) else None
    if exc.status_code == 422:
        # A route's refusal of the request's content as a whole (e.g. a register rule it broke), in
        # one message or several.
        said = exc.detail if isinstance(exc.detail, list) and exc.detail else [detail or "invalid request"]
        return problems.validation_problem([{"loc": ("body",), "msg": message} for message in said])
    return problems.problem(exc.status_code, detail, exc.headers)


async def _failed(request: Request, exc: Exception) -> Response:
    """An unhandled exception: the traceback goes to the log under the request id, never to the caller."""
    request_id = request.scope.get(REQUEST_ID_SCOPE_KEY)
    # Outside the access log's middleware: its context is gone, so the id is named here.
    log.error("gateway.unhandled", request_id=request_id, method=request.method, exc_info=exc)
    headers = {REQUEST_ID_HEADER: request_id} if request_id else None
    if problems.owns_errors(request.url.path):
        return PlainTextResponse("Internal Server Error", 500, headers=headers)
    detail = "an unexpected error; the request id names it in obmen's log"
    return problems.problem(500, detail, headers, request_id=request_id)


def install(app: FastAPI) -> None:
    """Check ``app`` against the edge rule (``EdgeRuleBroken`` naming every breach) and set its error answers."""
    breaches = audit(app)
    if breaches:
        raise EdgeRuleBroken("the gateway's edge rule is broken:\n" + "\n".join(breaches))
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(HTTPException, _refused)
    app.add_exception_handler(Exception, _failed)
