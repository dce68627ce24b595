"""Clients that are not obmen's work against the emulator unchanged: zeep built from the emulator's
own ``?wsdl``, and SOAP envelopes written by hand. So the emulator speaks the contract, not just
whatever obmen's client happens to send."""

from __future__ import annotations

import re

import httpx
import pytest
import zeep
from lxml import etree

from integrations.synerdocs.transport import WSDL as PINNED
from sandbox.server import Sandbox
from sandbox.synerdocs.emulator import APPLICATION_ID, COMPANY, CUSTOMER
from tests.edo import pki
from tests.edo.conftest import emulator, url

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
MODEL = "http://schemas.datacontract.org/2004/07/Midway.ObjectModel"
FAULTS = "http://schemas.datacontract.org/2004/07/Midway.ObjectModel.Exceptions"
XSI = "http://www.w3.org/2001/XMLSchema-instance"


def test_the_served_wsdl_is_the_one_the_client_pins(box: Sandbox) -> None:
    served = httpx.get(url(box) + "?wsdl")
    assert served.headers["content-type"].startswith("text/xml")
    assert f'<soap:address location="{url(box)}"/>' in served.text
    unify = re.compile(r'<soap:address location="[^"]*"/>')
    assert unify.sub("", served.text) == unify.sub("", PINNED.read_text(encoding="utf-8"))


def test_zeep_from_the_emulators_own_wsdl(box: Sandbox) -> None:
    service = zeep.Client(url(box) + "?wsdl").service
    token = service.Authenticate(
        login=COMPANY["login"], password=COMPANY["password"], applicationId=APPLICATION_ID
    )
    listed = service.GetOrganizationListByInnKpp(authToken=token, inn=CUSTOMER["inn"], kpp=None)
    assert {o.OperatorCode for o in listed} == {"2IG", "2BE"}
    assert {o.OrganizationStatus for o in listed} == {"Active"}

    content = "Ответ на заявку".encode()
    signer = pki.signer("Сидоров С. С.", "352500000193", organization_inn=COMPANY["inn"])
    sent = service.SendMessage(
        authToken=token,
        message={
            "Documents": {
                "Document": [
                    {
                        "Content": content,
                        "CustomField": "independent",
                        "DocumentType": "Untyped",
                        "FileName": "otvet.txt",
                        "Id": "local-1",
                        "NeedSign": True,
                    }
                ]
            },
            "From": COMPANY["box"],
            "Recipients": {"MessageRecipient": [{"OrganizationBoxId": CUSTOMER["box"]}]},
            "Signs": {"Sign": [{"DocumentId": "local-1", "Raw": signer.sign(content)}]},
        },
    )
    assert sent.DocumentIds.LocalServerId[0].LocalId == "local-1"
    document_id = sent.DocumentIds.LocalServerId[0].ServiceId
    assert [
        m.Id
        for m in service.GetMessages(authToken=token, afterMessageId=None, fromBox=COMPANY["box"], toBox=None)
    ] == [sent.MessageId]
    info = service.GetFlowDocumentInfo(
        authToken=token, boxId=COMPANY["box"], documentId=document_id, requestParams={"GetSigns": True}
    )
    # The status is declared as DocumentFlowStatus; xsi:type names the concrete type, zeep reads it.
    assert type(info.Status).__name__ == "UntypedDocumentFlowStatus"
    assert (info.Status.DeliveryStatus, info.Status.SignStatus) == ("SentToRecipient", "WaitingForSign")
    printed = service.PrintDocument(
        credentials={"AuthToken": token, "BoxAddress": COMPANY["box"]}, request={"DocumentId": document_id}
    )
    assert printed.Status.Name == "Success" and printed.NamedContent.Content.startswith(b"%PDF-")

    with pytest.raises(zeep.exceptions.Fault) as caught:
        service.DownloadPdfDocument(authToken=token, boxId=COMPANY["box"], documentId="no-such-document")
    detail = caught.value.detail.find(f"{{{FAULTS}}}ServiceErrorFaultContract")
    assert detail.findtext(f"{{{FAULTS}}}Code") == "DocumentNotFound"
    assert emulator(box).world.send_calls == 1


