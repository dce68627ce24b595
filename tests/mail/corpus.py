"""The letter corpus: SEP notifications as the sandbox sends them, and as real mail programs mangle
them (charsets, transfer encodings, HTML, forwarding, attachments, broken MIME), plus letters
that are not from SEP at all. Each builder returns the raw bytes a mailbox would hold.
"""

from __future__ import annotations

import base64
import itertools
import quopri
from email.header import Header
from email.mime.application import MIMEApplication
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate

SEP_FROM = "СЭП <notify@sep.elpts.ru>"
TECHNICAL = "sep@example.ru"
SUBJECTS = {
    "ownership_change": "СЭП: заявление № {n} на смену собственника",
    "lease_application": "СЭП: заявление № {n} на внесение сведений о лизинге",
    "lease_entered": "СЭП: сведения о лизинге внесены, заявление № {n}",
}
_ids = itertools.count(1)


def sep_body(
    number: str,
    epts: str | None = "164301000012345",
    vin: str | None = "XTA210990Y2765432",
    code: str | None = "482913",
    until: str | None = "02.12.2026",
) -> str:
    """The body exactly as DESIGN.md shows it (lines left out where the field is None)."""
    lines = [f"Номер заявления: {number}"]
    if epts is not None:
        lines.append(f"Номер ЭПТС: {epts}")
    if vin is not None:
        lines.append(f"VIN: {vin}")
    if code is not None:
        lines.append(f"Код подтверждения: {code}")
    if until is not None:
        lines.append(f"Подтвердить до: {until}")
    return "\n".join(lines) + "\n"


def _headers(
    msg: MIMEText | MIMEMultipart, subject: str, sender: str, to: str, message_id: str | None
) -> None:
    name, _, address = sender.rpartition(" <")
    msg["From"] = formataddr((name, address.rstrip(">")), charset="utf-8") if name else sender
    msg["To"] = to
    msg["Subject"] = Header(subject, "utf-8").encode()
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = message_id or f"<sep-{next(_ids)}@sep.elpts.ru>"


def sep_letter(
    kind: str = "ownership_change",
    number: str = "2026-000123",
    *,
    body: str | None = None,
    charset: str = "utf-8",
    sender: str = SEP_FROM,
    to: str = TECHNICAL,
    message_id: str | None = None,
    **fields: str | None,
) -> bytes:
    """A SEP notification as the sandbox sends it: text/plain, the DESIGN.md layout."""
    msg = MIMEText(body if body is not None else sep_body(number, **fields), "plain", charset)
    _headers(msg, SUBJECTS[kind].format(n=number), sender, to, message_id)
    return msg.as_bytes()


def raw_letter(headers: dict[str, str], body: bytes, sep: bytes = b"\r\n") -> bytes:
    """A letter written byte by byte, for what the email package would not produce by itself."""
    head = sep.join(f"{k}: {v}".encode("ascii", "surrogateescape") for k, v in headers.items())
    return head + sep + sep + body


def q_word(text: str, charset: str) -> str:
    """RFC 2047 Q-encoding as Outlook writes it: words of at most 75 characters, folded."""
    prefix = f"=?{charset}?Q?"
    words, current = [], ""
    for byte in text.encode(charset):
        char = chr(byte)
        token = char if char.isascii() and char.isalnum() else "_" if char == " " else f"={byte:02X}"
        if len(prefix) + len(current) + len(token) + 2 > 75:
            words.append(current)
            current = ""
        current += token
    words.append(current)
    return "\r\n ".join(f"{prefix}{word}?=" for word in words)


def b_word(text: str, charset: str) -> str:
    return f"=?{charset}?B?{base64.b64encode(text.encode(charset)).decode('ascii')}?="


def windows1251_qp() -> bytes:
    """Outlook-style: windows-1251, quoted-printable, Q-encoded subject, CRLF."""
    body = sep_body("2026-000201", code="111222").replace("\n", "\r\n").encode("cp1251")
    return raw_letter(
        {
            "From": f"{q_word('СЭП', 'windows-1251')} <notify@sep.elpts.ru>",
            "To": TECHNICAL,
            "Subject": q_word("СЭП: заявление № 2026-000201 на смену собственника", "windows-1251"),
            "Message-ID": "<cp1251@sep.elpts.ru>",
            "MIME-Version": "1.0",
            "Content-Type": 'text/plain; charset="windows-1251"',
            "Content-Transfer-Encoding": "quoted-printable",
        },
        quopri.encodestring(body),
    )


