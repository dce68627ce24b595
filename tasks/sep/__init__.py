"""The SEP exchange (seed 000): requests to АС «СЭП», their queue numbers, polls and results.

``chain`` names the flow's tasks and how a request's steps follow each other; ``entries`` are its
public tasks, ``steps`` its steps, ``queries`` the work lists people see, ``clients`` its SEP client
(``record`` its recorder). The logic: ``actions`` (what can be asked of SEP), ``apply`` (what a
result changes), ``lookup`` (what the steps look up in the registers).
"""

from tasks.sep import entries, steps  # noqa: F401  (registers the tasks)
