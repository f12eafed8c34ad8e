"""docker-compose.yml cannot run here (no Docker engine): check it against the topology `make dev` runs, and
resolve it with the compose tool itself (`docker compose config`) against the .env that `make secrets` writes."""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from common.exchanges.settings import DEFAULT_URLS, sim_exchange_env
from common.testing.infra import in_ci
from exchange_sim.settings import CANDLE_FILE_NAME, DEFAULT_HISTORY_MINUTES, SimSettings
from launcher import gensecrets
from launcher.dev import Stack
from launcher.topology import (
    INTERNAL_TOKENS,
    KEYS_TOKEN,
    SERVICES,
    ServiceSpec,
    dev_ports,
    fresh_tokens,
    service,
    service_env,
)

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
INFRA = {"postgres", "redis", "rabbitmq"}
# Monitoring (the `observability` profile, tests/deploy/test_observability.py): not services of ours.
OBSERVABILITY = {"prometheus", "grafana"}
# What must never reach market-data, which parses untrusted exchange feeds.
KEY_OPENERS = {KEYS_TOKEN, "INTERNAL_BALANCE_TOKEN", "ENCRYPTION_KEY"}


def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def settings_fields(spec: ServiceSpec) -> set[str]:
    module, cls = spec.settings.split(":")
    settings = getattr(importlib.import_module(module), cls)
    prefix = str(settings.model_config.get("env_prefix", "")).upper()
    return {prefix + name.upper() for name in settings.model_fields}


def owner(name: str) -> tuple[ServiceSpec, bool]:
    """The topology service a compose service runs (one replica of it: `engine-2`), and whether it is its
    migration step."""
    for spec in SERVICES:
        if name in spec.replica_names():
            return spec, False
        if spec.migrate_module and name == f"{spec.name}-migrate":
            return spec, True
    raise AssertionError(f"compose service {name!r} is not in the topology")


def ours() -> dict[str, dict[str, Any]]:
    return {k: v for k, v in compose()["services"].items() if k not in INFRA | OBSERVABILITY}


def test_every_topology_service_is_in_compose() -> None:
    names = set(ours())
    for spec in SERVICES:
        assert set(spec.replica_names()) <= names, spec.name
        if spec.migrate_module:
            assert f"{spec.name}-migrate" in names


@pytest.mark.parametrize("name", sorted(ours()))
def test_command_is_the_one_make_dev_runs(name: str) -> None:
    spec, is_migration = owner(name)
    expected = spec.migrate_command if is_migration else spec.command
    assert ours()[name]["command"] == expected


@pytest.mark.parametrize("name", sorted(ours()))
def test_every_variable_is_read_by_the_settings(name: str) -> None:
    spec, _ = owner(name)
    env = ours()[name].get("environment", {})
    unknown = set(env) - settings_fields(spec)
    assert not unknown, f"{name} sets variables its settings do not read: {sorted(unknown)}"


@pytest.mark.parametrize("spec", SERVICES, ids=lambda s: s.name)
def test_make_dev_env_is_read_by_the_settings(spec: ServiceSpec) -> None:
    for replica in spec.replica_names():
        env = service_env(
            spec,
            database_url="postgresql+asyncpg://x/y",
            redis_url="redis://x",
            rabbitmq_url="amqp://x",
            ports=dev_ports(),
            tokens=fresh_tokens(),
            replica=replica if spec.replicated else None,
        )
        assert not set(env) - settings_fields(spec)
        if spec.replica_id_env:
            assert env[spec.replica_id_env] == replica


