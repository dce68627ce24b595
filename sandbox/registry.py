"""The emulators ``obmen sandbox`` serves. Each flow appends its emulator class here."""

from __future__ import annotations

from sandbox.bitrix24 import Bitrix24Emulator
from sandbox.harness import Emulator
from sandbox.mail import SandboxMailbox, SmtpSink
from sandbox.sbis import SbisEmulator

EMULATORS: list[type[Emulator]] = [Bitrix24Emulator, SbisEmulator, SmtpSink, SandboxMailbox]
