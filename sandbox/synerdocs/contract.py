"""The operator's side of the data contracts: WCF's DataContractSerializer, driven by the served WSDL.

The emulator reads the complex types of its own ``ExchangeService.wsdl`` once (a file of ours, so
trusted) and reads requests and writes answers from that table alone: members in the declared
order, ``i:nil`` for an absent nillable member, arrays as their ``ArrayOf…`` wrappers, enumerations
as names, and ``i:type`` where a member holds a type derived from the declared one. A request whose
members are out of order or unknown is refused naming the member (WCF would silently drop it).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from lxml import etree

WSDL = Path(__file__).with_name("ExchangeService.wsdl")
XS = "http://www.w3.org/2001/XMLSchema"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
SERVICE = "http://synerdocs.ru"
MODEL = "http://schemas.datacontract.org/2004/07/Midway.ObjectModel"
ARRAYS = "http://schemas.microsoft.com/2003/10/Serialization/Arrays"
FAULTS = "http://schemas.datacontract.org/2004/07/Midway.ObjectModel.Exceptions"
TYPE_KEY = "__type__"
VALUE_DEFAULTS: dict[str, Any] = {
    f"{{{XS}}}boolean": False,
    f"{{{XS}}}int": 0,
    f"{{{XS}}}long": 0,
    f"{{{XS}}}decimal": 0,
}  # in a value dict: the derived type to name with i:type


class ContractError(Exception):
    """A request that does not follow the contract; the message names the member."""


@dataclass(frozen=True)
class Member:
    name: str
    type: etree.QName
    nillable: bool
    required: bool


@dataclass
class ComplexType:
    name: etree.QName
    members: list[Member] = field(default_factory=list)
    base: etree.QName | None = None

    @property
    def is_array(self) -> bool:
        return self.name.localname.startswith("ArrayOf")


@dataclass
class Contract:
    types: dict[str, ComplexType]  # by "{namespace}name"
    enums: dict[str, list[str]]
    operations: dict[str, tuple[list[Member], Member]]  # request members, the single result member


def _qname(element: etree._Element, value: str) -> etree.QName:
    prefix, _, local = value.rpartition(":")
    return etree.QName(element.nsmap.get(prefix or None), local)


@cache
def contract() -> Contract:
    root = etree.parse(str(WSDL), etree.XMLParser(resolve_entities=False, no_network=True)).getroot()
    types: dict[str, ComplexType] = {}
    enums: dict[str, list[str]] = {}
    operations: dict[str, tuple[list[Member], Member]] = {}

    def members(owner: etree._Element) -> list[Member]:
        return [
            Member(
                e.get("name", ""),
                _qname(e, e.get("type", "")),
                e.get("nillable") == "true",
                e.get("minOccurs", "1") != "0",
            )
            for e in owner.iterfind(f"{{{XS}}}sequence/{{{XS}}}element")
        ]

    for schema in root.iter(f"{{{XS}}}schema"):
        namespace = schema.get("targetNamespace", "")
        for simple in schema.iterfind(f"{{{XS}}}simpleType"):
            enums[str(etree.QName(namespace, simple.get("name", "")))] = [
                e.get("value", "") for e in simple.iterfind(f".//{{{XS}}}enumeration")
            ]
        for complex_type in schema.iterfind(f"{{{XS}}}complexType"):
            name = etree.QName(namespace, complex_type.get("name", ""))
            extension = complex_type.find(f"{{{XS}}}complexContent/{{{XS}}}extension")
            if extension is not None:
                types[name.text] = ComplexType(
                    name, members(extension), _qname(extension, extension.get("base", ""))
                )
            else:
                types[name.text] = ComplexType(name, members(complex_type))
        if namespace == SERVICE:
            for element in schema.iterfind(f"{{{XS}}}element"):
                name = element.get("name", "")
                if not name.endswith("Response"):
                    request = members(element.find(f"{{{XS}}}complexType"))
                    result = members(
                        schema.find(f"{{{XS}}}element[@name='{name}Response']/{{{XS}}}complexType")
                    )[0]
                    operations[name] = (request, result)
    return Contract(types, enums, operations)


def all_members(type_name: etree.QName) -> list[Member]:
    """A type's members, its bases' first (DataContract order: base class members come first)."""
    found = contract().types[type_name.text]
    inherited = all_members(found.base) if found.base is not None else []
    return inherited + found.members


def is_subtype(derived: etree.QName, base: etree.QName) -> bool:
    current: etree.QName | None = derived
    while current is not None:
        if current.text == base.text:
            return True
        current = contract().types[current.text].base
    return False


# --- reading a request --------------------------------------------------------------------------
def read_members(
    element: etree._Element, members: list[Member], namespace: str, where: str
) -> dict[str, Any]:
    """The children of ``element`` as ``members`` in ``namespace``, in the declared order."""
    values: dict[str, Any] = {}
    position = 0
    names = [m.name for m in members]
    for child in element:
        if not isinstance(child.tag, str):
            continue  # comments, processing instructions
        qname = etree.QName(child)
        if qname.namespace != namespace or qname.localname not in names:
            raise ContractError(f"{where}: unexpected element {qname.text}")
        index = names.index(qname.localname)
        if index < position:
            raise ContractError(
                f"{where}: member {qname.localname} out of order (the contract's order is {', '.join(names)})"
            )
        position = index + 1
        values[qname.localname] = read_value(child, members[index], f"{where}.{qname.localname}")
    for member in members:
        if member.required and member.name not in values:
            raise ContractError(f"{where}: {member.name} is required")
    return values


def read_value(element: etree._Element, member: Member, where: str) -> Any:
    if element.get(f"{{{XSI}}}nil") == "true":
        if not member.nillable:
            raise ContractError(f"{where} may not be nil")
        return None
    declared = member.type
    if declared.namespace == XS:
        return _read_simple(element.text or "", declared.localname, where)
    if declared.text in contract().enums:
        value = (element.text or "").strip()
        if value not in contract().enums[declared.text]:
            raise ContractError(f"{where}: {value!r} is not a {declared.localname}")
        return value
    actual = declared
    named = element.get(f"{{{XSI}}}type")
    if named:
        actual = _qname(element, named)
        if actual.text not in contract().types or not is_subtype(actual, declared):
            raise ContractError(f"{where}: i:type {named} is not a {declared.localname}")
    complex_type = contract().types[actual.text]
    if complex_type.is_array:
        item = complex_type.members[0]
        items: list[Any] = []
        for child in element:
            if not isinstance(child.tag, str):
                continue
            if etree.QName(child).text != etree.QName(actual.namespace, item.name).text:
                raise ContractError(f"{where}: unexpected item {etree.QName(child).text}")
            items.append(read_value(child, item, f"{where}[{len(items)}]"))
        return items
    values = read_members(element, all_members(actual), actual.namespace or "", where)
    if actual.text != declared.text:
        values[TYPE_KEY] = actual.localname
    return values


def _read_simple(text: str, kind: str, where: str) -> Any:
    text = text.strip()
    try:
        if kind == "string":
            return text
        if kind == "int" or kind == "long":
            return int(text)
        if kind == "boolean":
            if text not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return text in ("true", "1")
        if kind == "base64Binary":
            return base64.b64decode(text, validate=True)
        if kind == "dateTime":
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
            return value if value.tzinfo else value.replace(tzinfo=UTC)
    except ValueError as exc:
        raise ContractError(f"{where}: {text[:40]!r} is not an xs:{kind}") from exc
    raise ContractError(f"{where}: the emulator does not read xs:{kind}")


# --- writing an answer --------------------------------------------------------------------------
def write_value(parent: etree._Element, name: etree.QName, member_type: etree.QName, value: Any) -> None:
    fill(etree.SubElement(parent, name), member_type, value)


def fill(element: etree._Element, member_type: etree.QName, value: Any) -> None:
    """Write ``value`` of ``member_type`` as the content (and i:nil / i:type) of ``element``."""
    if value is None:
        element.set(f"{{{XSI}}}nil", "true")
        return
    if member_type.namespace == XS:
        element.text = _write_simple(value, member_type.localname)
        return
    if member_type.text in contract().enums:
        if value not in contract().enums[member_type.text]:
            raise ValueError(f"{value!r} is not a {member_type.localname}")
        element.text = value
        return
    actual = member_type
    if isinstance(value, dict) and TYPE_KEY in value:
        actual = etree.QName(member_type.namespace, value[TYPE_KEY])
        assert is_subtype(actual, member_type), (actual, member_type)
        element.set(
            f"{{{XSI}}}type", f"{element.prefix or _prefix(element, actual.namespace)}:{actual.localname}"
        )
    complex_type = contract().types[actual.text]
    if complex_type.is_array:
        item = complex_type.members[0]
        for entry in value:
            write_value(element, etree.QName(actual.namespace, item.name), item.type, entry)
        return
    for member in all_members(actual):
        name = etree.QName(actual.namespace, member.name)
        if member.name in value or member.nillable:
            write_value(element, name, member.type, value.get(member.name))
        elif member.type.text in VALUE_DEFAULTS:
            # A value-typed member is always written (WCF's EmitDefaultValue), as its default.
            write_value(element, name, member.type, VALUE_DEFAULTS[member.type.text])


def _prefix(element: etree._Element, namespace: str | None) -> str:
    for prefix, uri in element.nsmap.items():
        if uri == namespace and prefix:
            return prefix
    raise ValueError(f"no prefix for {namespace}")


def _write_simple(value: Any, kind: str) -> str:
    if kind == "boolean":
        return "true" if value else "false"
    if kind == "base64Binary":
        return base64.b64encode(value).decode("ascii")
    if kind == "dateTime":
        assert isinstance(value, datetime) and value.tzinfo is not None
        return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return str(value)