def test_compose_runs_the_engine_replicas_make_dev_runs_alike_but_for_their_engine_id() -> None:
    spec = service("engine")
    names = spec.replica_names()
    assert names == ["engine-1", "engine-2"]
    replicas = {name: ours()[name] for name in names}
    assert {name: svc["environment"]["ENGINE_ID"] for name, svc in replicas.items()} == {n: n for n in names}

    # Alike otherwise: one image, command, health check, dependencies and environment.
    def alike(svc: dict[str, Any]) -> dict[str, Any]:
        rest = {k: v for k, v in svc.items() if k != "build"}
        rest["environment"] = {k: v for k, v in svc["environment"].items() if k != "ENGINE_ID"}
        return rest

    one, two = (alike(svc) for svc in replicas.values())
    assert one == two and one["image"] == "gridbot/engine"
    # One of them builds the image (the other uses it), and both answer as `engine` on the network.
    assert [name for name, svc in replicas.items() if "build" in svc] == ["engine-1"]
    for svc in replicas.values():
        assert "engine" in svc["networks"]["default"]["aliases"]
        assert svc["environment"]["PORT"] == str(spec.port)


@pytest.mark.parametrize("name", sorted(ours()))
def test_each_container_has_the_cpu_weight_of_its_make_dev_niceness(name: str) -> None:
    spec, migration = owner(name)
    # The kernel's weight of a niceness (1024 at 0, a factor 1.25 a step), as `make dev` gives its processes.
    weight = None if migration or not spec.nice else round(1024 / 1.25**spec.nice)
    assert ours()[name].get("cpu_shares") == weight


@pytest.mark.parametrize("name", sorted(compose()["services"]))
def test_every_long_running_service_is_restarted_when_it_dies(name: str) -> None:
    svc = compose()["services"][name]
    if name.endswith("-migrate"):
        # A one-shot step whose success the services wait for: a failed migration stops the deployment.
        assert svc.get("restart", "no") == "no"
    else:
        assert svc.get("restart") == "unless-stopped", name


def test_only_the_gateway_publishes_a_port_on_loopback_by_default() -> None:
    services = compose()["services"]
    published = {name for name, svc in services.items() if svc.get("ports") and name not in OBSERVABILITY}
    assert published == {"gateway"}
    for name in OBSERVABILITY:  # under their profile only, and on loopback unless .env says otherwise
        assert all(":-127.0.0.1:" in port for port in services[name]["ports"]), name
    assert compose()["services"]["gateway"]["ports"] == ["${GATEWAY_PUBLISH:-127.0.0.1:3000}:3000"]


@pytest.mark.parametrize("name", sorted(ours()))
def test_dependencies_wait_for_health_or_migration(name: str) -> None:
    svc = ours()[name]
    _, is_migration = owner(name)
    if not is_migration:
        assert "healthcheck" in svc, f"{name} has no healthcheck"
    for dep, cond in svc.get("depends_on", {}).items():
        wanted = "service_completed_successfully" if dep.endswith("-migrate") else "service_healthy"
        assert cond == {"condition": wanted}, f"{name} -> {dep}"
    spec, is_migration = owner(name)
    if spec.migrate_module and not is_migration:
        assert f"{spec.name}-migrate" in svc["depends_on"]


# --- deploy/Dockerfile: one recipe, SERVICE picks the service ------------------------------------------------


def dockerfile_stages() -> dict[str, list[str]]:
    """deploy/Dockerfile's instructions by stage name, continuation lines joined and comments left out; the
    last stage, unnamed, is ""."""
    stages: dict[str, list[str]] = {}
    current: list[str] = []  # the global ARGs before the first FROM: not a stage
    for raw in DOCKERFILE.read_text().replace("\\\n", " ").splitlines():
        line = " ".join(raw.split())
        if not line or line.startswith("#"):
            continue
        if line.startswith("FROM "):
            words = line.split()
            current = stages.setdefault(words[3] if len(words) == 4 and words[2] == "AS" else "", [])
        current.append(line)
    return stages


def exec_form(line: str, instruction: str) -> list[str]:
    """The JSON command of a CMD or HEALTHCHECK line (anything but valid JSON would be run by a shell)."""
    command = json.loads(line[line.index(f"{instruction} [") + len(instruction) + 1 :])
    assert isinstance(command, list)
    return command


