"""Test certificates and real detached CMS signatures (``cryptography``), as a browser plug-in or a
СЭД would make them, with the subject attributes of a Russian qualified certificate."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

INN_PERSON = x509.ObjectIdentifier("1.2.643.3.131.1.1")
INN_ORGANIZATION = x509.ObjectIdentifier("1.2.643.100.4")
OGRN = x509.ObjectIdentifier("1.2.643.100.1")


@dataclass(frozen=True)
class Signer:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @property
    def serial(self) -> str:
        return format(self.certificate.serial_number, "x")

    def sign(self, content: bytes, *, detached: bool = True) -> bytes:
        options = [pkcs7.PKCS7Options.Binary] + ([pkcs7.PKCS7Options.DetachedSignature] if detached else [])
        return (
            pkcs7.PKCS7SignatureBuilder()
            .set_data(content)
            .add_signer(self.certificate, self.key, hashes.SHA256())
            .sign(serialization.Encoding.DER, options)
        )


def signer(
    name: str,
    inn: str,
    *,
    organization_inn: str | None = None,
    ogrn: str | None = None,
    valid_from: datetime | None = None,
    valid_days: int = 365,
) -> Signer:
    """A signer whose certificate names ``inn`` (a person's, or ``00`` + a legal entity's) and,
    for an organisation's employee, ``organization_inn`` and ``ogrn``."""
    key = ec.generate_private_key(ec.SECP256R1())
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, name), x509.NameAttribute(INN_PERSON, inn)]
    if organization_inn:
        attributes.append(x509.NameAttribute(INN_ORGANIZATION, organization_inn))
    if ogrn:
        attributes.append(x509.NameAttribute(OGRN, ogrn))
    subject = x509.Name(attributes)
    start = valid_from or datetime.now(UTC) - timedelta(days=30)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Тестовый УЦ obmen")]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=valid_days))
        .sign(key, hashes.SHA256())
    )
    return Signer(key, certificate)
