"""The 1C:Enterprise HTTP-service emulator (seed 004: invoices as JSON with a base64 PDF)."""

from sandbox.onec.emulator import OnecEmulator

__all__ = ["OnecEmulator"]
