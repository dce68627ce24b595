"""A real IMAP server for tests and benchmarks: Dovecot on a loopback port, in a temporary directory.

As root, Dovecot runs its login processes as ``dovenull`` and the mail processes as ``dovecot``
(the users the Debian package ``dovecot-imapd`` creates), so the temporary directory is handed to
them. As another user, every process runs as that user. ``tls=True`` adds an IMAPS listener with
a throwaway certificate (its file is ``ca_file``, for ``OBMEN_MAIL_CA_FILE``).
"""

from __future__ import annotations

import imaplib
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

from tests.harness.processes import Process, free_port
from tests.harness.waiting import wait_for

PACKAGE = "dovecot-imapd"


def dovecot_binary() -> str | None:
    return shutil.which("dovecot") or next(
        (p for p in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot") if os.path.exists(p)), None
    )


class DovecotServer:
    def __init__(self, user: str = "sep", password: str = "sep-secret", tls: bool = False) -> None:
        binary = dovecot_binary()
        if binary is None:
            raise RuntimeError(
                f"Dovecot is not installed (Debian package {PACKAGE}); `make test` installs it as root"
            )
        self.binary = binary
        self.user, self.password = user, password
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.dir = Path(tempfile.mkdtemp(prefix="obmen-dovecot-"))
        self.dir.chmod(0o755)
        self.config = self.dir / "dovecot.conf"
        self.ca_file: str | None = None
        self.process: Process | None = None
        self._write_config()

    def _write_config(self) -> None:
        root = os.geteuid() == 0
        if root:
            internal, login = "dovecot", "dovenull"
        else:
            internal = login = pwd.getpwuid(os.geteuid()).pw_name
        mail_user = pwd.getpwnam(internal)
        for sub in ("mail", "home", "state"):
            (self.dir / sub).mkdir()
            os.chown(self.dir / sub, mail_user.pw_uid, mail_user.pw_gid)
        (self.dir / "passwd").write_text(f"{self.user}:{{PLAIN}}{self.password}\n")
        ssl = "ssl = no"
        listeners = f"  inet_listener imap {{\n    address = 127.0.0.1\n    port = {self.port}\n  }}\n"
        if self.tls_port:
            cert, key = self.dir / "cert.pem", self.dir / "key.pem"
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                 "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                 "-keyout", str(key), "-out", str(cert)],
                check=True, capture_output=True, timeout=60,
            )  # fmt: skip
            self.ca_file = str(cert)
            ssl = f"ssl = yes\nssl_cert = <{cert}\nssl_key = <{key}\nssl_min_protocol = TLSv1.2"
            listeners += f"  inet_listener imaps {{\n    address = 127.0.0.1\n    port = {self.tls_port}\n    ssl = yes\n  }}\n"
        self.config.write_text(
            f"""
base_dir = {self.dir}/run
state_dir = {self.dir}/state
log_path = {self.dir}/dovecot.log
protocols = imap
listen = 127.0.0.1
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal}
default_internal_group = {internal}
default_login_user = {login}
first_valid_uid = {mail_user.pw_uid}
last_valid_uid = {mail_user.pw_uid}
mail_location = maildir:{self.dir}/mail/%u
mail_uid = {mail_user.pw_uid}
mail_gid = {mail_user.pw_gid}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.dir}/passwd
}}
userdb {{
  driver = static
  args = home={self.dir}/home/%u
}}
service imap-login {{
{listeners}}}
service stats {{
  unix_listener stats-reader {{
    user = {internal}
  }}
  unix_listener stats-writer {{
    user = {internal}
  }}
}}
"""
        )

    def url(self, folder: str = "INBOX", tls: bool = False) -> str:
        credentials = f"{quote(self.user)}:{quote(self.password)}"
        if tls:
            return f"imaps://{credentials}@127.0.0.1:{self.tls_port}/{folder}"
        return f"imap://{credentials}@127.0.0.1:{self.port}/{folder}"

    def start(self) -> DovecotServer:
        self.process = Process([self.binary, "-F", "-c", str(self.config)])
        wait_for(self._accepts, timeout=30, what=f"Dovecot on port {self.port}")
        return self

    def _accepts(self) -> bool:
        assert self.process is not None
        if self.process.proc.poll() is not None:
            log = (self.dir / "dovecot.log").read_text() if (self.dir / "dovecot.log").exists() else ""
            raise AssertionError(
                f"Dovecot exited with {self.process.proc.returncode}:\n{self.process.text()}\n{log}"
            )
        try:
            client = imaplib.IMAP4("127.0.0.1", self.port, timeout=2)
        except OSError:
            return False
        client.logout()
        return True

    def client(self) -> imaplib.IMAP4:
        client = imaplib.IMAP4("127.0.0.1", self.port, timeout=30)
        client.login(self.user, self.password)
        return client

    def append(self, raws: list[bytes], folder: str = "INBOX") -> None:
        client = self.client()
        try:
            for raw in raws:
                typ, data = client.append(f'"{folder}"', None, None, raw)
                assert typ == "OK", data
        finally:
            client.logout()

    def flags(self, folder: str = "INBOX") -> dict[int, str]:
        """``{uid: flags}`` of every message in ``folder``."""
        client = self.client()
        try:
            client.select(f'"{folder}"', readonly=True)
            typ, data = client.uid("FETCH", "1:*", "(UID FLAGS)")
            out = {}
            for line in data:
                if isinstance(line, bytes) and b"UID" in line:
                    text = line.decode()
                    uid = int(text.split("UID ")[1].split()[0].rstrip(")"))
                    out[uid] = text.split("FLAGS (")[1].split(")")[0]
            return out
        finally:
            client.logout()

    def save(self, raws: list[bytes], folder: str) -> None:
        """Store letters in ``folder`` (created if new) through doveadm, which names folders in UTF-8:
        no IMAP client's folder-name encoding is involved."""
        doveadm = self._doveadm()
        subprocess.run(
            [doveadm, "-c", str(self.config), "mailbox", "create", "-u", self.user, folder],
            check=False, capture_output=True, timeout=60,
        )  # fmt: skip
        for raw in raws:
            subprocess.run(
                [doveadm, "-c", str(self.config), "save", "-u", self.user, "-m", folder],
                input=raw, check=True, capture_output=True, timeout=60,
            )  # fmt: skip

    def _doveadm(self) -> str:
        return shutil.which("doveadm") or str(Path(self.binary).with_name("doveadm"))

    def set_uidvalidity(self, value: int, folder: str = "INBOX") -> None:
        """What a rebuilt server does to a mailbox: a new UIDVALIDITY (the same messages)."""
        doveadm = self._doveadm()
        subprocess.run(
            [doveadm, "-c", str(self.config), "mailbox", "update", "-u", self.user, "--uid-validity", str(value), folder],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> DovecotServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
