"""The one error shape of the gateway: ``application/problem+json`` (RFC 9457).

Every refusal and failure answers ``{"type", "title", "status", "detail"}``; a validation problem
adds ``errors: [{"field", "message"}]``. ``type`` is a stable URN per kind of problem
(``urn:obmen:problem:validation`` …, listed in :data:`KINDS` and docs/api.md): callers switch on it,
never on the wording of ``detail``. Routes answer problems by raising ``HTTPException`` (or
``RequestValidationError``; :func:`invalid` turns a pydantic ``ValidationError`` into one); the
handlers installed by ``workers/gateway/edge.py`` render them, and an unhandled exception becomes a
500 problem that names the request id and nothing of the exception.

Paths under :data:`OWN_ERRORS` (the console's HTML pages) keep the answers of their own application.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from integrations.storable import ITEMS_LIMIT, escaped

MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:obmen:problem:"
# Paths whose application answers its own errors (an HTML console shows an HTML page).
OWN_ERRORS = ("/console",)

# status -> the kind of problem (the last part of ``type``); any other status is "about:blank".
KINDS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    410: "gone",
    413: "too-large",
    415: "unsupported-media-type",
    422: "validation",
    429: "rate-limited",
    500: "internal",
    503: "unavailable",
}
_LOCATIONS = {"body", "query", "path", "header", "cookie"}


def owns_errors(path: str) -> bool:
    """Whether the application under ``path`` answers its own errors (no problem document)."""
    return any(path == prefix or path.startswith(prefix + "/") for prefix in OWN_ERRORS)


def problem_type(status: int) -> str:
    kind = KINDS.get(status)
    return TYPE_PREFIX + kind if kind else "about:blank"


def document(status: int, detail: str | None = None, **extra: Any) -> dict[str, Any]:
    """The problem document of ``status``; ``extra`` members (``errors``, ``payment_id`` …) beside."""
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body: dict[str, Any] = {"type": problem_type(status), "title": title, "status": status}
    if detail is not None:
        body["detail"] = detail
    # The caller's own NUL or lone surrogate quoted back must not make the answer unsendable.
    return {**body, **escaped(extra)}


def problem(
    status: int, detail: str | None = None, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse(
        document(status, escaped(detail) if detail is not None else None, **extra),
        status_code=status,
        headers=headers,
        media_type=MEDIA_TYPE,
    )


def field_errors(errors: Sequence[Any]) -> list[dict[str, str]]:
    """pydantic/FastAPI errors as ``[{"field", "message"}]``: the field's dotted path without its
    location (``body``, ``query`` …), or the location itself when the whole of it is wrong."""
    found = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        path = loc[1:] if loc and loc[0] in _LOCATIONS else loc
        found.append({"field": ".".join(path) or (loc[0] if loc else "body"), "message": str(error["msg"])})
    return found


def invalid(exc: ValidationError, *within: str) -> RequestValidationError:
    """A model checked inside a route (its meaning, after the edge read it) failed: a 422 like the
    edge's. ``within``: where the model's input sits (``"body"`` unless said)."""
    prefix = within or ("body",)
    return RequestValidationError([{**error, "loc": (*prefix, *error["loc"])} for error in exc.errors()])


def unprocessable(field: str, message: str) -> RequestValidationError:
    """A 422 naming the one ``field`` a route found wrong."""
    return RequestValidationError([{"type": "value_error", "loc": (field,), "msg": message}])


def validation_problem(errors: Sequence[Any]) -> JSONResponse:
    # Within the items an escaped list keeps whole (beyond, it would end in a note, not an error).
    named = field_errors(errors)[:ITEMS_LIMIT]
    fields = ", ".join(dict.fromkeys(e["field"] for e in named))
    return problem(422, f"invalid request: {fields}", errors=named)


# The OpenAPI text of the shape (components/schemas) and the responses every route documents.
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details; `type` is stable per kind (docs/api.md#errors)",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "examples": [TYPE_PREFIX + "not-found"]},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
    },
}
VALIDATION_SCHEMA: dict[str, Any] = {
    "allOf": [
        {"$ref": "#/components/schemas/Problem"},
        {
            "type": "object",
            "required": ["errors"],
            "properties": {
                "errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["field", "message"],
                        "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                    },
                }
            },
        },
    ]
}
SCHEMAS = {"Problem": PROBLEM_SCHEMA, "ValidationProblem": VALIDATION_SCHEMA}


def _content(schema: str) -> dict[str, Any]:
    return {MEDIA_TYPE: {"schema": {"$ref": f"#/components/schemas/{schema}"}}}


def responses(statuses: Sequence[int], documented: dict[int | str, Any]) -> dict[int | str, Any]:
    """``documented`` (a route's own ``responses=``) with a problem for its error statuses and
    ``statuses``, and the ``default`` problem: any other error status answers the same shape."""
    merged: dict[int | str, Any] = {}
    for key, entry in documented.items():
        merged[int(key) if str(key).isdigit() else key] = entry
    errors = [key for key in merged if isinstance(key, int) and key >= 400]
    keys: list[int | str] = [*dict.fromkeys([*errors, *statuses]), "default"]
    for status in keys:
        entry = dict(merged.get(status) or {})
        entry.setdefault("description", HTTPStatus(status).phrase if isinstance(status, int) else "Error")
        # An answer a route documents as another media type (OSMP's XML) keeps it.
        if "content" not in entry:
            entry["content"] = _content("ValidationProblem" if status == 422 else "Problem")
        merged[status] = entry
    return merged