def koi8r_base64(label: bool = True) -> bytes:
    """KOI8-R in base64, B-encoded subject; ``label=False`` leaves out the charset, as old programs do.

    KOI8-R has no «№»: such letters write «N».
    """
    body = sep_body("2026-000202", code="333444").encode("koi8_r")
    content_type = 'text/plain; charset="koi8-r"' if label else "text/plain"
    return raw_letter(
        {
            "From": "notify@sep.elpts.ru",
            "To": TECHNICAL,
            "Subject": b_word("СЭП: заявление N 2026-000202 на смену собственника", "koi8-r"),
            "Message-ID": f"<koi8-{label}@sep.elpts.ru>",
            "Content-Type": content_type,
            "Content-Transfer-Encoding": "base64",
        },
        base64.encodebytes(body),
    )


def lying_label() -> bytes:
    """windows-1251 bytes labelled iso-8859-1 (a mail program that never asked)."""
    return raw_letter(
        {
            "From": "notify@sep.elpts.ru",
            "Subject": "SEP notification",
            "Content-Type": "text/plain; charset=iso-8859-1",
            "Content-Transfer-Encoding": "8bit",
        },
        sep_body("2026-000203", code="555666").encode("cp1251"),
    )


def raw_8bit_headers() -> bytes:
    """Headers in raw windows-1251 bytes, no RFC 2047 at all."""
    head = (
        "From: СЭП <notify@sep.elpts.ru>\r\nSubject: СЭП: заявление № 2026-000204 на смену собственника\r\n"
        "Content-Type: text/plain; charset=windows-1251\r\n\r\n"
    ).encode("cp1251")
    return head + sep_body("2026-000204", code="777888").encode("cp1251")


def unknown_charset() -> bytes:
    return raw_letter(
        {
            "From": "notify@sep.elpts.ru",
            "Subject": "=?x-unknown?Q?SEP?=",
            "Content-Type": "text/plain; charset=x-klingon",
        },
        sep_body("2026-000205", code="999000").encode("cp1251"),
    )


HTML_TABLE = """<html><head><style>td {{ color: red }}</style></head><body>
<p>Уважаемый пользователь!</p><p>Поступило заявление на&nbsp;смену собственника.</p>
<table border="1"><tr><td>Номер заявления:</td><td><b>{n}</b></td></tr>
<tr><td>Номер ЭПТС</td><td>164301000012345</td></tr>
<tr><td>VIN</td><td>XTA210990Y2765432</td></tr>
<tr><td>Код подтверждения:</td><td><span style="font-size:20px">{code}</span></td></tr>
<tr><td>Подтвердить до</td><td>2 декабря 2026 г.</td></tr></table>
<script>var x = "Код подтверждения: 000000";</script></body></html>"""


def html_only() -> bytes:
    """HTML only, windows-1251 in base64, the fields in a table."""
    html = MIMEText(HTML_TABLE.format(n="2026-000206", code="121212"), "html", "windows-1251")
    _headers(html, SUBJECTS["ownership_change"].format(n="2026-000206"), SEP_FROM, TECHNICAL, None)
    return html.as_bytes()


def alternative(plain_text: str | None) -> bytes:
    """multipart/alternative; the plain part wins when it says something, else the HTML is read."""
    msg = MIMEMultipart("alternative")
    msg.attach(MIMEText(plain_text or "", "plain", "utf-8"))
    msg.attach(MIMEText(HTML_TABLE.format(n="2026-000207", code="343434"), "html", "utf-8"))
    _headers(msg, SUBJECTS["ownership_change"].format(n="2026-000207"), SEP_FROM, TECHNICAL, None)
    return msg.as_bytes()


def forwarded_attachment() -> bytes:
    """A colleague forwards the notification as an attachment (message/rfc822)."""
    from email import message_from_bytes

    inner = message_from_bytes(sep_letter(number="2026-000208", code="565656"))
    msg = MIMEMultipart("mixed")
    msg.attach(MIMEText("Коллеги, пересылаю письмо из СЭП, разберитесь.", "plain", "utf-8"))
    msg.attach(MIMEMessage(inner))
    _headers(msg, "Fwd: письмо", "Иванов Иван <ivanov@example.ru>", TECHNICAL, None)
    return msg.as_bytes()


def forwarded_inline() -> bytes:
    text = (
        "Пересылаю.\n\n-------- Пересылаемое сообщение --------\nОт: СЭП <notify@sep.elpts.ru>\n"
        "Тема: СЭП: заявление № 2026-000209 на смену собственника\n\n"
        + sep_body("2026-000209", code="787878")
    )
    msg = MIMEText(text, "plain", "utf-8")
    _headers(
        msg, "Fwd: СЭП: заявление № 2026-000209 на смену собственника", "ivanov@example.ru", TECHNICAL, None
    )
    return msg.as_bytes()


