"""SOAP 1.1 on the operator's side: read a request envelope, write answers and faults as WCF does.

Written from the served WSDL alone (``contract.py`` reads it), never from obmen's client.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from sandbox.synerdocs.contract import (
    ARRAYS,
    FAULTS,
    MODEL,
    SERVICE,
    XS,
    XSI,
    ContractError,
    contract,
    fill,
    read_members,
)

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
ACTION_PREFIX = "http://synerdocs.ru/IExchangeService/"
MAX_REQUEST_BYTES = 200_000_000


class BadRequest(Exception):
    """An envelope the service cannot read: a soap:Client fault, as WCF answers it."""

    def __init__(self, message: str, faultcode: str = "s:Client") -> None:
        super().__init__(message)
        self.faultcode = faultcode


def _parser() -> etree.XMLParser:
    # The operator reads its callers' XML as carefully as obmen reads the operator's.
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True, remove_comments=True
    )


def parse_request(body: bytes, soap_action: str | None) -> tuple[str, dict[str, Any]]:
    """The operation (from SOAPAction, which must match the body) and its arguments."""
    if len(body) > MAX_REQUEST_BYTES:
        raise BadRequest("request too large")
    action = (soap_action or "").strip().strip('"')
    if not action.startswith(ACTION_PREFIX):
        raise BadRequest(
            f"The message with Action '{action}' cannot be processed at the receiver",
            faultcode="a:ActionNotSupported",
        )
    operation = action[len(ACTION_PREFIX) :]
    if operation not in contract().operations:
        raise BadRequest(f"unknown operation {operation}", faultcode="a:ActionNotSupported")
    try:
        root = etree.fromstring(body, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise BadRequest(f"not XML: {exc}") from exc
    if root.getroottree().docinfo.doctype:
        raise BadRequest("a DOCTYPE is not accepted")
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise BadRequest("not a SOAP 1.1 envelope")
    soap_body = root.find(f"{{{SOAP_ENV}}}Body")
    if soap_body is None or len(soap_body) == 0:
        raise BadRequest("empty s:Body")
    wrapper = soap_body[0]
    if wrapper.tag != f"{{{SERVICE}}}{operation}":
        raise BadRequest(f"the body holds {etree.QName(wrapper).text}, the SOAPAction says {operation}")
    members, _ = contract().operations[operation]
    try:
        return operation, read_members(wrapper, members, SERVICE, operation)
    except ContractError as exc:
        raise BadRequest(str(exc)) from exc


def _envelope(payload: etree._Element) -> bytes:
    envelope = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"s": SOAP_ENV})
    etree.SubElement(envelope, f"{{{SOAP_ENV}}}Body").append(payload)
    return etree.tostring(envelope, encoding="utf-8")


def answer(operation: str, result: Any) -> bytes:
    """``<{Operation}Response><{Operation}Result>…`` with the data contract's prefixes, as WCF writes them."""
    _, member = contract().operations[operation]
    wrapper = etree.Element(f"{{{SERVICE}}}{operation}Response", nsmap={None: SERVICE})
    # WCF declares the data contract's prefixes on a data contract result, used or not.
    prefixes = {} if member.type.namespace == XS else {"a": MODEL, "i": XSI, "b": ARRAYS}
    element = etree.SubElement(wrapper, f"{{{SERVICE}}}{member.name}", nsmap=prefixes)
    fill(element, member.type, result)
    return _envelope(wrapper)


def fault(code: str, message: str, field: str | None = None) -> bytes:
    """A ServiceErrorFaultContract fault (answered with HTTP 500)."""
    element = etree.Element(f"{{{SOAP_ENV}}}Fault")
    etree.SubElement(element, "faultcode").text = "s:Client"
    faultstring = etree.SubElement(element, "faultstring")
    faultstring.set("{http://www.w3.org/XML/1998/namespace}lang", "ru-RU")
    faultstring.text = message
    detail = etree.SubElement(
        etree.SubElement(element, "detail"),
        f"{{{FAULTS}}}ServiceErrorFaultContract",
        nsmap={None: FAULTS, "i": XSI},
    )
    for name, value in (("Code", code), ("Field", field), ("Message", message), ("StackTrace", None)):
        child = etree.SubElement(detail, f"{{{FAULTS}}}{name}")
        if value is None:
            child.set(f"{{{XSI}}}nil", "true")
        else:
            child.text = value
    return _envelope(element)


def bad_request(error: BadRequest) -> bytes:
    """A fault without a ServiceErrorFaultContract: what WCF says when it cannot dispatch or read."""
    element = etree.Element(
        f"{{{SOAP_ENV}}}Fault", nsmap={"a": "http://schemas.microsoft.com/ws/2005/05/addressing/none"}
    )
    etree.SubElement(element, "faultcode").text = error.faultcode
    faultstring = etree.SubElement(element, "faultstring")
    faultstring.set("{http://www.w3.org/XML/1998/namespace}lang", "ru-RU")
    faultstring.text = str(error)
    return _envelope(element)
