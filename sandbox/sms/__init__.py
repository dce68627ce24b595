"""SMSC (smsc.ru) HTTP API emulator: sends, delivery reports, a balance that runs out, error 9."""

from sandbox.sms.emulator import SmscEmulator

__all__ = ["SmscEmulator"]
