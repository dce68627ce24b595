"""The SEP exchange (seed 000): requests to АС «СЭП», their queue numbers, polls and results.

``entries`` are the public tasks, ``actions`` what they do, ``chain`` how a request's steps follow
each other, ``steps`` the steps, ``apply`` what results change, ``worklists`` what people see.
"""

from tasks.sep import entries, steps  # noqa: F401  (registers the tasks)
