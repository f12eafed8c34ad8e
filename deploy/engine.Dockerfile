# engine: built from the repository root (docker compose sets the context).
FROM python:3.11-slim AS build
RUN pip install --no-cache-dir uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
WORKDIR /app
# Step 1: third-party dependencies only, cached until uv.lock or a pyproject changes.
COPY pyproject.toml uv.lock ./
COPY libs/common/pyproject.toml libs/common/
COPY services/auth/pyproject.toml services/auth/
COPY services/bots/pyproject.toml services/bots/
COPY services/credentials/pyproject.toml services/credentials/
COPY services/engine/pyproject.toml services/engine/
COPY services/gateway/pyproject.toml services/gateway/
COPY services/market-data/pyproject.toml services/market-data/
COPY tools/exchange-sim/pyproject.toml tools/exchange-sim/
COPY tools/launcher/pyproject.toml tools/launcher/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace --package gridbot-engine
# Step 2: our own code.
COPY libs/common libs/common
COPY services/engine services/engine
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package gridbot-engine

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /app app
WORKDIR /app
COPY --from=build --chown=app:app /app/.venv /app/.venv
ENV PATH="/app/.venv/bin:$PATH" PYTHONUNBUFFERED=1 HOST=0.0.0.0 PORT=3004
USER app
EXPOSE 3004
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=5 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/health', timeout=2)"]
CMD ["python", "-m", "engine"]