def test_there_is_one_dockerfile_and_every_build_uses_it() -> None:
    dockerfiles = [p for p in (ROOT / "deploy").rglob("*") if "dockerfile" in p.name.lower()]
    assert dockerfiles == [DOCKERFILE]
    builds = [svc["build"] for svc in compose()["services"].values() if "build" in svc]
    assert builds and all(
        build
        == {"context": ".", "dockerfile": "deploy/Dockerfile", "args": {"SERVICE": build["args"]["SERVICE"]}}
        for build in builds
    )
    stages = {name for name in dockerfile_stages() if name.startswith("service-")}
    assert stages == {f"service-{spec.name}" for spec in SERVICES if spec.image_of is None}


def test_dockerfile_builds_the_venv_from_uv_lock_and_runs_it_as_a_non_root_user() -> None:
    stages = dockerfile_stages()
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in DOCKERFILE.read_text()
    for name in ("manifests", "build", "runtime"):
        assert stages[name][0] == f"FROM ${{PYTHON_IMAGE}} AS {name}"
    # Two steps, each from uv.lock alone: third-party dependencies first (a layer kept while only our code
    # changes), then our packages, installed (not editable) into the venv the runtime takes.
    syncs = [line for line in stages["build"] if "uv sync" in line]
    assert len(syncs) == 2
    assert all(
        "uv sync --frozen --no-dev" in sync and '--package "gridbot-${SERVICE}"' in sync for sync in syncs
    )
    assert "--no-install-workspace" in syncs[0] and "--no-editable" in syncs[1]
    runtime = stages["runtime"]
    assert [line for line in runtime if line.startswith("COPY")] == [
        "COPY --from=build /app/.venv /app/.venv"
    ]
    assert any(re.fullmatch(r"USER (?!root$)\w+", line) for line in runtime)
    assert stages[""] == ["FROM service-${SERVICE}"]


@pytest.mark.parametrize("spec", [s for s in SERVICES if s.image_of is None], ids=lambda s: s.name)
def test_each_service_stage_runs_listens_and_is_probed_as_the_topology_says(spec: ServiceSpec) -> None:
    stages = dockerfile_stages()
    stage = stages[f"service-{spec.name}"]
    assert stage[0] == f"FROM runtime AS service-{spec.name}"
    assert [exec_form(line, "CMD") for line in stage if line.startswith("CMD")] == [spec.command]
    prefix = spec.env_prefix
    assert f"ENV {prefix}HOST=0.0.0.0 {prefix}PORT={spec.port}" in stage
    assert f"EXPOSE {spec.port}" in stage
    # Its own health check, or the runtime's: the health path on the port the service reads.
    checks = [line for line in stage if line.startswith("HEALTHCHECK")] or [
        line for line in stages["runtime"] if line.startswith("HEALTHCHECK")
    ]
    probe = exec_form(checks[-1], "CMD")
    assert probe[:2] == ["python", "-c"]
    assert f'http://127.0.0.1:{{os.environ["{prefix}PORT"]}}{spec.health_path}' in probe[2]
    # Compose builds it once, under the image name every container of the service runs.
    built = [
        svc for svc in ours().values() if svc.get("build", {}).get("args", {}).get("SERVICE") == spec.name
    ]
    assert len(built) == 1 and built[0]["image"] == f"gridbot/{spec.name}"


@pytest.mark.parametrize("name", sorted(ours()))
def test_every_container_runs_the_image_of_its_service(name: str) -> None:
    spec, _ = owner(name)
    assert ours()[name]["image"] == f"gridbot/{spec.image}"


def workspace_members() -> list[str]:
    """The workspace members on disk, by the root pyproject's `members` globs."""
    members = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]["members"]
    return sorted(
        str(path.parent.relative_to(ROOT))
        for pattern in members
        for path in ROOT.glob(f"{pattern}/pyproject.toml")
    )


