"""Process entry points: the Celery app, the HTTP gateway and the ``obmen`` CLI."""
