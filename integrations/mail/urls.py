"""``OBMEN_IMAP_URL`` and ``OBMEN_SMTP_URL``: where mail is read and sent, and how securely.

``imaps://`` and ``smtps://`` speak TLS from the first byte. The plain schemes are plain only towards
a loopback address (the sandbox, a local relay); towards any other host they require STARTTLS and
refuse to log in without it, so a password never crosses a network in clear text.
``maildir:///path`` is a local Maildir, the embedded demo's mailbox.
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

IMAP_PORTS = {"imap": 143, "imaps": 993}
SMTP_PORTS = {"smtp": 25, "smtps": 465}


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServerUrl:
    scheme: str
    host: str
    port: int
    username: str | None
    password: str | None
    path: str

    @property
    def implicit_tls(self) -> bool:
        return self.scheme.endswith("s")

    @property
    def starttls_required(self) -> bool:
        return not self.implicit_tls and not is_loopback(self.host)

    def identity(self) -> str:
        """The URL without its password: what the registers and the exchange log may show."""
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{user}{host}:{self.port}{self.path}"


@dataclass(frozen=True)
class MaildirUrl:
    path: str

    def identity(self) -> str:
        return f"maildir://{self.path}"


def _server(url: str, ports: dict[str, int], what: str) -> ServerUrl:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ports:
        raise ValueError(f"{what} URL must start with {' or '.join(f'{s}://' for s in ports)}")
    if not parts.hostname:
        raise ValueError(f"{what} URL has no host")
    return ServerUrl(
        scheme=scheme,
        host=parts.hostname,
        port=parts.port or ports[scheme],
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        path=unquote(parts.path),
    )


def parse_mailbox_url(url: str) -> ServerUrl | MaildirUrl:
    """``imap[s]://user:pass@host:port/FOLDER`` (FOLDER defaults to INBOX) or ``maildir:///path``."""
    if url.startswith("maildir:"):
        path = unquote(urlsplit(url).path)
        if not path:
            raise ValueError("maildir URL needs a path: maildir:///var/mail/sep")
        return MaildirUrl(path)
    server = _server(url, IMAP_PORTS, "OBMEN_IMAP_URL")
    if not server.username or server.password is None:
        raise ValueError("OBMEN_IMAP_URL needs a user and a password: imaps://user:pass@host/INBOX")
    folder = server.path.strip("/") or "INBOX"
    return ServerUrl(server.scheme, server.host, server.port, server.username, server.password, "/" + folder)


def parse_smtp_url(url: str) -> ServerUrl:
    """``smtp[s]://[user:pass@]host:port``."""
    return _server(url, SMTP_PORTS, "OBMEN_SMTP_URL")


def tls_context(ca_file: str | None = None) -> ssl.SSLContext:
    """Certificates are verified; ``ca_file`` adds a private CA (a company's, the test harness's)."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context