def test_dockerfile_copies_every_workspace_member_without_naming_one() -> None:
    members = workspace_members()
    assert "libs/common" in members and "services/auth" in members
    stages = dockerfile_stages()
    # Whole top-level folders, so that a member added or moved under them needs no change here.
    for name in ("manifests", "build"):
        copied = {line.split()[1] for line in stages[name] if re.fullmatch(r"COPY ([a-z]+) \1", line)}
        assert {member.split("/")[0] for member in members} <= copied, name
    # The manifests stage keeps each member's pyproject.toml (`uv sync --frozen` reads the whole workspace:
    # one missing fails it) and nothing else. GNU find's -regex matches the whole path, as fullmatch does.
    prune = next(line for line in stages["manifests"] if line.startswith("RUN find"))
    found = re.search(r"-regex '([^']+)'", prune)
    assert found and "! -regex" in prune and "-delete" in prune
    for member in members:
        assert re.fullmatch(found.group(1), f"{member}/pyproject.toml"), member
        for path in (ROOT / member).glob("src/*/__init__.py"):
            assert not re.fullmatch(found.group(1), str(path.relative_to(ROOT))), path


def test_gateway_readiness_covers_every_service_of_ours() -> None:
    # Routed services are probed as upstreams; the rest (the engine) through READINESS_CHECKS, in compose
    # and in `make dev` alike. Only the simulator (not part of a deployment) and the gateway itself are out.
    ports = {s.name: s.port for s in SERVICES}
    dev = service_env(
        service("gateway"),
        database_url="postgresql+asyncpg://x/y",
        redis_url="redis://x",
        rabbitmq_url="amqp://x",
        ports=ports,
        tokens=fresh_tokens(),
    )
    composed = ours()["gateway"]["environment"]
    for env, host in ((dev, lambda name: "127.0.0.1"), (composed, lambda name: name)):
        routed, checked = json.loads(env["SERVICES"]), json.loads(env["READINESS_CHECKS"])
        assert set(routed) | set(checked) == {s.name for s in SERVICES} - {"gateway", "exchange-sim"}
        assert checked == {s.name: f"http://{host(s.name)}:{s.port}" for s in SERVICES if s.readiness_checked}
    assert "engine" in json.loads(composed["READINESS_CHECKS"])
    # The gateway starts once replica 1 is healthy, as `make dev` waits for replica 1 alone.
    assert ours()["gateway"]["depends_on"]["engine-1"] == {"condition": "service_healthy"}


# --- secrets and internal tokens -------------------------------------------------------------------------


def required_variables() -> set[str]:
    """Every variable docker-compose.yml refuses to run without (`${NAME:?message}`)."""
    return set(re.findall(r"\$\{([A-Z_]+):\?", (ROOT / "docker-compose.yml").read_text()))


def test_compose_requires_exactly_the_secrets_make_secrets_writes() -> None:
    assert required_variables() == set(gensecrets.SECRETS)
    assert set(INTERNAL_TOKENS) <= required_variables()
    text = (ROOT / "docker-compose.yml").read_text()
    # No default credentials of the images, and no way to fall back to the repository's development secrets.
    for literal in ("postgres:postgres", "guest", "change-me", "dev-only"):
        assert literal not in text, literal
    assert re.search(r"^\s+ENVIRONMENT: \$\{ENVIRONMENT:-production\}$", text, re.M)


@pytest.mark.parametrize("name", sorted(ours()))
def test_each_service_holds_exactly_its_internal_tokens(name: str) -> None:
    spec, is_migration = owner(name)
    env = ours()[name].get("environment", {})
    held = {var for var in env if var.startswith("INTERNAL_")}
    assert held == (set() if is_migration else set(spec.tokens))
    if is_migration:
        assert set(env) == {"ENVIRONMENT", "DATABASE_URL"}  # a migration needs nothing else


@pytest.mark.parametrize("name", sorted(n for n in ours() if n != "exchange-sim" and not owner(n)[1]))
def test_tracing_and_error_tracking_come_from_env_and_are_off_without_it(name: str) -> None:
    spec, _ = owner(name)
    env = ours()[name]["environment"]
    assert env["OTEL_SERVICE_NAME"] == f"gridbot-{spec.name}"
    for variable in (
        "OTEL_TRACES_EXPORTER",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_SAMPLER_ARG",
        "SENTRY_DSN",  # no default: unset in .env, no Sentry
        "SENTRY_ENVIRONMENT",
        "SENTRY_RELEASE",
    ):
        assert env[variable] == f"${{{variable}:-}}", variable


