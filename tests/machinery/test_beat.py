"""Only one beat sends: a second one waits on the Redis lock until the first is gone."""

from __future__ import annotations

from tests.harness.processes import OBMEN, Process
from tests.harness.waiting import wait_for

ENV = {"OBMEN_OUTBOX_RELAY_INTERVAL_S": "1"}
SENT = "Sending due task outbox-relay"


def test_a_second_beat_waits_for_the_lock() -> None:
    first = Process([OBMEN, "beat"], env=ENV)
    second: Process | None = None
    try:
        first.wait_for_output(SENT, timeout=60)
        second = Process([OBMEN, "beat"], env=ENV)
        second.wait_for_output("beat: Starting", timeout=60)
        baseline = first.text().count(SENT)
        wait_for(
            lambda: first.text().count(SENT) >= baseline + 3,
            timeout=30,
            what="three more sends by the first beat",
        )
        assert SENT not in second.text()
        assert "Acquired lock" not in second.text()

        first.stop()  # a clean stop releases the lock
        second.wait_for_output(SENT, timeout=90)
    finally:
        first.stop()
        if second is not None:
            second.stop()
