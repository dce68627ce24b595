"""The mail flow (seed 000): SEP notification letters read once, their codes filed, people told.

``chain`` names the flow's tasks and how they follow each other; ``steps`` are its steps, ``jobs`` its
beat job. The logic: ``intake`` (storing what the mailbox holds), ``matching`` (whose vehicle a letter
is about), ``notice`` (the personal notification), ``letters`` (any flow's outgoing letters).
"""

from tasks.mail import jobs, steps  # noqa: F401  (registers the tasks)
