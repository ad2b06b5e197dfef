# handoffs image: the API (`handoffs serve`, the default), the worker
# (`handoffs worker`) and the one-shot `handoffs migrate` / `seed` all run
# from this one image. See docs/deployment.md.
#
# Layout inside the image mirrors the repository, because the code finds its
# Alembic scripts relative to the source tree
# (src/handoffs/db.py: MIGRATIONS_DIR = parents[2] / "migrations"):
#
#   /app/pyproject.toml
#   /app/src/handoffs/...      installed editable into /opt/venv
#   /app/migrations/...        => /app/src/handoffs/db.py -> /app/migrations
#   /app/worker.py             arq entry point (cwd /app is on sys.path)

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------- build stage
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH

# A machine that must use a package mirror passes it at build time
# (`docker build --build-arg PIP_INDEX_URL=...`); nothing is written here, and
# the build-stage argument does not reach the runtime image.
ARG PIP_INDEX_URL

RUN python -m venv /opt/venv

WORKDIR /app

# Dependencies first, from the lock alone, so editing the source does not reinstall them:
# the exact versions `make lock` resolved for [project].dependencies (no test or embedded
# extras: the image talks to real PostgreSQL and Redis).
COPY requirements.lock ./
RUN pip install -r requirements.lock

# Then the project itself (what .dockerignore lets through: pyproject.toml,
# README.md, src/, migrations/, worker.py). Editable, so the package is imported
# from /app/src and MIGRATIONS_DIR resolves to /app/migrations.
COPY . .
RUN pip install --no-deps -e . \
    && python -m compileall -q /app/src /app/migrations \
    && python -c "from handoffs.db import MIGRATIONS_DIR; assert (MIGRATIONS_DIR / 'env.py').is_file(), MIGRATIONS_DIR"

# -------------------------------------------------------------- runtime stage
FROM ${PYTHON_IMAGE} AS runtime

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HANDOFFS_DATA_DIR=/var/lib/handoffs

RUN groupadd --system --gid 10001 handoffs \
    && useradd --system --uid 10001 --gid handoffs --home-dir /var/lib/handoffs \
        --shell /usr/sbin/nologin handoffs \
    && mkdir -p /var/lib/handoffs \
    && chown handoffs:handoffs /var/lib/handoffs

# Same paths as in the build stage: the venv's scripts and the editable
# install's path hook point at /opt/venv and /app/src.
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app

WORKDIR /app
USER handoffs

EXPOSE 8000

# Liveness of the API process. Compose overrides it with /health/ready for the
# API replicas and disables it for the worker and the migrate job.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]

CMD ["handoffs", "serve", "--host", "0.0.0.0", "--port", "8000"]
