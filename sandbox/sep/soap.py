"""SOAP 1.1 on SEP's side: read a request envelope, write answers and faults.

Written from the WSDL alone (``sep.wsdl`` beside this file), never from obmen's client, so that a
misreading on either side fails a test instead of cancelling out.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from lxml import etree
from lxml.builder import ElementMaker

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
NS = "urn:obmen:sep:v1"
OPERATIONS = (
    "RequestApplications",
    "RequestApplicationData",
    "ConfirmOwnershipChange",
    "SubmitLeaseApplication",
    "ConfirmLeaseApplication",
    "FindCounterparty",
    "RegisterCounterparty",
    "SubmitLeaseChange",
    "ConfirmLeaseChange",
    "GetQueueResult",
)
PARTY_STATUSES = ("Confirmed", "NotApplicable", "Rejected")
PARTY_ROLES = ("CurrentOwner", "NewOwner", "Lessor", "Lessee", "NewLessee")
CHANGE_KINDS = ("Termination", "LesseeChange", "LeaseEnd")
MAX_REQUEST_BYTES = 1_000_000

S = ElementMaker(namespace=SOAP_ENV, nsmap={"soap": SOAP_ENV})
T = ElementMaker(namespace=NS, nsmap={"sep": NS})


class BadRequest(Exception):
    """An envelope SEP cannot read: answered with a soap:Client fault."""


def _parser() -> etree.XMLParser:
    # SEP parses its callers' XML as carefully as obmen parses SEP's: no DTD, no entities, no network.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def parse_request(body: bytes) -> tuple[str, dict[str, Any]]:
    """The operation name and its arguments, typed as the WSDL says."""
    if len(body) > MAX_REQUEST_BYTES:
        raise BadRequest("request too large")
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
        raise BadRequest("empty soap:Body")
    request = soap_body[0]
    qname = etree.QName(request)
    if qname.namespace != NS or qname.localname not in OPERATIONS:
        raise BadRequest(f"unknown operation {qname.text}")
    return qname.localname, _ARGS[qname.localname](request)


def _text(element: etree._Element, name: str, required: bool = True) -> str | None:
    child = element.find(f"{{{NS}}}{name}")
    if child is None or child.text is None:
        if required:
            raise BadRequest(f"{name} is required")
        return None
    return str(child.text).strip()


def _req(element: etree._Element, name: str) -> str:
    value = _text(element, name)
    assert value is not None
    return value


def _date(element: etree._Element, name: str) -> date:
    try:
        return date.fromisoformat(_req(element, name))
    except ValueError as exc:
        raise BadRequest(f"{name} is not an xs:date") from exc


def _one_of(element: etree._Element, name: str, allowed: tuple[str, ...], type_name: str) -> str:
    value = _req(element, name)
    if value not in allowed:
        raise BadRequest(f"{name}: {value!r} is not a {type_name}")
    return value


def _status(element: etree._Element, name: str) -> str:
    return _one_of(element, name, PARTY_STATUSES, "PartyStatus")


def _child(element: etree._Element, name: str) -> etree._Element:
    found = element.find(f"{{{NS}}}{name}")
    if found is None:
        raise BadRequest(f"{name} is required")
    return found


def _epts_list(e: etree._Element) -> list[str]:
    epts = [str(v.text).strip() for v in _child(e, "vehicles").findall(f"{{{NS}}}epts") if v.text]
    if not epts:
        raise BadRequest("vehicles must list at least one epts")
    return epts


def _request_applications(e: etree._Element) -> dict[str, Any]:
    return {
        "messageId": _req(e, "messageId"),
        "organizationInn": _req(e, "organizationInn"),
        "periodFrom": _date(e, "periodFrom"),
        "periodTo": _date(e, "periodTo"),
    }


def _request_application_data(e: etree._Element) -> dict[str, Any]:
    return {
        "messageId": _req(e, "messageId"),
        "organizationInn": _req(e, "organizationInn"),
        "applicationNumber": _req(e, "applicationNumber"),
    }


def _confirm(status_field: str) -> Any:
    def read(e: etree._Element) -> dict[str, Any]:
        return {
            "messageId": _req(e, "messageId"),
            "organizationInn": _req(e, "organizationInn"),
            "applicationNumber": _req(e, "applicationNumber"),
            status_field: _status(e, status_field),
            "confirmationCode": _text(e, "confirmationCode", required=False),
        }

    return read


def _submit_lease(e: etree._Element) -> dict[str, Any]:
    document = e.find(f"{{{NS}}}leaseDocument")
    vehicles = e.find(f"{{{NS}}}vehicles")
    if document is None or vehicles is None:
        raise BadRequest("leaseDocument and vehicles are required")
    epts = [str(v.text).strip() for v in vehicles.findall(f"{{{NS}}}epts") if v.text]
    if not epts:
        raise BadRequest("vehicles must list at least one epts")
    return {
        "messageId": _req(e, "messageId"),
        "lessorInn": _req(e, "lessorInn"),
        "lesseeInn": _req(e, "lesseeInn"),
        "leaseDocument": {
            "documentName": _req(document, "documentName"),
            "documentNumber": _req(document, "documentNumber"),
            "documentDate": _date(document, "documentDate"),
            "leaseTermEnd": _date(document, "leaseTermEnd"),
        },
        "vehicles": epts,
        "lessorStatus": _status(e, "lessorStatus"),
        "lesseeStatus": _status(e, "lesseeStatus"),
        "confirmBy": _date(e, "confirmBy"),
        "notificationEmail": _req(e, "notificationEmail"),
    }


def _find_counterparty(e: etree._Element) -> dict[str, Any]:
    return {
        "messageId": _req(e, "messageId"),
        "organizationInn": _req(e, "organizationInn"),
        "inn": _req(e, "inn"),
    }


def _register_counterparty(e: etree._Element) -> dict[str, Any]:
    c = _child(e, "counterparty")
    return {
        "messageId": _req(e, "messageId"),
        "organizationInn": _req(e, "organizationInn"),
        "counterparty": {
            "inn": _req(c, "inn"),
            "kpp": _text(c, "kpp", required=False),
            "ogrn": _req(c, "ogrn"),
            "name": _req(c, "name"),
            "address": _req(c, "address"),
            "email": _text(c, "email", required=False),
        },
    }


def _submit_lease_change(e: etree._Element) -> dict[str, Any]:
    document = _child(e, "changeDocument")
    return {
        "messageId": _req(e, "messageId"),
        "lessorInn": _req(e, "lessorInn"),
        "kind": _one_of(e, "kind", CHANGE_KINDS, "LeaseChangeKind"),
        "lesseeInn": _req(e, "lesseeInn"),
        "newLesseeInn": _text(e, "newLesseeInn", required=False),
        "changeDocument": {
            "documentName": _req(document, "documentName"),
            "documentNumber": _req(document, "documentNumber"),
            "documentDate": _date(document, "documentDate"),
        },
        "vehicles": _epts_list(e),
        "confirmBy": _date(e, "confirmBy"),
        "notificationEmail": _req(e, "notificationEmail"),
    }


def _confirm_lease_change(e: etree._Element) -> dict[str, Any]:
    confirmations = [
        {
            "role": _one_of(c, "role", PARTY_ROLES, "PartyRole"),
            "status": _status(c, "status"),
            "confirmationCode": _text(c, "confirmationCode", required=False),
        }
        for c in _child(e, "confirmations").findall(f"{{{NS}}}confirmation")
    ]
    if not confirmations:
        raise BadRequest("confirmations must hold at least one confirmation")
    return {
        "messageId": _req(e, "messageId"),
        "organizationInn": _req(e, "organizationInn"),
        "applicationNumber": _req(e, "applicationNumber"),
        "confirmations": confirmations,
    }


def _get_queue_result(e: etree._Element) -> dict[str, Any]:
    return {"queueNumber": _req(e, "queueNumber")}


_ARGS = {
    "RequestApplications": _request_applications,
    "RequestApplicationData": _request_application_data,
    "ConfirmOwnershipChange": _confirm("partyStatus"),
    "SubmitLeaseApplication": _submit_lease,
    "ConfirmLeaseApplication": _confirm("lesseeStatus"),
    "FindCounterparty": _find_counterparty,
    "RegisterCounterparty": _register_counterparty,
    "SubmitLeaseChange": _submit_lease_change,
    "ConfirmLeaseChange": _confirm_lease_change,
    "GetQueueResult": _get_queue_result,
}


# --- answers ----------------------------------------------------------------------------------------
def _iso(value: datetime | date) -> str:
    return value.isoformat()


def envelope(payload: etree._Element) -> bytes:
    return etree.tostring(S.Envelope(S.Body(payload)), xml_declaration=True, encoding="utf-8")


def ticket(operation: str, queue_number: str, accepted_at: datetime) -> bytes:
    answer = getattr(T, f"{operation}Response")
    return envelope(answer(T.queueNumber(queue_number), T.acceptedAt(_iso(accepted_at))))


def _application(a: dict[str, Any]) -> etree._Element:
    children = [
        T.applicationNumber(a["applicationNumber"]),
        T.kind(a["kind"]),
        T.status(a["status"]),
        T.registeredAt(_iso(a["registeredAt"])),
        T.confirmBy(_iso(a["confirmBy"])),
        T.vehicles(
            *[T.vehicle(T.epts(v["epts"]), *([T.vin(v["vin"])] if v["vin"] else [])) for v in a["vehicles"]]
        ),
        T.parties(
            *[
                T.party(
                    T.role(p["role"]),
                    T.inn(p["inn"]),
                    *([T.name(p["name"])] if p["name"] else []),
                    T.status(p["status"]),
                )
                for p in a["parties"]
            ]
        ),
    ]
    document = a.get("leaseDocument")
    if document:
        children.append(
            T.leaseDocument(
                T.documentName(document["documentName"]),
                T.documentNumber(document["documentNumber"]),
                T.documentDate(_iso(document["documentDate"])),
                T.leaseTermEnd(_iso(document["leaseTermEnd"])),
            )
        )
    return T.application(*children)


def queue_result(
    queue_number: str,
    state: str,
    server_time: datetime,
    *,
    not_before: datetime | None = None,
    completed_at: datetime | None = None,
    application: dict[str, Any] | None = None,
    applications: list[dict[str, Any]] | None = None,
    counterparty: dict[str, Any] | None = None,
    errors: list[tuple[str, str]] | None = None,
) -> bytes:
    children = [T.queueNumber(queue_number), T.state(state), T.serverTime(_iso(server_time))]
    if not_before is not None:
        children.append(T.notBefore(_iso(not_before)))
    if completed_at is not None:
        children.append(T.completedAt(_iso(completed_at)))
    if application is not None:
        children.append(_application(application))
    if applications is not None:
        children.append(T.applications(*[_application(a) for a in applications]))
    if counterparty is not None:
        children.append(
            T.counterparty(
                *[
                    getattr(T, name)(counterparty[name])
                    for name in ("sepId", "inn", "kpp", "ogrn", "name", "address", "email")
                    if counterparty.get(name)
                ]
            )
        )
    if errors:
        children.append(T.errors(*[T.error(T.code(code), T.message(message)) for code, message in errors]))
    return envelope(T.GetQueueResultResponse(*children))


def fault(code: str, message: str, *, client: bool) -> bytes:
    return envelope(_fault_element(code, message, client))


def _fault_element(code: str, message: str, client: bool) -> etree._Element:
    # SOAP 1.1: faultcode, faultstring and detail are unqualified children of soap:Fault.
    element = S.Fault()
    faultcode = etree.SubElement(element, "faultcode")
    faultcode.text = "soap:Client" if client else "soap:Server"
    faultstring = etree.SubElement(element, "faultstring")
    faultstring.text = message
    detail = etree.SubElement(element, "detail")
    detail.append(T.FaultDetail(T.code(code), T.message(message)))
    return element
