"""The one gate every XML answer from outside passes before anything reads it.

An answer is refused when it is larger than the caller's cap, or when it declares a DTD: a
``<!DOCTYPE`` is where entities (billion laughs), external entities (a local file, an internal URL)
and external DTDs come from, and no answer of a system obmen talks to carries one. The refusal
happens in the parser, not by a pattern over the bytes (a regular expression over untrusted input
can take exponential time: ``<?x?>`` × 30 before the envelope once held a worker for minutes).

Two passes of libxml2, both linear in the input and neither building anything it is not asked to:

1. the prolog only: a parser target that raises at the ``DOCTYPE`` event (libxml2 fires it after
   the name, before the internal subset is read: no entity is ever declared) and stops at the first
   element;
2. the document, with entities never substituted, no network, no DTD loaded, libxml2's limits for
   huge documents kept on; the result is checked once more for a DTD.

zeep reads the same bytes again after this gate, with its own ``forbid_dtd``/``forbid_entities``.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from integrations.errors import PermanentError, TransientError


class XmlRefused(PermanentError):
    """The answer may not be read: it declares a DTD, or it is over the size cap. Asking again gets
    the same answer, so it is not worth a retry."""


class XmlMalformed(TransientError):
    """The answer is not well-formed XML (empty, cut short, not XML at all): worth asking again."""


class _Doctype(Exception):
    pass


class _PrologEnd(Exception):
    pass


class _Prolog:
    """A parser target for the prolog: raise at a DOCTYPE, stop at the first element."""

    def doctype(self, name: str | None, public_id: str | None, system_url: str | None) -> None:
        raise _Doctype(name or "")

    def start(self, tag: str, attrib: Any, nsmap: Any = None) -> None:
        raise _PrologEnd

    def end(self, tag: str) -> None:
        pass

    def data(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


_OPTIONS: dict[str, Any] = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "huge_tree": False,
}


def parse_untrusted(content: bytes, *, max_bytes: int) -> etree._Element:
    """The root element of ``content``; :class:`XmlRefused` or :class:`XmlMalformed` otherwise.

    Never raises anything else, whatever the bytes are.
    """
    if len(content) > max_bytes:
        raise XmlRefused(f"the XML answer is larger than {max_bytes} bytes")
    if not content.strip():
        raise XmlMalformed("an empty answer where XML was expected")
    try:
        etree.fromstring(content, etree.XMLParser(target=_Prolog(), **_OPTIONS))
    except _Doctype as found:
        raise XmlRefused(
            f"the answer declares a DTD (<!DOCTYPE {found}>); answers obmen reads never do"
        ) from None
    except _PrologEnd:
        pass
    except etree.XMLSyntaxError as exc:
        raise XmlMalformed(f"the answer is not well-formed XML: {exc}") from None
    try:
        root = etree.fromstring(content, etree.XMLParser(**_OPTIONS))
    except etree.XMLSyntaxError as exc:
        raise XmlMalformed(f"the answer is not well-formed XML (cut short?): {exc}") from None
    if root is None:
        raise XmlMalformed("the answer holds no XML element")
    if root.getroottree().docinfo.doctype:
        raise XmlRefused("the answer declares a DTD; answers obmen reads never do")
    return root
