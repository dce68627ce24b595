"""obmen's checks of a detached CMS signature, on real CMS made with test keys (and a CMS naming the
GOST R 34.11-2012 digest, as CryptoPro's do)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import algos, cms
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import serialization

from integrations.signatures.detached import SignatureRefused, check_detached, digest
from tests.edo import pki

DOCUMENT = "Заявка на технологическое присоединение энергопринимающих устройств\n".encode() * 20
PERSON_INN = "352500000193"
SOLE_TRADER = pki.signer("Петров Пётр Петрович", "352501234518")
EMPLOYEE = pki.signer("Сидоров С. С.", PERSON_INN, organization_inn="3525001232", ogrn="1023500000000")


def test_a_good_signature_names_its_signer() -> None:
    info = check_detached(SOLE_TRADER.sign(DOCUMENT), DOCUMENT, sender_inn="352501234518")
    assert info.digest_algorithm == "sha256" and info.serial == SOLE_TRADER.serial
    assert info.subject == "Петров Пётр Петрович" and info.inns == ("352501234518",)
    assert info.signing_time is not None and abs(info.signing_time - datetime.now(UTC)) < timedelta(minutes=1)
    employee = check_detached(
        EMPLOYEE.sign(DOCUMENT), DOCUMENT, sender_inn="3525001232", sender_ogrn="1023500000000"
    )
    assert employee.inns == ("3525001232", PERSON_INN) and employee.ogrn == "1023500000000"


@pytest.mark.parametrize(
    ("signature", "document", "sender", "reason"),
    [
        (SOLE_TRADER.sign(b"another document"), DOCUMENT, "352501234518", "other_document"),
        (b"%PDF-1.7 this is no CMS at all", DOCUMENT, "352501234518", "not_cms"),
        (b"", DOCUMENT, "352501234518", "not_cms"),
        (SOLE_TRADER.sign(DOCUMENT, detached=False), DOCUMENT, "352501234518", "attached"),
        (SOLE_TRADER.sign(DOCUMENT), DOCUMENT, "352509876524", "wrong_inn"),
        (EMPLOYEE.sign(DOCUMENT), DOCUMENT, "3525004561", "wrong_inn"),
    ],
)
def test_a_failed_check_is_a_refusal_naming_the_reason(
    signature: bytes, document: bytes, sender: str, reason: str
) -> None:
    with pytest.raises(SignatureRefused) as caught:
        check_detached(signature, document, sender_inn=sender)
    assert caught.value.reason == reason
    if reason == "wrong_inn":
        assert sender in str(caught.value)


def test_a_certificate_must_be_valid_at_the_signing_time() -> None:
    expired = pki.signer("Петров П. П.", "352501234518", valid_from=datetime.now(UTC) - timedelta(days=400))
    with pytest.raises(SignatureRefused, match="expired") as caught:
        check_detached(expired.sign(DOCUMENT), DOCUMENT, sender_inn="352501234518")
    assert caught.value.reason == "certificate_expired"
    future = pki.signer("Петров П. П.", "352501234518", valid_from=datetime.now(UTC) + timedelta(days=2))
    with pytest.raises(SignatureRefused) as early:
        check_detached(future.sign(DOCUMENT), DOCUMENT, sender_inn="352501234518")
    assert early.value.reason == "certificate_not_yet_valid"


def test_the_ogrn_of_another_organisation_is_refused() -> None:
    with pytest.raises(SignatureRefused) as caught:
        check_detached(
            EMPLOYEE.sign(DOCUMENT), DOCUMENT, sender_inn="3525001232", sender_ogrn="1023500000011"
        )
    assert caught.value.reason == "wrong_ogrn"


def test_streebog_matches_the_standards_example() -> None:
    # GOST R 34.11-2012, example 1: the 63-byte message "0123…012".
    message = b"012345678901234567890123456789012345678901234567890123456789012"
    assert digest("1.2.643.7.1.1.2.2", message).hex() == (
        "9d151eefd8590b89daa6ba6cb74af9275dd051026bb149a452fd84e5e57b5500"
    )
    assert digest("1.2.643.7.1.1.2.3", message).hex().startswith("1b54d01a4af5b9d5cc3d86d68d285462")


def _gost_cms(content_digest: bytes, signer: pki.Signer) -> bytes:
    """A detached CMS as CryptoPro lays it out: Streebog-256 digest, GOST R 34.10-2012 signature OID.
    The signature value is not checked by obmen (no CSP), so it is a placeholder here."""
    certificate = asn1_x509.Certificate.load(signer.certificate.public_bytes(serialization.Encoding.DER))
    attributes = cms.CMSAttributes(
        [
            cms.CMSAttribute({"type": "content_type", "values": ["data"]}),
            cms.CMSAttribute(
                {"type": "signing_time", "values": [cms.Time(name="utc_time", value=datetime.now(UTC))]}
            ),
            cms.CMSAttribute({"type": "message_digest", "values": [content_digest]}),
        ]
    )
    signer_info = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                name="issuer_and_serial_number",
                value=cms.IssuerAndSerialNumber(
                    {"issuer": certificate.issuer, "serial_number": certificate.serial_number}
                ),
            ),
            "digest_algorithm": algos.DigestAlgorithm({"algorithm": "1.2.643.7.1.1.2.2"}),
            "signed_attrs": attributes,
            "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": "1.2.643.7.1.1.3.2"}),
            "signature": b"\x01" * 64,
        }
    )
    signed = cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "1.2.643.7.1.1.2.2"})],
            "encap_content_info": {"content_type": "data"},
            "certificates": [certificate],
            "signer_infos": [signer_info],
        }
    )
    return bytes(cms.ContentInfo({"content_type": "signed_data", "content": signed}).dump())


def test_a_gost_signature_is_checked_by_its_streebog_digest() -> None:
    small = DOCUMENT[:300]
    good = _gost_cms(digest("1.2.643.7.1.1.2.2", small), SOLE_TRADER)
    assert check_detached(good, small, sender_inn="352501234518").digest_algorithm == "streebog256"
    with pytest.raises(SignatureRefused) as caught:
        check_detached(good, small + b".", sender_inn="352501234518")
    assert caught.value.reason == "other_document" and "streebog256" in str(caught.value)
