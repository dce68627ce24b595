"""Emulators of the external systems, served by one HTTP server, and the demo scenarios.

Only ``obmen sandbox`` and ``obmen demo`` import this package. An emulator never imports the client
it serves: each side writes its own wire code from the protocol, so a misreading fails a test.
"""
