"""The Maildir backend, for the embedded demo (and a local delivery agent, if someone has one).

A Maildir has no UIDs, so this backend keeps them the way IMAP servers built on Maildir do: a UID
list file beside ``new/`` and ``cur/`` (``obmen-uidlist.json``) gives each file name a UID, in the
order the files arrived, and carries a UIDVALIDITY. Deleting the list starts a new UIDVALIDITY,
exactly as a rebuilt IMAP mailbox would. Seen messages move to ``cur/`` with the ``S`` flag.
A lock file serialises sessions, so two readers never hand out one UID twice.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from integrations.errors import PermanentError
from integrations.mail.mailbox import HEADER_LIMIT, Fetched, Transcript
from integrations.mail.urls import MaildirUrl

UIDLIST = "obmen-uidlist.json"


def _key(name: str) -> str:
    """The unique part of a Maildir file name, without the ``:2,FLAGS`` info."""
    return name.split(":", 1)[0]


def _arrival(name: str) -> tuple[float, str]:
    head = name.split(".", 1)[0]
    try:
        return float(head), name
    except ValueError:
        return float("inf"), name


class MaildirMailbox:
    def __init__(self, root: Path, identity: str, transcript: Transcript) -> None:
        self.root = root
        self.identity = identity
        self.transcript = transcript
        self._list_path = root / UIDLIST
        if self._list_path.exists():
            state = json.loads(self._list_path.read_text())
        else:
            # Milliseconds: a list rebuilt within the same second still gets a new UIDVALIDITY.
            state = {"uidvalidity": time.time_ns() // 1_000_000, "next_uid": 1, "uids": {}}
        self.uidvalidity: int = int(state["uidvalidity"])
        self._next_uid: int = int(state["next_uid"])
        self._uids: dict[str, int] = dict(state["uids"])

    def _files(self) -> dict[str, Path]:
        files: dict[str, Path] = {}
        for sub in ("new", "cur"):
            for entry in os.scandir(self.root / sub):
                if entry.is_file() and not entry.name.startswith("."):
                    files[_key(entry.name)] = Path(entry.path)
        return files

    def _save(self) -> None:
        tmp = self._list_path.with_suffix(".tmp")
        state = {"uidvalidity": self.uidvalidity, "next_uid": self._next_uid, "uids": self._uids}
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self._list_path)

    def _by_uid(self) -> dict[int, Path]:
        files = self._files()
        return {self._uids[key]: path for key, path in files.items() if key in self._uids}

    def uids_after(self, uid: int) -> list[int]:
        files = self._files()
        unknown = sorted((k for k in files if k not in self._uids), key=lambda k: _arrival(files[k].name))
        for key in unknown:
            self._uids[key] = self._next_uid
            self._next_uid += 1
        # Files that are gone keep no UID: a UID is never reused (next_uid only grows).
        self._uids = {k: v for k, v in self._uids.items() if k in files}
        if unknown or not self._list_path.exists():
            self._save()
        found = sorted(u for u in self._uids.values() if u > uid)
        self.transcript.add(
            f"SCAN {self.root} after UID {uid}", f"{len(found)} UIDs ({len(unknown)} new files)"
        )
        return found

    def fetch(self, uids: Sequence[int], max_bytes: int) -> list[Fetched]:
        by_uid = self._by_uid()
        out = []
        for uid in uids:
            path = by_uid.get(uid)
            if path is None:
                continue
            try:
                stat = path.stat()
                received = datetime.fromtimestamp(stat.st_mtime, UTC)
                with path.open("rb") as handle:
                    if stat.st_size <= max_bytes:
                        out.append(Fetched(uid, stat.st_size, received, handle.read(), True))
                    else:
                        out.append(
                            Fetched(
                                uid, stat.st_size, received, _header_block(handle.read(HEADER_LIMIT)), False
                            )
                        )
            except FileNotFoundError:  # moved or deleted by someone else meanwhile
                continue
        self.transcript.add(f"READ {len(uids)} UIDs", f"{len(out)} read")
        return out

    def mark_seen(self, uids: Sequence[int]) -> None:
        by_uid = self._by_uid()
        for uid in uids:
            path = by_uid.get(uid)
            if path is None:
                continue
            key, _, info = path.name.partition(":")
            flags = set(info[2:]) if info.startswith("2,") else set()
            target = self.root / "cur" / f"{key}:2,{''.join(sorted(flags | {'S'}))}"
            if target != path:
                try:
                    os.rename(path, target)
                except FileNotFoundError:
                    continue
        self.transcript.add(f"FLAG {len(uids)} UIDs seen", "OK")


def _header_block(head: bytes) -> bytes:
    for separator in (b"\r\n\r\n", b"\n\n"):
        at = head.find(separator)
        if at >= 0:
            return head[: at + len(separator)]
    return head


@contextmanager
def maildir_session(url: MaildirUrl, transcript: Transcript) -> Iterator[MaildirMailbox]:
    root = Path(url.path)
    if not (root / "new").is_dir() or not (root / "cur").is_dir():
        raise PermanentError(f"{url.path} is not a Maildir (it needs new/ and cur/)")
    with (root / "obmen-uidlist.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            box = MaildirMailbox(root, url.identity(), transcript)
            transcript.add(f"OPEN {url.path}", f"UIDVALIDITY {box.uidvalidity}")
            yield box
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