def text_as_attachment() -> bytes:
    """An empty body; the notification is the attached notification.txt (windows-1251)."""
    msg = MIMEMultipart("mixed")
    attached = MIMEText(sep_body("2026-000210", code="909090"), "plain", "windows-1251")
    attached.add_header("Content-Disposition", "attachment", filename="notification.txt")
    msg.attach(attached)
    _headers(msg, SUBJECTS["ownership_change"].format(n="2026-000210"), SEP_FROM, TECHNICAL, None)
    return msg.as_bytes()


def with_pdf() -> bytes:
    """The text in the body, a PDF beside it (ignored)."""
    msg = MIMEMultipart("mixed")
    msg.attach(MIMEText(sep_body("2026-000211", code="131313"), "plain", "utf-8"))
    pdf = MIMEApplication("%PDF-1.4 Код подтверждения: 000000 %%EOF".encode(), "pdf")
    pdf.add_header("Content-Disposition", "attachment", filename="заявление.pdf")
    msg.attach(pdf)
    _headers(msg, SUBJECTS["ownership_change"].format(n="2026-000211"), SEP_FROM, TECHNICAL, None)
    return msg.as_bytes()


def broken_multipart() -> bytes:
    """No closing boundary, and a base64 part cut short: the parser reads what is there."""
    text = base64.b64encode(sep_body("2026-000212", code="246810").encode()).decode()
    return raw_letter(
        {
            "From": "notify@sep.elpts.ru",
            "Subject": b_word("СЭП: заявление № 2026-000212 на смену собственника", "utf-8"),
            "MIME-Version": "1.0",
            "Content-Type": 'multipart/mixed; boundary="XYZ"',
        },
        (
            "--XYZ\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            f"{text}\r\n--XYZ\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo"
        ).encode(),
    )


def folded_subject_without_space() -> bytes:
    """What Python 3.11's own mail package sends: the space at the fold of the subject lost."""
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"] = SEP_FROM
    msg["To"] = TECHNICAL
    msg["Subject"] = "СЭП: заявление № 2026-000213 на внесение сведений о лизинге"
    msg.set_content(sep_body("2026-000213", code="112233"))
    return msg.as_bytes()


def as_the_sep_emulator_sends() -> bytes:
    """The SEP emulator's way: EmailMessage with an SMTP policy whose lines never fold."""
    from email import policy
    from email.message import EmailMessage
    from email.utils import make_msgid

    msg = EmailMessage(policy=policy.SMTP.clone(max_line_length=998))
    msg["From"] = SEP_FROM
    msg["To"] = TECHNICAL
    msg["Subject"] = SUBJECTS["lease_application"].format(n="2026-000214")
    msg["Message-ID"] = make_msgid(domain="sep.elpts.ru")
    msg.set_content(sep_body("2026-000214", code="141414"), charset="utf-8")
    return msg.as_bytes()


def hostile() -> bytes:
    """NUL bytes where registers cannot hold them: in an encoded subject, the text, a file name."""
    return raw_letter(
        {
            "From": "=?utf-8?B?AA==?= <notify@sep.elpts.ru>",
            "Subject": "=?utf-8?B?"
            + base64.b64encode("СЭП:\0 заявление № 2026-000215".encode()).decode()
            + "?=",
            "Message-ID": "<nul\x00@sep.elpts.ru>",
            "MIME-Version": "1.0",
            "Content-Type": 'multipart/mixed; boundary="B"',
        },
        b"--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + sep_body("2026-000215", code="151515").replace("VIN", "\0VIN").encode()
        + b'\r\n--B\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename="a\x00\xcf.pdf"\r\n\r\n%PDF\r\n--B--\r\n',
    )


def garbage() -> bytes:
    return bytes(range(256)) * 4


def not_sep() -> bytes:
    msg = MIMEText("Скидки недели! Код подтверждения подписки: 123456.", "plain", "utf-8")
    _headers(msg, "Рассылка: новости компании", "news@shop.example.com", TECHNICAL, None)
    return msg.as_bytes()


def big_letter(size: int) -> bytes:
    """A letter of about ``size`` bytes: a SEP text and a large attachment."""
    msg = MIMEMultipart("mixed")
    msg.attach(MIMEText(sep_body("2026-000299", code="999999"), "plain", "utf-8"))
    msg.attach(MIMEApplication(b"\0" * (size * 3 // 4), "octet-stream"))
    _headers(msg, SUBJECTS["ownership_change"].format(n="2026-000299"), SEP_FROM, TECHNICAL, None)
    return msg.as_bytes()
