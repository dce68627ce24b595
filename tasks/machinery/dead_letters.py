"""The one way a message no task can run is recorded: a ``dead_letters`` row with the reason.

Two places find such messages and both come here: a step or an entry refusing its arguments
(``tasks/machinery/steps.py``), and the worker's consumer refusing a message before any task code
runs — an unknown task, a body that is not JSON, no task headers (``workers/consumer.py``).
Whatever the message held, the row can be written: every value is escaped and clipped
(``integrations/storable.py``). ``obmen_dead_letters`` on ``/metrics`` counts the rows.
"""

from __future__ import annotations

from typing import Any

import structlog

from integrations.storable import escaped, escaped_text
from models.db import session_scope
from models.dead_letters import DeadLetter
from tasks.machinery.policy import describe

log = structlog.get_logger(__name__)

# The widths of the register's columns.
NAME_LIMIT = 200
REASON_LIMIT = 4000


def record_dead_letter(task_name: str, task_id: str | None, payload: Any, reason: str) -> bool:
    """Write the row; False (and an error in the log, with the message) when the store is away.

    Never raises: the caller refuses the message either way, and a message that cannot be run must
    not turn into a crash or a loop of redeliveries because its record could not be written.
    """
    name = escaped_text(task_name, NAME_LIMIT)
    ident = None if task_id is None else escaped_text(task_id, NAME_LIMIT)
    held = escaped(payload)
    why = escaped_text(reason, REASON_LIMIT)
    try:
        with session_scope() as session:
            session.add(DeadLetter(task_name=name, task_id=ident, payload=held, error=why))
    except Exception as exc:
        log.error(
            "dead_letter.not_recorded",
            task=name,
            task_id=ident,
            reason=why,
            payload=held,
            error=describe(exc),
        )
        return False
    log.error("task.rejected", task=name, task_id=ident, error=why)
    return True
