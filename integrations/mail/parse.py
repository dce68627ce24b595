"""Reading real-world letters: whatever the sender's mail program did, get the headers and the text.

Handles any charset Python knows (windows-1251 and koi8-r included, also when the label is missing
or wrong), base64 and quoted-printable, RFC 2047 headers and raw 8-bit ones, HTML-only letters,
multipart/alternative, forwarded letters (``message/rfc822``, kept as ``forwarded``) and
attachments (ignored, unless one of them is the letter's text). :func:`parse_letter` never raises:
whatever went wrong is a line in ``defects``.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import email
import hashlib
import quopri
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any

MAX_PARTS = 500
MAX_DEPTH = 8
# Labels seen on real letters that Python's codec registry does not know.
CHARSET_ALIASES = {
    "win-1251": "cp1251",
    "windows1251": "cp1251",
    "x-cp1251": "cp1251",
    "cp-1251": "cp1251",
    "win1251": "cp1251",
    "koi8r": "koi8_r",
    "x-koi8-r": "koi8_r",
    "utf8": "utf-8",
    "unicode-1-1-utf-8": "utf-8",
}
# Labels that often lie: old mail programs put them on Cyrillic text.
WEAK_LABELS = {"ascii", "iso8859-1", "cp1252", "latin-1"}
GUESSES = ("utf-8", "cp1251", "koi8_r")
_CYR_LOWER = re.compile("[а-яё]")
_CYR_UPPER = re.compile("[А-ЯЁ]")


@dataclass
class Letter:
    subject: str = ""
    sender: str | None = None
    to: list[str] = field(default_factory=list)
    message_id: str | None = None
    date: datetime | None = None
    text: str = ""
    # Which part gave the text: "text/plain", "text/html", "attachment text/plain 'letter.txt'" ...
    text_from: str | None = None
    attachments: list[str] = field(default_factory=list)
    forwarded: list[Letter] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)

    @property
    def readable(self) -> bool:
        """The parser got through and found a header a person would know the letter by."""
        crashed = any(d.startswith("unparseable:") for d in self.defects)
        return not crashed and bool(self.sender or self.subject or self.message_id or self.date)

    def summary(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "sender": self.sender,
            "to": self.to,
            "message_id": self.message_id,
            "date": self.date.isoformat() if self.date else None,
            "text_from": self.text_from,
            "attachments": self.attachments,
            "forwarded": [f.summary() for f in self.forwarded],
            "defects": self.defects,
        }


@dataclass(frozen=True)
class Headers:
    """What the fetch step reads before storing a message: cheap, and never raises."""

    message_id: str | None
    sender: str | None
    subject: str | None


# --- charsets ---------------------------------------------------------------------------------


def _codec(label: str | None) -> str | None:
    if not label:
        return None
    label = label.strip().strip('"').lower()
    label = CHARSET_ALIASES.get(label, label)
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def _cyrillic_score(text: str) -> int:
    # Russian prose is mostly lower case; cp1251 read as koi8-r (and back) swaps the cases.
    return len(_CYR_LOWER.findall(text)) - 2 * len(_CYR_UPPER.findall(text)) - 10 * text.count("\ufffd")


def guess_decode(data: bytes) -> tuple[str, str]:
    """Decode unlabelled bytes: UTF-8 if it is valid, else the Cyrillic codepage that reads best."""
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    decoded = {name: data.decode(name, errors="replace") for name in GUESSES[1:]}
    best = max(decoded, key=lambda name: _cyrillic_score(decoded[name]))
    return decoded[best], best


def decode_text(data: bytes, label: str | None, defects: list[str], where: str) -> str:
    codec = _codec(label)
    if label and codec is None:
        text, used = guess_decode(data)
        defects.append(f"{where}: unknown charset {label!r}, read as {used}")
        return text
    if codec is None:
        if data.isascii():
            return data.decode("ascii")
        text, used = guess_decode(data)
        defects.append(f"{where}: no charset given for 8-bit text, read as {used}")
        return text
    try:
        text = data.decode(codec)
    except UnicodeDecodeError:
        text, used = guess_decode(data)
        defects.append(f"{where}: text is not valid {label}, read as {used}")
        return text
    if codec in WEAK_LABELS and not data.isascii():
        guessed, used = guess_decode(data)
        if _cyrillic_score(guessed) > max(_cyrillic_score(text), 0):
            defects.append(f"{where}: labelled {label} but reads as {used}")
            return guessed
    return text


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(value: str) -> str:
    """Text a register can hold: raw 8-bit bytes decoded, control characters (NUL above all:
    Postgres text and JSON refuse it) dropped. A hostile header must not stop the mailbox."""
    return _CONTROL.sub("", _fix_8bit_header(value))


def _fix_8bit_header(value: str) -> str:
    """Raw 8-bit header bytes arrive as surrogate escapes; decode them as the text they are."""
    if not _has_8bit(value):
        return value
    raw = value.encode("utf-8", errors="surrogateescape")
    return guess_decode(raw)[0]


# Raw 8-bit bytes decoded with surrogateescape: a regex finds them in C, where a scan in Python of every
# character of a letter's text cost a third of its parsing.
_ESCAPED_8BIT = re.compile("[\udc80-\udcff]")


def _has_8bit(value: str) -> bool:
    return _ESCAPED_8BIT.search(value) is not None


def _raw_header(msg: Message, name: str) -> str | None:
    value = next((v for k, v in msg.raw_items() if k.lower() == name), None)
    return None if value is None else str(value)


_ENCODED_WORD = re.compile(r"=\?([^?*]+)(?:\*[^?]*)?\?([bBqQ])\?([^?]*)\?=")
_BETWEEN_WORDS = re.compile(r"(\?=)\s+(?==\?)")


def _encoded_word(found: re.Match[str]) -> str:
    charset, encoding, text = found.groups()
    try:
        if encoding in "bB":
            data = base64.b64decode(text + "=" * (-len(text) % 4))
        else:
            data = quopri.decodestring(text.encode("ascii", "replace"), header=True)
    except (binascii.Error, ValueError):
        return found.group(0)
    return decode_text(data, charset, [], "header")


def decode_rfc2047(value: str) -> str:
    """Encoded words (RFC 2047) decoded leniently, raw 8-bit text read as the charset it is.

    An unknown charset or a broken word is read as well as it can be, never raised. Whitespace
    between two encoded words is not text (RFC 2047, 6.2).
    """
    value = _BETWEEN_WORDS.sub(r"\1", _fix_8bit_header(value))
    return " ".join(clean_text(_ENCODED_WORD.sub(_encoded_word, value)).split())


def _header(msg: Message, name: str, defects: list[str]) -> str | None:
    raw = _raw_header(msg, name)
    if raw is None:
        return None
    if _has_8bit(raw):
        defects.append(f"header {name}: raw 8-bit text")
    return decode_rfc2047(raw)


def _addresses(value: str | None) -> list[tuple[str, str]]:
    """(name, address) pairs; names decoded after the split, so a comma in a name splits nothing."""
    if not value:
        return []
    pairs = getaddresses([_fix_8bit_header(value)])
    return [(decode_rfc2047(name), clean_text(addr).strip().lower()) for name, addr in pairs if "@" in addr]


# --- HTML --------------------------------------------------------------------------------------


class _TextOfHtml(HTMLParser):
    BLOCK = {
        "p", "div", "br", "tr", "li", "ul", "ol", "table", "h1", "h2", "h3", "h4", "h5", "h6",
        "blockquote", "pre", "hr", "section", "article", "header", "footer", "title",
    }  # fmt: skip
    SKIP = {"script", "style", "head"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self._skipping += 1
        elif tag in self.BLOCK:
            self.parts.append("\n")
        elif tag in ("td", "th"):
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _TextOfHtml()
    parser.feed(html)
    parser.close()
    return normalize_text("".join(parser.parts))


def normalize_text(text: str) -> str:
    """NFKC, one kind of space, no empty runs of lines: what the field patterns expect."""
    text = clean_text(unicodedata.normalize("NFKC", text).replace("\r\n", "\n").replace("\r", "\n"))
    lines = (
        re.sub(r"[ \t\u00a0\u2000-\u200b\u202f\u205f\u3000]+", " ", line).strip() for line in text.split("\n")
    )
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# --- the walk ------------------------------------------------------------------------------------


@dataclass
class _Walk:
    letter: Letter
    texts: list[tuple[str, str]] = field(default_factory=list)  # (source, text) of inline text parts
    html: list[tuple[str, str]] = field(default_factory=list)
    attached: list[tuple[str, str]] = field(default_factory=list)  # text attachments, in case
    parts: int = 0


def _describe(part: Message) -> str:
    name = part.get_filename()
    return f"{part.get_content_type()}" + (f" {clean_text(name)!r}" if name else "")


def _part_text(part: Message, defects: list[str]) -> str:
    where = _describe(part)
    try:
        payload = part.get_payload(decode=True)
    except Exception as exc:
        defects.append(f"{where}: payload unreadable ({type(exc).__name__}: {exc})")
        return ""
    for defect in part.defects:
        defects.append(f"{where}: {type(defect).__name__}")
    if not isinstance(payload, bytes):
        return ""
    return decode_text(payload, part.get_param("charset"), defects, where)  # type: ignore[arg-type]


def _walk(part: Message, walk: _Walk, depth: int) -> None:
    walk.parts += 1
    if walk.parts > MAX_PARTS:
        if walk.parts == MAX_PARTS + 1:
            walk.letter.defects.append(f"more than {MAX_PARTS} MIME parts: the rest ignored")
        return
    ctype = part.get_content_type()
    disposition = (part.get_content_disposition() or "").lower()
    if ctype == "message/rfc822" or (
        ctype == "application/octet-stream" and (part.get_filename() or "").lower().endswith(".eml")
    ):
        inner = _inner_message(part, walk.letter.defects)
        if inner is not None:
            if depth >= MAX_DEPTH:
                walk.letter.defects.append(f"letters nested deeper than {MAX_DEPTH}: ignored")
            else:
                walk.letter.forwarded.append(_letter_of(inner, depth + 1))
        return
    if part.is_multipart():
        children = [c for c in part.get_payload() if isinstance(c, Message)]
        if ctype == "multipart/alternative":
            _walk_alternative(children, walk, depth)
        else:
            for child in children:
                _walk(child, walk, depth)
        return
    if ctype not in ("text/plain", "text/html"):
        if disposition == "attachment" or part.get_filename() or not ctype.startswith("multipart/"):
            walk.letter.attachments.append(_describe(part))
        return
    text = _part_text(part, walk.letter.defects)
    if disposition == "attachment":
        walk.attached.append(
            (f"attachment {_describe(part)}", text if ctype == "text/plain" else html_to_text(text))
        )
        walk.letter.attachments.append(_describe(part))
    elif not text.strip():
        return
    elif ctype == "text/html":
        walk.html.append(("text/html", text))
    else:
        walk.texts.append(("text/plain", text))


def _walk_alternative(children: list[Message], walk: _Walk, depth: int) -> None:
    """Take the plain alternative when it says something, else the richest other one."""
    plain = [c for c in children if c.get_content_type() == "text/plain"]
    for candidate in plain:
        text = _part_text(candidate, walk.letter.defects)
        if text.strip():
            walk.texts.append(("text/plain", text))
            return
    for child in reversed(children):  # RFC 2046: the last alternative is the richest
        if child.get_content_type() != "text/plain":
            _walk(child, walk, depth)
            return


def _inner_message(part: Message, defects: list[str]) -> Message | None:
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return payload[0]
    raw = part.get_payload(decode=True)
    if isinstance(raw, bytes) and raw.strip():
        return email.message_from_bytes(raw, policy=compat32)
    defects.append(f"{_describe(part)}: empty forwarded letter")
    return None


def _letter_of(msg: Message, depth: int = 0) -> Letter:
    letter = Letter()
    defects = letter.defects
    for defect in msg.defects:
        defects.append(f"message: {type(defect).__name__}")
    letter.subject = _header(msg, "subject", defects) or ""
    senders = _addresses(_header(msg, "from", defects))
    if senders:
        letter.sender = senders[0][1]
    letter.to = [addr for _, addr in _addresses(_header(msg, "to", defects))]
    message_id = _header(msg, "message-id", defects)
    letter.message_id = message_id.strip() if message_id else None
    date = _header(msg, "date", defects)
    if date:
        try:
            letter.date = parsedate_to_datetime(date)
        except (TypeError, ValueError, IndexError):
            defects.append(f"header date: unreadable {date!r}")
    walk = _Walk(letter)
    _walk(msg, walk, depth)
    if walk.texts:
        letter.text_from = walk.texts[0][0]
        letter.text = normalize_text("\n\n".join(text for _, text in walk.texts))
    elif walk.html:
        letter.text_from = "text/html"
        letter.text = "\n\n".join(html_to_text(text) for _, text in walk.html)
    elif walk.attached:
        letter.text_from, letter.text = walk.attached[0][0], normalize_text(walk.attached[0][1])
    letter.text = letter.text.strip()
    letter.defects = list(dict.fromkeys(defects))
    return letter


def parse_letter(raw: bytes) -> Letter:
    """The headers and the text of ``raw``. Never raises."""
    try:
        # compat32: the strict policy's header parser is five times slower and raises on more
        # mangled headers; headers are decoded here, leniently.
        msg = email.message_from_bytes(raw, policy=compat32)
        return _letter_of(msg)
    except Exception as exc:  # the email package has corners that still raise
        letter = Letter(defects=[f"unparseable: {type(exc).__name__}: {exc}"])
        try:
            letter.text = normalize_text(guess_decode(raw)[0])
            letter.text_from = "raw bytes"
        except Exception:
            pass
        return letter


def read_headers(raw: bytes) -> Headers:
    """Message-ID, sender and subject from the header block alone. Never raises."""
    try:
        msg = BytesHeaderParser(policy=compat32).parsebytes(raw)
        subject, sender, message_id = (_raw_header(msg, name) for name in ("subject", "from", "message-id"))
        senders = _addresses(sender)
        return Headers(
            message_id=" ".join(clean_text(message_id).split()) or None if message_id is not None else None,
            sender=senders[0][1] if senders else None,
            subject=decode_rfc2047(subject) if subject is not None else None,
        )
    except Exception:
        return Headers(None, None, None)


def content_hash(raw: bytes) -> str:
    """SHA-256 of the body (everything after the header block, line ends normalised).

    Transit headers (Received, Delivered-To) differ between two deliveries of one letter, and
    the server's re-numbering (a new UIDVALIDITY) keeps the body: together with the Message-ID this
    tells the same letter again.
    """
    for separator in (b"\r\n\r\n", b"\n\n"):
        at = raw.find(separator)
        if at >= 0:
            body = raw[at + len(separator) :]
            break
    else:
        body = raw
    return hashlib.sha256(body.replace(b"\r\n", b"\n")).hexdigest()