def test_market_data_holds_nothing_that_opens_keys() -> None:
    spec = next(s for s in SERVICES if s.name == "market-data")
    assert not set(spec.tokens) & KEY_OPENERS
    assert not set(ours()["market-data"]["environment"]) & KEY_OPENERS


def test_make_dev_hands_each_process_only_its_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    # Even a token exported in the developer's shell never reaches a process that must not hold it.
    monkeypatch.setenv(KEYS_TOKEN, "exported-in-the-shell-" + "x" * 40)
    stack = Stack("postgresql+asyncpg://x/y", "redis://x", "amqp://x", {s.name: s.port for s in SERVICES})
    assert len(set(stack.tokens.values())) == len(INTERNAL_TOKENS)  # one fresh token per route
    for spec in SERVICES:
        env = stack.env_for(spec)
        held = {var: value for var, value in env.items() if var.startswith("INTERNAL_")}
        assert held == {name: stack.tokens[name] for name in spec.tokens}, spec.name
    market_data = stack.env_for(next(s for s in SERVICES if s.name == "market-data"))
    assert not set(market_data) & KEY_OPENERS


def test_exchange_urls_default_to_the_real_exchanges_and_sim_values_match() -> None:
    env = ours()["credentials"]["environment"]
    for field, url in DEFAULT_URLS.items():
        assert env[field.upper()] == f"${{{field.upper()}:-{url}}}"
    assert sim_exchange_env("http://exchange-sim:8900") == gensecrets.SIM_ENV


# The simulator's own settings that compose passes on from .env (or the shell), each with its default.
SIM_PASSED = (
    "SIM_CANDLE_FILE",
    "SIM_HISTORY_MINUTES",
    "SIM_REPLAY_SPEED",
    "SIM_SEED",
    "SIM_KRW_RATE",
    "SIM_LOG_LEVEL",
)


def test_the_simulator_takes_its_settings_from_the_env_file_with_its_own_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim = ours()["exchange-sim"]
    env = sim["environment"]
    assert set(env) == {"SIM_HOST", "SIM_PORT", *SIM_PASSED}
    defaults: dict[str, str] = {}
    for name in SIM_PASSED:
        found = re.fullmatch(r"\$\{(\w+):-([^}]*)\}", env[name])
        assert found and found.group(1) == name, f"{name}: {env[name]} does not pass ${{{name}}} on"
        defaults[name] = found.group(2)
    # A candle file is a path in the container, where SIM_DATA_DIR (the shared data folder by default) is.
    assert defaults.pop("SIM_CANDLE_FILE") == f"/data/{CANDLE_FILE_NAME}"
    assert sim["volumes"] == ["${SIM_DATA_DIR:-../shared/data}:/data:ro"]
    # Compose's defaults are the simulator's own: unset in .env means as in make run and make dev.
    for name in SimSettings.model_fields:
        monkeypatch.delenv(f"SIM_{name.upper()}", raising=False)
    for name, value in defaults.items():
        monkeypatch.setenv(name, value)
    read, own = SimSettings().model_dump(), {k: v.default for k, v in SimSettings.model_fields.items()}
    # Unset history means 30 days: compose writes it out.
    own["history_minutes"] = DEFAULT_HISTORY_MINUTES
    for name in defaults:
        field = name.removeprefix("SIM_").lower()
        assert read[field] == own[field], name


def test_the_simulator_runs_only_under_the_sim_profile() -> None:
    assert compose()["services"]["exchange-sim"]["profiles"] == ["sim"]
    for name, svc in compose()["services"].items():
        assert "exchange-sim" not in svc.get("depends_on", {}), name


# --- the compose tool itself --------------------------------------------------------------------------------


def compose_tool() -> list[str] | None:
    """`docker compose` (v2 plugin) when it answers, else the standalone `docker-compose`, else None."""
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0
    ):
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


