FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY config config
COPY models models
COPY integrations integrations
COPY tasks tasks
COPY workers workers
COPY sandbox sandbox
RUN pip install --no-cache-dir .
RUN useradd --system obmen && mkdir -p /var/obmen/sandbox-mail && chown obmen /var/obmen/sandbox-mail
USER obmen
CMD ["obmen", "--help"]
