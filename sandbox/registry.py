"""The emulators ``obmen sandbox`` serves. Each flow appends its emulator class here."""

from __future__ import annotations

from sandbox.bitrix24 import Bitrix24Emulator
from sandbox.harness import Emulator
from sandbox.mail import SandboxMailbox, SmtpSink
from sandbox.onec import OnecEmulator
from sandbox.sbis import SbisEmulator
from sandbox.sep.emulator import SepEmulator
from sandbox.sms import SmscEmulator
from sandbox.synerdocs.emulator import SynerdocsEmulator

EMULATORS: list[type[Emulator]] = [
    SmtpSink,
    SandboxMailbox,
    SepEmulator,
    Bitrix24Emulator,
    SbisEmulator,
    SynerdocsEmulator,
    OnecEmulator,
    SmscEmulator,
]
