"""What the operator checks of a detached CMS signature, and what its stamp shows of the signer.

The operator's own reading (the emulator never imports obmen's checker): the CMS parses, it is
detached, and its message digest is the document's by the algorithm it names — SHA-256/512 for
test keys, GOST R 34.11-2012 (Streebog) as in production.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

import gostcrypto
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

STREEBOG = {"1.2.643.7.1.1.2.2": "streebog256", "1.2.643.7.1.1.2.3": "streebog512"}
# ИНН (of a person, of an organisation), ОГРН, ОГРНИП as certificate subject attributes (ФНС order).
INN_OIDS = ("1.2.643.3.131.1.1", "1.2.643.100.4")
OGRN_OIDS = ("1.2.643.100.1", "1.2.643.100.5")


@dataclass(frozen=True)
class Signer:
    subject: str
    organization: str | None
    inn: str | None
    ogrn: str | None
    serial: str
    not_before: datetime
    not_after: datetime
    signing_time: datetime | None


def digest(algorithm: cms.DigestAlgorithmId, content: bytes) -> bytes:
    if algorithm.dotted in STREEBOG:
        return bytes(gostcrypto.gosthash.new(STREEBOG[algorithm.dotted], data=content).digest())
    return hashlib.new(algorithm.native, content).digest()


def check(raw: bytes, content: bytes) -> str | None:
    """Why the signature is not valid for ``content``, or None when it is."""
    try:
        info = cms.ContentInfo.load(raw)
        if info["content_type"].native != "signed_data":
            return "not a CMS SignedData"
        signed = info["content"]
        if signed["encap_content_info"]["content"].native is not None:
            return "the signature is attached, a detached one is required"
        signer = signed["signer_infos"][0]
        attributes = {a["type"].native: a["values"][0].native for a in signer["signed_attrs"]}
        if attributes.get("message_digest") != digest(signer["digest_algorithm"]["algorithm"], content):
            return "the message digest is not the document's"
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        return f"not a readable CMS: {exc}"
    return None


def signer(raw: bytes) -> Signer | None:
    """The signer as the stamp shows it, or None when the CMS carries no certificate."""
    try:
        signed = cms.ContentInfo.load(raw)["content"]
        certificates = signed["certificates"]
        if not certificates:
            return None
        certificate = certificates[0].chosen
        subject = certificate.subject.native
        attributes = {
            a["type"].native: a["values"][0].native for a in signed["signer_infos"][0]["signed_attrs"]
        }
        validity = certificate["tbs_certificate"]["validity"]
        return Signer(
            subject=subject.get("common_name", certificate.subject.human_friendly),
            organization=subject.get("organization_name"),
            inn=next((subject[o] for o in INN_OIDS if o in subject), None),
            ogrn=next((subject[o] for o in OGRN_OIDS if o in subject), None),
            serial=format(certificate.serial_number, "x"),
            not_before=validity["not_before"].native,
            not_after=validity["not_after"].native,
            signing_time=attributes.get("signing_time"),
        )
    except (ValueError, TypeError, KeyError, IndexError):
        return None


@cache
def _key_and_certificate(name: str, inn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A test key of a subscriber who signs in the sandbox (the customer counter-signing an answer)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
            x509.NameAttribute(x509.ObjectIdentifier(INN_OIDS[0]), inn),
        ]
    )
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=365))
        .not_valid_after(now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return key, certificate


def sign_detached(name: str, inn: str, content: bytes) -> bytes:
    key, certificate = _key_and_certificate(name, inn)
    return (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(content)
        .add_signer(certificate, key, hashes.SHA256())
        .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary])
    )
