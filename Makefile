# gridbot — grid trading bot backend. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv is bootstrapped from PyPI by `make install` when it is missing; `python3 -m uv` works without PATH changes.
UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := python3 -m uv
endif

PYTEST_ARGS ?=
# Where `make secrets` writes (docker compose reads .env from the repository root).
ENV_FILE ?= .env
# The compose v2 plugin when present, else the standalone docker-compose (1.29 understands this file too);
# `=`: looked up only by the targets that use it.
COMPOSE = $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
# The whole-system tests (tests/e2e) start real stacks; this many pytest-xdist workers run them side by side,
# each on stacks of its own (`make test E2E_WORKERS=0` runs them in the one process).
E2E_WORKERS ?= 2
# The package suites on this many pytest-xdist workers (each its own PostgreSQL database; every test its own
# Redis/RabbitMQ namespace): most of their time is waiting on servers and processes. 0 = one process.
TEST_WORKERS ?= 2
# The engine benches (bench/engine.py, bench/takeover.py) run 2,000 bots with --quick (a few minutes);
# `make bench BENCH_ARGS=` runs the issue's 10,000 bots and 10 kills (about a quarter of an hour).
# bench/recovery.py runs its defaults: the exchange and bus faults, never the restarts of the shared servers
# (those need --restart-servers, on a machine of your own).
# bench/api_load.py runs 100 polling users against a whole `make dev` stack (a few minutes with its set-up),
# then the sockets' share of their figures, in 20 alternating phases on one stack (--ws-paired 10, ~7 minutes),
# then 500 users (700 req/s offered, past a 2-core machine's capacity): the answered requests' figures and the
# gateway's refusals show the admission and the pools holding instead of a collapse (~3 minutes).
BENCH_ARGS ?= --quick
SRC := $(wildcard libs/*/src services/*/src tools/*/src)

.PHONY: help install run dev admin secrets up down image test lint fmt typecheck bench migrate rotate-keys clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

install: ## Install uv (if missing) and every workspace package into .venv
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || \
		python3 -m pip install --quiet --user uv 2>/dev/null || \
		python3 -m pip install --quiet --user --break-system-packages uv || \
		python3 -m pip install --quiet uv
	$(UV) sync --frozen --compile-bytecode

run: install ## Run the whole system in one process (SQLite, in-process bus and cache) on :3000
	$(UV) run --frozen python -m launcher.embedded

dev: install ## Run every service as its own process (two engines) over local RabbitMQ/PostgreSQL/Redis; restarts what dies
	$(UV) run --frozen python -m launcher.dev

admin: install ## Make a registered user an administrator: make admin EMAIL=you@example.com (DATABASE_URL, else make run's)
	@test -n "$(EMAIL)" || { echo "usage: make admin EMAIL=you@example.com"; exit 2; }
	$(UV) run --frozen python -m auth.promote $(EMAIL)

secrets: ## Write .env with fresh random secrets for docker compose (never overwrites an existing one)
	python3 tools/launcher/src/launcher/gensecrets.py $(ENV_FILE)

up: ## docker compose up (every service in its own container; needs the .env of `make secrets`)
	$(COMPOSE) up --build -d

down: ## docker compose down
	$(COMPOSE) down

image: ## Build one service's image from deploy/Dockerfile, tagged gridbot/<service>: make image SERVICE=auth
	@test -n "$(SERVICE)" || { echo "name the service: make image SERVICE=auth (bots, credentials, engine, exchange-sim, gateway, market-data)" >&2; exit 2; }
	docker build -f deploy/Dockerfile --build-arg SERVICE=$(SERVICE) -t gridbot/$(SERVICE) .

test: install ## Run the whole test suite against real PostgreSQL, Redis and RabbitMQ
	$(UV) run --frozen pytest --ignore=tests/e2e -n $(TEST_WORKERS) --durations=15 $(PYTEST_ARGS) || [ $$? -eq 5 ]
	$(UV) run --frozen pytest tests/e2e -n $(E2E_WORKERS) --dist loadgroup $(PYTEST_ARGS) || [ $$? -eq 5 ]

lint: install ## ruff lint and format check
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .

fmt: install ## Format and auto-fix
	$(UV) run --frozen ruff format .
	$(UV) run --frozen ruff check --fix .

typecheck: install ## mypy (strict) over every package
	$(UV) run --frozen mypy $(SRC)

bench: install ## Run every benchmark of bench/ (they print figures); BENCH_ARGS= for the engine's 10,000-bot runs
	$(UV) run --frozen python bench/gateway.py
	$(UV) run --frozen python bench/observability.py
	$(UV) run --frozen python bench/api_load.py --users 100
	$(UV) run --frozen python bench/api_load.py --users 100 --ws-paired 10
	$(UV) run --frozen python bench/api_load.py --users 500 --duration 30
	$(UV) run --frozen python bench/live_costs.py
	$(UV) run --frozen python bench/log_costs.py
	$(UV) run --frozen python bench/bots_reads.py
	$(UV) run --frozen python bench/outbox_envelope.py
	$(UV) run --frozen python bench/batch_plan.py
	$(UV) run --frozen python bench/market_data.py
	$(UV) run --frozen python bench/exchange_sim_history.py
	$(UV) run --frozen python bench/recovery.py
	$(UV) run --frozen python bench/engine.py --replicas 1,2 $(BENCH_ARGS)
	$(UV) run --frozen python bench/takeover.py $(BENCH_ARGS)
	$(UV) run --frozen python bench/backtest_kernel.py
	$(UV) run --frozen python bench/recommend.py

migrate: install ## Apply every service's migrations to DATABASE_URL
	$(UV) run --frozen python -m launcher.migrate

rotate-keys: install ## Re-encrypt every stored credential under ENCRYPTION_KEY_VERSION (resumable)
	$(UV) run --frozen python -m credentials.rotate

clean: ## Remove local state (the embedded SQLite file and simulator state, caches)
	rm -rf var/*.db var/*.db-* var/exchange-sim.json* var/.exchange-sim.json.*.tmp .mypy_cache .ruff_cache
