"""SMS to subscribers, sent once each: ``outgoing`` (what a flow calls, in its own transaction, to have
a message sent), ``steps`` (the send and the delivery report), ``clients`` (the gateway client as
tasks use it), ``chain`` (the task names)."""

from tasks.sms import steps  # noqa: F401  (registers the tasks)
