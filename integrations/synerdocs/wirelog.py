"""What the exchange log keeps of an envelope: the XML as it went, less secrets and document bodies.

The seed's «XML» tab keeps the raw request and answer for debugging. Passwords and tokens are
replaced by ``***``; a document's ``Content`` and a signature's ``Raw`` (base64, up to megabytes,
stored in the EDO registers anyway) by their size and SHA-256, so the log stays readable and small.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from lxml import etree

from integrations.exchange import clip

SECRETS = frozenset({"password", "authToken", "AuthToken", "AuthenticateResult"})
PAYLOADS = frozenset({"Content", "Raw"})


def _summarize(root: etree._Element) -> str:
    for element in root.iter():
        if not isinstance(element.tag, str) or not element.text:
            continue
        name = etree.QName(element).localname
        if name in SECRETS:
            element.text = "***"
        elif name in PAYLOADS:
            try:
                data = base64.b64decode(element.text, validate=True)
                element.text = f"[{len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}]"
            except (binascii.Error, ValueError):
                element.text = f"[{len(element.text)} characters that are not base64]"
    return etree.tostring(root, encoding="unicode")


def summarize_request(message: bytes) -> str | None:
    # Our own envelope, built by zeep from the pinned WSDL: trusted XML.
    return clip(_summarize(etree.fromstring(message)))


def summarize_response(operation: str, content: bytes, root: etree._Element | None) -> str | None:
    """``root`` is the answer as parsed safely; None while it is not (yet) known to be safe XML."""
    if root is not None:
        return clip(_summarize(root))
    if operation == "Authenticate":
        # Unreadable, so unredactable: it may hold a token.
        return f"[an answer of {len(content)} bytes, not kept: it may hold the token]"
    return clip(content)
