"""The emulators ``obmen sandbox`` serves. Each flow appends its emulator class here."""

from __future__ import annotations

from sandbox.harness import Emulator
from sandbox.sbis import SbisEmulator

EMULATORS: list[type[Emulator]] = [SbisEmulator]
