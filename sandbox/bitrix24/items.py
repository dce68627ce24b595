"""Smart processes of the Bitrix24 emulator: ``crm.item.add|update|get|list|fields`` and deal product rows.

As the vendor documents ``crm.item.*``: every call names its smart process by ``entityTypeId``;
fields are camelCase (``stageId``, ``parentId2`` for the deal, ``companyId``, ``xmlId``, ``movedBy``,
``updatedTime``); answers are ``{"item": {…}}`` and ``{"items": […]}`` with ``total``/``next``; a
file field takes ``[name, base64]`` and answers ``{"id", "url", "urlMachine"}``; a stage must be
one of the smart process's (``DT<type>_<category>:<code>``). A change fires ``ONCRMDYNAMICITEMADD``
/ ``ONCRMDYNAMICITEMUPDATE`` with ``ID`` and ``ENTITY_TYPE_ID``. Smart processes are declared by the
tests (``PUT /_sandbox/bitrix24/types``), as an administrator creates one in the portal.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

PAGE = 50
ITEM_FIELDS = {
    "id": "integer",
    "xmlId": "string",
    "title": "string",
    "stageId": "crm_status",
    "categoryId": "crm_category",
    "companyId": "crm_company",
    "parentId2": "crm_entity",
    "opportunity": "double",
    "assignedById": "user",
    "createdBy": "user",
    "updatedBy": "user",
    "movedBy": "user",
    "createdTime": "datetime",
    "updatedTime": "datetime",
    "movedTime": "datetime",
}
READ_ONLY = frozenset({"id", "createdBy", "updatedBy", "movedBy", "createdTime", "updatedTime", "movedTime"})


class Fail(Protocol):
    def __call__(self, status: int, code: str, description: str) -> Exception: ...


class SmartProcesses:
    """The portal's smart processes, their items and files, and the deals' product rows."""

    def __init__(
        self,
        fire: Callable[[str, int, dict[str, str]], None],
        fail: Fail,
        now: Callable[[], str],
        deal_exists: Callable[[int], bool],
        file_url: str = "",
    ) -> None:
        self.types: dict[int, str] = {}
        self.items: dict[int, dict[int, dict[str, Any]]] = {}
        self.files: dict[int, dict[str, Any]] = {}
        self.product_rows: dict[int, list[dict[str, Any]]] = {}
        self._fire = fire
        self._fail = fail
        self._now = now
        self._deal_exists = deal_exists
        self.file_url = file_url
        self._ids = {"item": 0, "file": 0, "row": 0}

    def handlers(self) -> dict[str, Any]:
        return {
            "crm.item.add": self.add,
            "crm.item.update": partial(self.update, user="1"),
            "crm.item.get": self.get,
            "crm.item.list": self.list_items,
            "crm.item.fields": self.fields,
            "crm.deal.productrows.get": self.rows_get,
        }

    # --- crm.item.* ---------------------------------------------------------------------------------
    def _type(self, params: dict[str, Any]) -> int:
        try:
            type_id = int(params.get("entityTypeId") or 0)
        except (TypeError, ValueError):
            type_id = 0
        if type_id not in self.types:
            raise self._fail(400, "NOT_FOUND", "Смарт-процесс не найден")
        return type_id

    def _item(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        type_id = self._type(params)
        try:
            item = self.items[type_id].get(int(params.get("id") or 0))
        except (TypeError, ValueError):
            item = None
        if item is None:
            raise self._fail(400, "NOT_FOUND", "Элемент не найден")
        return type_id, item

    def _fields_in(self, params: dict[str, Any]) -> dict[str, Any]:
        fields = params.get("fields")
        if not isinstance(fields, dict):
            raise self._fail(400, "INVALID_ARG_VALUE", "fields must be an object")
        return fields

    def _set(self, type_id: int, item: dict[str, Any], fields: dict[str, Any], user: str) -> None:
        before = item.get("stageId")
        for name, value in fields.items():
            if name in READ_ONLY:
                continue
            if name not in ITEM_FIELDS and not name.startswith("ufCrm"):
                raise self._fail(400, "INVALID_ARG_VALUE", f"Unknown field {name}")
            if name == "stageId" and not str(value).startswith(f"DT{type_id}_"):
                raise self._fail(400, "CRM_FIELD_ERROR_VALUE_NOT_VALID", f"Стадия {value} не найдена")
            item[name] = self._file(value) if isinstance(value, list) and name.startswith("ufCrm") else value
        now = self._now()
        item["updatedBy"], item["updatedTime"] = user, now
        if item.get("stageId") != before:
            item["movedBy"], item["movedTime"] = user, now

    def _file(self, value: list[Any]) -> dict[str, Any]:
        if len(value) != 2 or not all(isinstance(part, str) for part in value):
            raise self._fail(400, "INVALID_ARG_VALUE", "a file is [name, base64 content]")
        try:
            content = base64.b64decode(value[1], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise self._fail(400, "INVALID_ARG_VALUE", "the file content is not base64") from exc
        self._ids["file"] += 1
        file_id = self._ids["file"]
        self.files[file_id] = {"id": file_id, "name": value[0], "content": content}
        url = f"{self.file_url}/_sandbox/bitrix24/files/{file_id}"
        return {"id": file_id, "url": url, "urlMachine": url}

    def add(self, params: dict[str, Any]) -> dict[str, Any]:
        type_id = self._type(params)
        fields = self._fields_in(params)
        self._ids["item"] += 1
        item_id = self._ids["item"]
        now = self._now()
        item: dict[str, Any] = {
            "id": item_id,
            "entityTypeId": type_id,
            "title": f"Элемент #{item_id}",
            "categoryId": 0,
            "stageId": f"DT{type_id}_0:NEW",
            "createdBy": "1",
            "createdTime": now,
        }
        self._set(type_id, item, fields, "1")
        self.items.setdefault(type_id, {})[item_id] = item
        self._fire("ONCRMDYNAMICITEMADD", item_id, {"ENTITY_TYPE_ID": str(type_id)})
        return {"result": {"item": dict(item)}}

    def update(self, params: dict[str, Any], user: str) -> dict[str, Any]:
        type_id, item = self._item(params)
        self._set(type_id, item, self._fields_in(params), user)
        self._fire("ONCRMDYNAMICITEMUPDATE", int(item["id"]), {"ENTITY_TYPE_ID": str(type_id)})
        return {"result": {"item": dict(item)}}

    def get(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"result": {"item": dict(self._item(params)[1])}}

    def list_items(self, params: dict[str, Any]) -> dict[str, Any]:
        # The portal's filter and order rules are the deal list's (the emulator imports this module).
        from sandbox.bitrix24.emulator import _matches, _sort_key

        type_id = self._type(params)
        flt = params.get("filter") or {}
        if not isinstance(flt, dict):
            raise self._fail(400, "INVALID_ARG_VALUE", "filter must be an object")
        select = params.get("select") or ["*"]
        found = [i for i in self.items.get(type_id, {}).values() if _matches(i, flt)]
        for name, direction in reversed(list((params.get("order") or {"id": "ASC"}).items())):
            found.sort(key=partial(_sort_key, name), reverse=str(direction).upper() == "DESC")
        start = int(params.get("start") or 0)
        page = found[start : start + PAGE]
        if "*" not in select:
            page = [{k: v for k, v in i.items() if k in select or k == "id"} for i in page]
        envelope: dict[str, Any] = {"total": len(found)}
        if start + PAGE < len(found):
            envelope["next"] = start + PAGE
        return {"result": {"items": [dict(i) for i in page]}, **envelope}

    def fields(self, params: dict[str, Any]) -> dict[str, Any]:
        type_id = self._type(params)
        own = {
            name for item in self.items.get(type_id, {}).values() for name in item if name.startswith("ufCrm")
        }
        described = {
            name: {"type": kind, "isReadOnly": name in READ_ONLY} for name, kind in ITEM_FIELDS.items()
        }
        return {"result": {"fields": {**described, **{name: {"type": "file"} for name in own}}}}

    def manager_update(self, type_id: int, item_id: int, fields: dict[str, Any], user: int) -> dict[str, Any]:
        """A manager changes the item in the portal's UI (the outbound event follows)."""
        return self.update({"entityTypeId": type_id, "id": item_id, "fields": fields}, user=str(user))

    # --- deal product rows ----------------------------------------------------------------------------
    def set_rows(self, deal_id: int, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        stored = []
        for row in rows:
            self._ids["row"] += 1
            stored.append(
                {
                    "ID": str(self._ids["row"]),
                    "OWNER_ID": str(deal_id),
                    "OWNER_TYPE": "D",
                    "PRODUCT_ID": str(row.get("PRODUCT_ID") or 0),
                    "PRODUCT_NAME": str(row.get("PRODUCT_NAME") or ""),
                    "PRICE": str(row.get("PRICE") or "0.00"),
                    "QUANTITY": str(row.get("QUANTITY") or "1"),
                }
            )
        self.product_rows[deal_id] = stored
        return stored

    def rows_get(self, params: dict[str, Any]) -> dict[str, Any]:
        try:
            deal_id = int(params.get("id") or 0)
        except (TypeError, ValueError):
            deal_id = 0
        if deal_id not in self.product_rows and not self._deal_exists(deal_id):
            raise self._fail(400, "", "Not found")
        return {"result": [dict(r) for r in self.product_rows.get(deal_id, [])]}
