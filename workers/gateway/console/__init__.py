"""The web console under ``/console/`` (issue 12): server-rendered Russian pages for accounting staff,
managers and ops, over the same registers, entries and tasks as the API. See docs/console.md."""
