# X-Ray API server image.
#
#   docker build -t xray-api .
#   docker run -p 8000:8000 -e DATABASE_URL=postgresql+asyncpg://USER:PASS@HOST:5432/xray xray-api
#
# Stage 1 builds the package and the server's dependencies (`.[api]` only: no SDK
# extras, no dev tools) into a virtualenv; stage 2 copies that virtualenv onto a clean
# slim image, so no compiler, pip cache or source tree ships.

FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
RUN python -m venv /opt/venv
# Only what the wheel is built from (.dockerignore keeps the rest out of the context).
COPY pyproject.toml hatch_build.py README.md ./
COPY xray/ xray/
COPY sdk/ sdk/
COPY api/ api/
# A non-editable install builds the wheel and installs it with the [api] extra. The slim
# image has no C compiler, so the SDK's optional C fast path is skipped (with a warning):
# the server does not use it.
RUN /opt/venv/bin/pip install --no-cache-dir ".[api]"


FROM python:3.11-slim

LABEL org.opencontainers.image.title="xray-api" \
      org.opencontainers.image.description="X-Ray API server: ingest, query and dashboard for pipeline decisions" \
      org.opencontainers.image.licenses="MIT"

# A fixed numeric UID, so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
RUN groupadd --system --gid 10001 xray \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin xray \
    && mkdir /app \
    && chown 10001:10001 /app

COPY --from=builder /opt/venv /opt/venv

ENV PATH="/opt/venv/bin:$PATH"
# XRAY_HOST: listen on every interface inside the container (the default is loopback).
# XRAY_RUN_MIGRATIONS: a single container (docker run, Compose) migrates at start;
# Kubernetes sets it to false and runs `xray db upgrade` as a Job instead.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    XRAY_HOST=0.0.0.0 \
    XRAY_PORT=8000 \
    XRAY_RUN_MIGRATIONS=true

# /app is the working directory and the only place the process may write to (the
# default SQLite file, when no DATABASE_URL is given).
WORKDIR /app
USER 10001:10001

EXPOSE 8000

# Liveness only (/healthz does not touch the database); no curl in a slim image.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('XRAY_PORT', '8000') + '/healthz', timeout=4)"]

CMD ["python", "-m", "api"]
