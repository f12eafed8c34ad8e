"""docker-compose.yml cannot run here (no Docker engine): check it against the topology `make dev` runs."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from launcher.topology import SERVICES, ServiceSpec, service_env

ROOT = Path(__file__).resolve().parents[2]
INFRA = {"postgres", "redis", "rabbitmq"}


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
    """The topology service a compose service runs, and whether it is its migration step."""
    for spec in SERVICES:
        if name == spec.name:
            return spec, False
        if spec.migrate_module and name == f"{spec.name}-migrate":
            return spec, True
    raise AssertionError(f"compose service {name!r} is not in the topology")


def ours() -> dict[str, dict[str, Any]]:
    return {k: v for k, v in compose()["services"].items() if k not in INFRA}


def test_every_topology_service_is_in_compose() -> None:
    names = set(ours())
    for spec in SERVICES:
        assert spec.name in names
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
    env = service_env(
        spec,
        database_url="postgresql+asyncpg://x/y",
        redis_url="redis://x",
        rabbitmq_url="amqp://x",
        ports={s.name: s.port for s in SERVICES},
    )
    assert not set(env) - settings_fields(spec)


def test_only_the_gateway_publishes_a_port() -> None:
    published = {name for name, svc in compose()["services"].items() if svc.get("ports")}
    assert published == {"gateway"}
    assert compose()["services"]["gateway"]["ports"] == ["3000:3000"]


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


@pytest.mark.parametrize("spec", SERVICES, ids=lambda s: s.name)
def test_dockerfile_is_two_step_non_root_with_healthcheck(spec: ServiceSpec) -> None:
    dockerfile = ROOT / "deploy" / f"{spec.name}.Dockerfile"
    text = dockerfile.read_text()
    assert len(re.findall(r"uv sync --frozen --no-dev", text)) == 2
    assert "--no-install-workspace" in text
    assert re.search(r"^USER (?!root)\w+", text, re.M)
    assert "HEALTHCHECK" in text
    module = spec.command[-1]
    assert f'CMD ["python", "-m", "{module}"]' in text
    built = {s.get("build", {}).get("dockerfile") for s in ours().values()}
    assert f"deploy/{spec.name}.Dockerfile" in built


def workspace_members() -> list[str]:
    return sorted(
        str(p.parent.relative_to(ROOT))
        for pattern in ("libs/*/pyproject.toml", "services/*/pyproject.toml", "tools/*/pyproject.toml")
        for p in ROOT.glob(pattern)
    )


@pytest.mark.parametrize("dockerfile", sorted((ROOT / "deploy").glob("*.Dockerfile")), ids=lambda p: p.name)
def test_dockerfile_sees_every_workspace_member(dockerfile: Path) -> None:
    # `uv sync --frozen` resolves the whole workspace: a member's pyproject missing from the image fails it.
    text = dockerfile.read_text()
    for member in workspace_members():
        assert f"COPY {member}/pyproject.toml {member}/" in text, member