Config = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    """Run `<compose> config` on docker-compose.yml with a given env file and nothing from this shell."""
    tool = compose_tool()
    if tool is None:
        message = (
            "neither `docker compose` nor `docker-compose` is installed (apt-get install -y docker-compose)"
        )
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    home = tmp_path_factory.mktemp("compose-home")

    def run(env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
        command = [
            *tool,
            "--project-directory",
            str(ROOT),
            "-f",
            str(ROOT / "docker-compose.yml"),
            "--env-file",
            str(env_file),
            *args,
            "config",
        ]
        # A clean environment: a variable exported here must not stand in for a missing one in the file.
        clean = {"PATH": os.environ["PATH"], "HOME": str(home)}
        return subprocess.run(command, env=clean, capture_output=True, text=True, timeout=120, check=False)

    return run


def make_secrets(path: Path) -> subprocess.CompletedProcess[str]:
    """`make secrets ENV_FILE=path`, as an operator runs it."""
    return subprocess.run(
        ["make", "-s", "secrets", f"ENV_FILE={path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def read_env(path: Path) -> dict[str, str]:
    """The NAME=value lines of an env file."""
    pairs = (
        line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#")
    )
    return {name: value for name, value in pairs}


def test_an_empty_env_file_is_refused_naming_a_missing_secret(config: Config, tmp_path: Path) -> None:
    empty = tmp_path / ".env"
    empty.write_text("")
    result = config(empty)
    assert result.returncode != 0
    assert "is missing - run make secrets" in result.stderr
    assert any(name in result.stderr for name in gensecrets.SECRETS), result.stderr


@pytest.mark.parametrize("missing", sorted(gensecrets.SECRETS))
def test_each_secret_is_required(config: Config, tmp_path: Path, missing: str) -> None:
    env_file = tmp_path / ".env"
    assert make_secrets(env_file).returncode == 0
    env_file.write_text("".join(f"{k}={v}\n" for k, v in read_env(env_file).items() if k != missing))
    result = config(env_file)
    assert result.returncode != 0
    assert f"{missing} is missing - run make secrets" in result.stderr, result.stderr


def service_settings(spec: ServiceSpec, environment: dict[str, str]) -> Any:
    """The service's settings read from exactly a container's resolved environment (no .env file)."""
    module, cls = spec.settings.split(":")
    settings = getattr(importlib.import_module(module), cls)
    with pytest.MonkeyPatch.context() as patch:
        for name in settings_fields(spec):
            patch.delenv(name, raising=False)
        for name, value in environment.items():
            patch.setenv(name, value)
        return settings(_env_file=None)


def test_make_secrets_gives_a_deployment_every_service_accepts(config: Config, tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    made = make_secrets(env_file)
    assert made.returncode == 0, made.stderr
    assert env_file.stat().st_mode & 0o077 == 0  # readable by its owner only
    secrets = read_env(env_file)
    assert len(set(secrets.values())) == len(secrets)  # no two secrets alike (COMPOSE_PROJECT_NAME aside)

    result = config(env_file)
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)["services"]
    for spec in SERVICES:
        if spec.name == "exchange-sim":
            continue
        for name in spec.replica_names():
            environment = {k: str(v) for k, v in resolved[name]["environment"].items()}
            assert environment["ENVIRONMENT"] == "production"
            tokens = {token for token in INTERNAL_TOKENS if secrets[token] in environment.values()}
            assert tokens == set(spec.tokens), name
            # What compose hands the service, its settings accept in production: no placeholder left.
            settings = service_settings(spec, environment)
            assert settings.environment == "production"
            if spec.replica_id_env:
                assert getattr(settings, spec.replica_id_env.lower()) == name
    market_data = set(resolved["market-data"]["environment"].values())
    assert not {secrets[name] for name in KEY_OPENERS} & market_data
    assert secrets["REDIS_PASSWORD"] in resolved["redis"]["command"]
    assert f":{secrets['REDIS_PASSWORD']}@redis:" in resolved["auth"]["environment"]["REDIS_URL"]
    assert f":{secrets['POSTGRES_PASSWORD']}@postgres:" in resolved["auth"]["environment"]["DATABASE_URL"]

    # A second run never replaces the secrets of a deployment.
    before = env_file.read_bytes()
    again = make_secrets(env_file)
    assert again.returncode != 0 and "left untouched" in again.stderr
    assert env_file.read_bytes() == before


def test_the_sim_profile_as_make_secrets_documents_it(config: Config, tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    assert make_secrets(env_file).returncode == 0
    # Uncomment the simulator block, as its comment says.
    text = env_file.read_text()
    block = text[text.index("# COMPOSE_PROFILES=sim") :]
    env_file.write_text(text.replace(block, block.replace("# ", "")))
    result = config(env_file, "--profile", "sim")
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)["services"]
    assert "exchange-sim" in resolved
    for spec in SERVICES:
        if not spec.uses_exchanges:
            continue
        environment = {k: str(v) for k, v in resolved[spec.replica_names()[0]]["environment"].items()}
        assert environment["UPBIT_REST_URL"] == "http://exchange-sim:8900/upbit"
        assert environment["ENVIRONMENT"] == "development"
        # Development on 0.0.0.0 with real secrets: accepted...
        assert service_settings(spec, environment).upbit_rest_url.startswith("http://")
        # ...while production refuses the simulator's plaintext URLs.
        with pytest.raises(ValueError, match="UPBIT_REST_URL must be https://"):
            service_settings(spec, {**environment, "ENVIRONMENT": "production"})


def test_sim_settings_in_the_env_file_reach_the_simulator(config: Config, tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    assert make_secrets(env_file).returncode == 0
    text = env_file.read_text()
    block = text[text.index("# COMPOSE_PROFILES=sim") :]
    plain = text.replace(block, block.replace("# ", ""))

    def simulator(extra: str) -> dict[str, Any]:
        env_file.write_text(plain + extra)
        result = config(env_file, "--profile", "sim")
        assert result.returncode == 0, result.stderr
        resolved: dict[str, Any] = yaml.safe_load(result.stdout)["services"]["exchange-sim"]
        return resolved

    def mounted(svc: dict[str, Any]) -> str:
        """The host folder mounted at /data (compose v2 and 1.29 write volumes differently)."""
        volume = svc["volumes"][0]
        if isinstance(volume, dict):
            assert (volume["target"], volume.get("read_only")) == ("/data", True)
            return str(volume["source"])
        source, target, mode = str(volume).rsplit(":", 2)
        assert (target, mode) == ("/data", "ro")
        return source

    default = simulator("")
    assert default["environment"]["SIM_CANDLE_FILE"] == f"/data/{CANDLE_FILE_NAME}"
    assert str(default["environment"]["SIM_HISTORY_MINUTES"]) == str(DEFAULT_HISTORY_MINUTES)
    assert Path(mounted(default)) == (ROOT / "../shared/data").resolve()

    # A month of your own: the folder it is in, the file in it, as much history as it holds.
    own = simulator(
        "SIM_DATA_DIR=/srv/candles\nSIM_CANDLE_FILE=/data/eth_2025-03.csv\n"
        "SIM_HISTORY_MINUTES=44640\nSIM_REPLAY_SPEED=max\n"
    )
    environment = {k: str(v) for k, v in own["environment"].items()}
    assert mounted(own) == "/srv/candles"
    assert environment["SIM_CANDLE_FILE"] == "/data/eth_2025-03.csv"
    settings = service_settings(service("exchange-sim"), environment)
    assert (settings.history_minutes, settings.replay_speed) == (44640, "max")
    assert settings.candle_file == Path("/data/eth_2025-03.csv") and settings.host == "0.0.0.0"


def test_the_observability_profile_resolves_with_the_secrets_make_secrets_writes(
    config: Config, tmp_path: Path
) -> None:
    env_file = tmp_path / ".env"
    assert make_secrets(env_file).returncode == 0
    result = config(env_file, "--profile", "observability")
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)["services"]
    assert {"prometheus", "grafana"} <= set(resolved)
    # The gateway's metrics on their own port, which nothing publishes.
    gateway = resolved["gateway"]
    assert str(gateway["environment"]["METRICS_PORT"]) == "9100"
    assert all("9100" not in str(port) for port in gateway.get("ports", []))
    grafana = {k: str(v) for k, v in resolved["grafana"]["environment"].items()}
    assert grafana["GF_AUTH_DISABLE_LOGIN"] == "true" and grafana["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
