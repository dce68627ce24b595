"""What a gateway parameter may hold, decided once for every route: the edge types.

Every path, query, header, cookie, form and JSON-body parameter of every route is one of these
types (or ``bool``, a ``Literal``, an ``Enum``, a list of them with a ``max_length``, or a model of
them): :class:`EdgeRoute
<workers.gateway.edge.EdgeRoute>` refuses to build a route with any other, so no handler ever sees
a negative ``limit``, an id beyond 64 bits, a NUL, a lone surrogate or an unbounded text, and none
can turn one into a 500. Each refusal is a 422 naming the parameter. The rules of what the register
store can hold are ``integrations/storable.py``'s, shared with task arguments.

    Id       a row or business id: ASCII digits (or a JSON integer), 1 … 2**63-1
    Limit    a page size: 0 … MAX_LIMIT            Offset   rows to skip: 0 … MAX_OFFSET
    Text     a filter, a code, a name: ≤ 200 characters, storable
    Note     a person's free text: ≤ 2000 characters, storable
    Day      a calendar date, 1900-01-01 … 2999-12-31
    Attachment  an uploaded file whose name is storable and ≤ 255 characters

A type of another size is ``Annotated[str, Chars(500)]``, ``Annotated[int, Digits(0, 100)]``.
"""

from __future__ import annotations

import re
import types
from dataclasses import dataclass
from datetime import date
from enum import Enum
from inspect import isclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from annotated_types import MaxLen
from fastapi import UploadFile
from pydantic import BaseModel, GetCoreSchemaHandler
from pydantic_core import core_schema

from integrations.storable import BIGINT_MAX, storable_text

MAX_LIMIT = 1000
MAX_OFFSET = 1_000_000
_ASCII_DIGITS = re.compile(r"[0-9]{1,20}")


class Edge:
    """The mark of a type bounded at the edge (what the route rule looks for)."""


@dataclass(frozen=True)
class Digits(Edge):
    """An integer in ``[ge, le]``, written in ASCII digits (a sign, spaces, ``_``, ``١٢`` are refused)."""

    ge: int
    le: int

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(
            self._digits, core_schema.int_schema(ge=self.ge, le=self.le, strict=True)
        )

    @staticmethod
    def _digits(value: Any) -> Any:
        if isinstance(value, str):
            if not _ASCII_DIGITS.fullmatch(value):
                raise ValueError("must be written in ASCII digits 0-9, at most 20 of them")
            return int(value)
        return value  # a JSON integer; the strict integer schema refuses true, 1.5 and "1"-like objects


@dataclass(frozen=True)
class Chars(Edge):
    """Text of at most ``max_length`` characters that the register store can hold."""

    max_length: int
    min_length: int = 0

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(
            storable_text,
            core_schema.str_schema(min_length=self.min_length, max_length=self.max_length, strict=True),
        )


@dataclass(frozen=True)
class Days(Edge):
    """A calendar date within ``[earliest, latest]`` (no date arithmetic near the ends can overflow)."""

    earliest: date = date(1900, 1, 1)
    latest: date = date(2999, 12, 31)

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.date_schema(ge=self.earliest, le=self.latest)


@dataclass(frozen=True)
class Upload(Edge):
    """An uploaded file whose name the register store can hold (its size is the body limit's)."""

    max_name: int = 255

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self._named, handler(source))

    def _named(self, value: UploadFile) -> UploadFile:
        name = value.filename or ""
        if len(name) > self.max_name:
            raise ValueError(f"the file name is over {self.max_name} characters")
        storable_text(name, "file name")
        return value


Id = Annotated[int, Digits(1, BIGINT_MAX)]
Limit = Annotated[int, Digits(0, MAX_LIMIT)]
Offset = Annotated[int, Digits(0, MAX_OFFSET)]
Text = Annotated[str, Chars(200)]
Note = Annotated[str, Chars(2000)]
Day = Annotated[date, Days()]
Attachment = Annotated[UploadFile, Upload()]


def unbounded(annotation: Any, metadata: tuple[Any, ...] | list[Any] = ()) -> str | None:
    """Why a parameter of this type is not bounded at the edge, or None when it is."""
    if any(isinstance(m, Edge) for m in metadata):
        return None
    origin = get_origin(annotation)
    if origin is Annotated:
        inner, *more = get_args(annotation)
        return unbounded(inner, more)
    if origin in (Union, types.UnionType):
        arms = [a for a in get_args(annotation) if a is not type(None)]
        return next((why for why in (unbounded(arm, metadata) for arm in arms) if why), None)
    if origin is Literal or annotation is bool or (isclass(annotation) and issubclass(annotation, Enum)):
        return None
    if origin in (list, tuple, set, frozenset):
        if not any(isinstance(m, MaxLen) for m in metadata):
            return "a list without a max_length"
        items = [a for a in get_args(annotation) if a is not Ellipsis]
        return next((why for why in map(unbounded, items) if why), None)
    if isclass(annotation) and issubclass(annotation, BaseModel):
        for name, field in annotation.model_fields.items():
            why = unbounded(field.annotation, field.metadata)
            if why:
                return f"{annotation.__name__}.{name}: {why}"
        return None
    name = getattr(annotation, "__name__", repr(annotation))
    return f"{name} is not an edge type (workers/gateway/params.py)"