def _envelope(body: str) -> bytes:
    return f'<s:Envelope xmlns:s="{SOAP}"><s:Body>{body}</s:Body></s:Envelope>'.encode()


def _post(box: Sandbox, operation: str, body: str) -> httpx.Response:
    return httpx.post(
        url(box),
        content=_envelope(body),
        headers={
            "Content-Type": "text/xml; charset=utf-8",
            "SOAPAction": f'"http://synerdocs.ru/IExchangeService/{operation}"',
        },
    )


def test_a_hand_written_envelope(box: Sandbox) -> None:
    auth = _post(
        box,
        "Authenticate",
        f'<Authenticate xmlns="http://synerdocs.ru"><login>{COMPANY["login"]}</login>'
        f"<password>{COMPANY['password']}</password><applicationId>by-hand</applicationId></Authenticate>",
    )
    assert (auth.status_code, auth.headers["content-type"]) == (200, "text/xml; charset=utf-8")
    token = etree.fromstring(auth.content).findtext(".//{http://synerdocs.ru}AuthenticateResult")
    assert token

    found = _post(
        box,
        "GetOrganizationListByInnKpp",
        f'<GetOrganizationListByInnKpp xmlns="http://synerdocs.ru"><authToken>{token}</authToken>'
        f"<inn>{COMPANY['inn']}</inn><kpp>{COMPANY['kpp']}</kpp></GetOrganizationListByInnKpp>",
    )
    root = etree.fromstring(found.content)
    result = root.find(
        f"{{{SOAP}}}Body/{{http://synerdocs.ru}}GetOrganizationListByInnKppResponse/{{http://synerdocs.ru}}GetOrganizationListByInnKppResult"
    )
    assert result is not None
    organization = result.find(f"{{{MODEL}}}Organization")
    assert organization is not None
    # Members in the contract's (alphabetical) order, in the data contract's namespace; nil where null.
    names = [etree.QName(c).localname for c in organization]
    assert names == sorted(names) and len(names) == 40 and names[0] == "Addresses"
    assert organization.findtext(f"{{{MODEL}}}BoxAddress") == COMPANY["box"]
    assert organization.find(f"{{{MODEL}}}Ogrn").text == "1023500000000"
    assert organization.findtext(f"{{{MODEL}}}OrganizationStatus") == "Active"  # an enum, by name

    refused = _post(
        box,
        "Authenticate",
        '<Authenticate xmlns="http://synerdocs.ru"><login>voek</login><password>wrong</password>'
        "<applicationId>by-hand</applicationId></Authenticate>",
    )
    assert refused.status_code == 500 and refused.headers["content-type"].startswith("text/xml")
    fault = etree.fromstring(refused.content).find(f"{{{SOAP}}}Body/{{{SOAP}}}Fault")
    assert fault is not None and fault.findtext("faultcode") == "s:Client"
    contract = fault.find(f"detail/{{{FAULTS}}}ServiceErrorFaultContract")
    assert contract is not None and contract.findtext(f"{{{FAULTS}}}Code") == "Unauthorized"
    assert contract.find(f"{{{FAULTS}}}StackTrace").get(f"{{{XSI}}}nil") == "true"


def test_members_out_of_order_and_a_wrong_soap_action_are_refused(box: Sandbox) -> None:
    misordered = _post(
        box,
        "Authenticate",
        '<Authenticate xmlns="http://synerdocs.ru"><password>x</password><login>voek</login></Authenticate>',
    )
    assert misordered.status_code == 500 and b"member login out of order" in misordered.content
    wrong_action = httpx.post(
        url(box),
        content=_envelope('<Authenticate xmlns="http://synerdocs.ru"/>'),
        headers={"Content-Type": "text/xml", "SOAPAction": '"http://synerdocs.ru/IExchangeService/Nope"'},
    )
    assert wrong_action.status_code == 500 and b"a:ActionNotSupported" in wrong_action.content
