"""Checks of a detached CMS signature that need no licensed cryptographic provider.

The signing itself happens in the customer's browser or the company's СЭД (CryptoPro); obmen
receives a detached CMS (PKCS#7 SignedData, DER) beside each document and, before sending it on,
checks what it can: the CMS parses; it is detached; it signs *this* document (its message-digest
attribute equals the document's hash by the digest algorithm the CMS names — GOST R 34.11-2012
(Streebog) 256/512 in production, SHA-2 for test keys); the signer's certificate was valid at the
signing time; and the certificate's ИНН (or ОГРН) is the sender's. The signature value itself is
not verified: GOST R 34.10 verification is the operator's (and the CSP's) job, and the operator
answers ``SignIsNotValid`` when it fails.

A failed check raises :class:`SignatureRefused`, whose ``reason`` is one of :data:`REASONS`.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import gostcrypto
from asn1crypto import cms, x509

from integrations.errors import PermanentError

# Digest algorithms by OID: GOST R 34.11-2012 (Streebog) as CryptoPro names it, and SHA-2.
STREEBOG = {"1.2.643.7.1.1.2.2": "streebog256", "1.2.643.7.1.1.2.3": "streebog512"}
SHA2 = {
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}
# Subject attributes of a qualified certificate (ФНС order № ММВ-7-4/...; GOST R 34.10 profile).
INN_PERSON = "1.2.643.3.131.1.1"  # ИНН of a person (12 digits; legal entities once put "00" + 10)
INN_ORGANIZATION = "1.2.643.100.4"  # ИНН ЮЛ (10 digits)
OGRN = "1.2.643.100.1"
OGRNIP = "1.2.643.100.5"

REASONS = {
    "not_cms": "the signature is not a CMS SignedData",
    "attached": "the signature carries the document inside (attached); a detached one is required",
    "no_signer": "the CMS names no signer",
    "no_digest": "the CMS has no message-digest attribute",
    "unsupported_digest": "the CMS names a digest algorithm obmen does not know",
    "other_document": "the signature is of another document (the digests differ)",
    "no_certificate": "the CMS carries no certificate of its signer",
    "certificate_not_yet_valid": "the certificate was not yet valid at the signing time",
    "certificate_expired": "the certificate had expired at the signing time",
    "no_inn": "the certificate names no ИНН",
    "wrong_inn": "the certificate's ИНН is not the sender's",
    "wrong_ogrn": "the certificate's ОГРН is not the sender's",
}


class SignatureRefused(PermanentError):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{REASONS[reason]}{': ' + detail if detail else ''}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class SignatureInfo:
    """What the check learnt of the signer (kept with the document, shown in the registers)."""

    digest_algorithm: str
    subject: str
    serial: str  # the certificate's serial number, hex
    inns: tuple[str, ...]
    ogrn: str | None
    not_before: datetime
    not_after: datetime
    signing_time: datetime | None


def digest(algorithm_oid: str, content: bytes) -> bytes:
    """The document's hash by the algorithm a CMS names (raises ``KeyError`` for another one)."""
    if algorithm_oid in STREEBOG:
        return bytes(gostcrypto.gosthash.new(STREEBOG[algorithm_oid], data=content).digest())
    return hashlib.new(SHA2[algorithm_oid], content).digest()


def check_detached(
    signature: bytes,
    document: bytes,
    *,
    sender_inn: str,
    sender_ogrn: str | None = None,
    now: datetime | None = None,
) -> SignatureInfo:
    """Check ``signature`` (detached CMS, DER) of ``document`` sent by ``sender_inn``.

    Without a signing-time attribute the certificate must be valid ``now`` (the time of the check).
    """
    signed = _signed_data(signature)
    if signed["encap_content_info"]["content"].native is not None:
        raise SignatureRefused("attached")
    if len(signed["signer_infos"]) == 0:
        raise SignatureRefused("no_signer")
    signer = signed["signer_infos"][0]
    attributes = _attributes(signer)
    if "message_digest" not in attributes:
        raise SignatureRefused("no_digest")
    algorithm = signer["digest_algorithm"]["algorithm"].dotted
    try:
        expected = digest(algorithm, document)
    except KeyError:
        raise SignatureRefused("unsupported_digest", algorithm) from None
    if not hmac.compare_digest(attributes["message_digest"], expected):
        raise SignatureRefused("other_document", f"{STREEBOG.get(algorithm) or SHA2[algorithm]} differs")
    certificate = _certificate(signed, signer)
    signing_time = attributes.get("signing_time")
    at = signing_time or now or datetime.now(UTC)
    validity = certificate["tbs_certificate"]["validity"]
    not_before, not_after = validity["not_before"].native, validity["not_after"].native
    if at < not_before:
        raise SignatureRefused(
            "certificate_not_yet_valid", f"valid from {not_before:%Y-%m-%d}, signed {at:%Y-%m-%d}"
        )
    if at > not_after:
        raise SignatureRefused(
            "certificate_expired", f"valid until {not_after:%Y-%m-%d}, signed {at:%Y-%m-%d}"
        )
    subject = certificate.subject.native
    inns = tuple(_inn(subject[oid]) for oid in (INN_ORGANIZATION, INN_PERSON) if oid in subject)
    ogrn = subject.get(OGRN) or subject.get(OGRNIP)
    if not inns:
        raise SignatureRefused("no_inn")
    if sender_inn not in inns:
        raise SignatureRefused(
            "wrong_inn", f"{', '.join(inns)} in the certificate, the sender is {sender_inn}"
        )
    if sender_ogrn is not None and ogrn is not None and ogrn != sender_ogrn:
        raise SignatureRefused("wrong_ogrn", f"{ogrn} in the certificate, the sender's is {sender_ogrn}")
    return SignatureInfo(
        digest_algorithm=STREEBOG.get(algorithm) or SHA2[algorithm],
        subject=str(subject.get("common_name") or certificate.subject.human_friendly),
        serial=format(certificate.serial_number, "x"),
        inns=inns,
        ogrn=ogrn,
        not_before=not_before,
        not_after=not_after,
        signing_time=signing_time,
    )


def _signed_data(signature: bytes) -> cms.SignedData:
    try:
        info = cms.ContentInfo.load(signature, strict=True)
        if info["content_type"].native != "signed_data":
            raise SignatureRefused("not_cms", f"content type {info['content_type'].native}")
        signed = info["content"]
        # Parse it all now: a broken structure fails here, not halfway through the checks.
        _ = signed.native
    except SignatureRefused:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise SignatureRefused("not_cms", str(exc)[:200]) from None
    return signed


def _attributes(signer: cms.SignerInfo) -> dict[str, Any]:
    if signer["signed_attrs"].native is None:
        return {}
    return {a["type"].native: a["values"][0].native for a in signer["signed_attrs"]}


def _certificate(signed: cms.SignedData, signer: cms.SignerInfo) -> x509.Certificate:
    sid = signer["sid"]
    for choice in signed["certificates"] or []:
        certificate = choice.chosen
        if not isinstance(certificate, x509.Certificate):
            continue
        if sid.name == "issuer_and_serial_number":
            if (
                certificate.serial_number == sid.chosen["serial_number"].native
                and certificate.issuer == sid.chosen["issuer"]
            ):
                return certificate
        elif certificate.key_identifier == sid.chosen.native:
            return certificate
    raise SignatureRefused("no_certificate")


def _inn(value: object) -> str:
    text = str(value)
    return text[2:] if len(text) == 12 and text.startswith("00") else text
