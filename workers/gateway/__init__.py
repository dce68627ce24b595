"""The HTTP gateway (FastAPI): health, metrics, ops endpoints, and the routers the flows add."""
