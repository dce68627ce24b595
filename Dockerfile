# Two stages: the build tools and pip's caches stay in the first; the image holds the virtualenv only.
FROM python:3.11-slim AS build
WORKDIR /src
RUN python -m venv /opt/obmen
COPY constraints.txt pyproject.toml README.md ./
COPY config config
COPY models models
COPY integrations integrations
COPY tasks tasks
COPY workers workers
COPY sandbox sandbox
# The versions `make venv` and the tests use (constraints.txt, refreshed by `make lock`).
RUN /opt/obmen/bin/pip install --no-cache-dir -c constraints.txt .

FROM python:3.11-slim
COPY --from=build /opt/obmen /opt/obmen
ENV PATH=/opt/obmen/bin:$PATH PYTHONUNBUFFERED=1
RUN useradd --system obmen && mkdir -p /var/obmen/sandbox-mail && chown obmen /var/obmen/sandbox-mail
USER obmen
WORKDIR /var/obmen
# A worker probes its ready file (OBMEN_WORKER_READY_FILE), any other process the register store
# and the broker; docker-compose.yml gives each service its own probe.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 CMD ["obmen", "healthcheck"]
CMD ["obmen", "--help"]
