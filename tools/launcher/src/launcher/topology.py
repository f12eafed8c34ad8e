"""The process topology shared by `make dev`, the e2e tests and docker-compose.yml (checked by a test)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from common.exchanges.settings import sim_exchange_env

DEV_DATABASE = "gridbot"
DEV_POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
# One bearer token per internal route (common.settings: KeysTokenSettings, BalanceTokenSettings,
# TickersTokenSettings); a process gets only the tokens of the routes it serves or calls.
KEYS_TOKEN = "INTERNAL_KEYS_TOKEN"  # GET /internal/credentials/{user}/{exchange}: credentials <- engine
BALANCE_TOKEN = "INTERNAL_BALANCE_TOKEN"  # .../{exchange}/balance: credentials <- bots
TICKERS_TOKEN = "INTERNAL_TICKERS_TOKEN"  # GET /internal/bots/running-tickers: bots <- market-data
INTERNAL_TOKENS = (KEYS_TOKEN, BALANCE_TOKEN, TICKERS_TOKEN)
# How much nicer than the launcher `make dev` runs the engine replicas (ServiceSpec.nice).
ENGINE_NICE = 10


def fresh_tokens() -> dict[str, str]:
    """A new random value for every internal route token (one run of `make dev` or `make run`)."""
    return {name: secrets.token_hex(32) for name in INTERNAL_TOKENS}


@dataclass(frozen=True)
class ServiceSpec:
    """One deployable service: how it is started, migrated, configured and checked."""

    name: str
    module: str
    port: int
    settings: str  # "package.settings:Settings", the class whose fields are the env vars it reads
    migrate_module: str | None = None
    upstream: bool = True  # reached by the gateway
    # Not routed, but part of the gateway's GET /health/ready (READINESS_CHECKS), e.g. the engine.
    readiness_checked: bool = False
    uses_cache: bool = True
    uses_db: bool = False  # reads/writes another service's schema (migrations are that service's)
    uses_bus: bool = False
    uses_exchanges: bool = False
    env_prefix: str = ""
    health_path: str = "/health"
    # Env var -> the service whose base URL it carries (service-to-service calls, never via the gateway).
    links: dict[str, str] = field(default_factory=dict)
    # The internal route tokens it holds, and no others (the server's and the caller's side of each route).
    tokens: tuple[str, ...] = ()
    extra_env: dict[str, str] = field(default_factory=dict)
    # Run as several replicas (the engine): each process is named `<name>-<n>` and gets that name as its
    # stable identity in this variable, the same after every restart of that replica.
    replica_id_env: str | None = None
    # The dev topology's ports of replicas 2, 3, ... (replica 1 listens on `port`); their number sets how many
    # replicas `make dev` and compose run.
    replica_ports: tuple[int, ...] = ()
    # Another process of a service's package (the backtest worker): it runs that service's image with its own
    # command, and has no image of its own.
    image_of: str | None = None
    # The scheduling niceness `make dev` starts its processes with (compose: `cpu_shares`). It only matters
    # when the CPU is short: a raised one lets the processes that answer requests go first.
    nice: int = 0

    @property
    def image(self) -> str:
        """The service whose image (`deploy/Dockerfile` stage, `gridbot/<name>`) its containers run."""
        return self.image_of or self.name

    @property
    def replicated(self) -> bool:
        """Run as named replicas (`bots-1`, `bots-2`), each on its own port."""
        return self.replica_id_env is not None or bool(self.replica_ports)

    @property
    def replicas(self) -> int:
        """How many processes of it `make dev` and compose run."""
        return 1 + len(self.replica_ports)

    def replica_names(self, count: int | None = None) -> list[str]:
        """The process names of its replicas (`engine-1`, `engine-2`), or just its name if not replicated."""
        if not self.replicated:
            return [self.name]
        return [f"{self.name}-{n}" for n in range(1, (count or self.replicas) + 1)]

    @property
    def command(self) -> list[str]:
        """The command that runs it (the same in `make dev` and in compose)."""
        return ["python", "-m", self.module]

    @property
    def migrate_command(self) -> list[str] | None:
        """The prestart command that migrates its schema, if it owns one."""
        return ["python", "-m", self.migrate_module] if self.migrate_module else None


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        "exchange-sim",
        "exchange_sim",
        8900,
        "exchange_sim.settings:SimSettings",
        upstream=False,
        uses_cache=False,
        env_prefix="SIM_",
        health_path="/_sim/health",
    ),
    # BOTS_URL: disabling a user stops their bots (the bots service's admin route).
    ServiceSpec(
        "auth",
        "auth",
        3001,
        "auth.settings:Settings",
        migrate_module="auth.migrate",
        links={"BOTS_URL": "bots"},
    ),
    ServiceSpec(
        "credentials",
        "credentials",
        3002,
        "credentials.settings:Settings",
        migrate_module="credentials.migrate",
        uses_bus=True,
        uses_exchanges=True,
        tokens=(KEYS_TOKEN, BALANCE_TOKEN),
    ),
    ServiceSpec(
        "bots",
        "bots",
        3003,
        "bots.settings:Settings",
        migrate_module="trading.migrate",
        uses_bus=True,
        uses_exchanges=True,
        links={"CREDENTIALS_URL": "credentials"},
        tokens=(BALANCE_TOKEN, TICKERS_TOKEN),
        # Two processes behind the gateway, which sends each request to the one with fewer awaiting an
        # answer: one process is one core, and the bot routes are most of a dashboard's polling. Nothing of
        # it is per process but the stop-confirmation waiters, which every process hears (its own queue).
        replica_ports=(3011,),
    ),
    ServiceSpec(
        "engine",
        "engine",
        3004,
        "engine.settings:Settings",
        upstream=False,
        # The gateway's readiness check asks replica 1 (its `port`): see `service_env`.
        readiness_checked=True,
        uses_db=True,
        uses_bus=True,
        uses_exchanges=True,
        links={"CREDENTIALS_URL": "credentials"},
        tokens=(KEYS_TOKEN,),
        replica_id_env="ENGINE_ID",
        replica_ports=(3006,),
        # A crossing that fills many bots at once is a burst of CPU; on a machine the API shares, its requests
        # go first (docs/api-load.md "Who goes first"). A grid's next order is not measurably later.
        nice=ENGINE_NICE,
    ),
    ServiceSpec(
        "market-data",
        "market_data",
        3005,
        "market_data.settings:Settings",
        uses_bus=True,
        uses_exchanges=True,
        links={"BOTS_URL": "bots"},
        # It parses untrusted exchange feeds: no token that opens keys or balances.
        tokens=(TICKERS_TOKEN,),
    ),
    ServiceSpec(
        "backtest",
        "backtest",
        3007,
        "backtest.settings:Settings",
        migrate_module="backtest.migrate",
        uses_bus=True,
        uses_exchanges=True,
    ),
    # The backtest jobs' worker: the backtest package's second process (its /health on its port).
    ServiceSpec(
        "backtest-worker",
        "backtest.worker",
        3008,
        "backtest.settings:Settings",
        upstream=False,
        # Without a worker no backtest ever runs: the system is not ready.
        readiness_checked=True,
        uses_db=True,
        uses_bus=True,
        uses_exchanges=True,
        image_of="backtest",
    ),
    # Notification channels and deliveries, fed by the `events` and `credentials` exchanges (one process: its
    # routes, its consumers and its delivery worker).
    ServiceSpec(
        "notifier",
        "notifier",
        3010,
        "notifier.settings:Settings",
        migrate_module="notifier.migrate",
        uses_bus=True,
    ),
    # On the bus for live updates (GET /api/ws): user events, bot lifecycle and price ticks.
    ServiceSpec("gateway", "gateway", 3000, "gateway.settings:Settings", upstream=False, uses_bus=True),
)


def service(name: str) -> ServiceSpec:
    """Look a service up by name."""
    for spec in SERVICES:
        if spec.name == name:
            return spec
    raise KeyError(name)


def dev_ports() -> dict[str, int]:
    """`make dev`'s ports: each service's by its name (its replica 1's), and further replicas' by theirs."""
    ports = {spec.name: spec.port for spec in SERVICES}
    for spec in SERVICES:
        names = spec.replica_names()
        ports.update(zip(names[1:], spec.replica_ports, strict=True))
    return ports


def service_env(
    spec: ServiceSpec,
    *,
    database_url: str,
    redis_url: str,
    rabbitmq_url: str,
    ports: dict[str, int],
    tokens: Mapping[str, str],
    host: str = "127.0.0.1",
    environment: str = "development",
    cache_namespace: str = "gridbot",
    replica: str | None = None,
) -> dict[str, str]:
    """The environment one service process gets in the dev topology (`replica`: that process's name, for a
    replicated service; it listens on `ports[replica]` when given, else on the service's port)."""
    port = ports.get(replica, ports[spec.name]) if replica else ports[spec.name]
    env = {f"{spec.env_prefix}HOST": host, f"{spec.env_prefix}PORT": str(port)}
    if spec.replica_id_env and replica:
        env[spec.replica_id_env] = replica
    if not spec.env_prefix:
        env["ENVIRONMENT"] = environment
    if spec.uses_cache:
        env.update(REDIS_URL=redis_url, CACHE_NAMESPACE=cache_namespace)
    if spec.migrate_module or spec.uses_db:
        env["DATABASE_URL"] = database_url
    if spec.uses_bus:
        env["RABBITMQ_URL"] = rabbitmq_url
    if spec.uses_exchanges and "exchange-sim" in ports:
        env.update(sim_exchange_env(f"http://127.0.0.1:{ports['exchange-sim']}"))
    for var, target in spec.links.items():
        env[var] = f"http://127.0.0.1:{ports[target]}"
    for name in spec.tokens:
        env[name] = tokens[name]
    if spec.name == "bots":
        # The signal URLs the bots service hands out name this stack's gateway (the default says :3000).
        env["PUBLIC_API_URL"] = f"http://localhost:{ports['gateway']}"
    if spec.name == "gateway":
        env["SERVICES"] = json.dumps({s.name: _urls(s, ports) for s in SERVICES if s.upstream})
        # A replicated service is checked at replica 1: the gateway has no "any of" check, and asking every
        # replica would call the system down whenever one replica is (its bots are another's meanwhile).
        env["READINESS_CHECKS"] = json.dumps(
            {s.name: f"http://127.0.0.1:{ports[s.name]}" for s in SERVICES if s.readiness_checked}
        )
    env.update(spec.extra_env)
    return env


def _urls(spec: ServiceSpec, ports: Mapping[str, int]) -> str | list[str]:
    """The gateway's base URL of a service, or one per replica (those missing from `ports` left out)."""
    names = spec.replica_names()
    if len(names) == 1:
        return f"http://127.0.0.1:{ports[spec.name]}"
    first = {names[0]: ports[spec.name]}
    return [f"http://127.0.0.1:{port}" for name in names if (port := first.get(name) or ports.get(name))]
