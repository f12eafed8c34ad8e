"""deploy/: the Kubernetes base against the Kubernetes schemas (offline), the alert rules and the dashboard
against the metrics the services really export, the scrape configuration against the topology."""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import promql_parser
import pytest
import yaml

from common.metrics import family_names
from engine.metrics import exported_names
from launcher.gensecrets import SECRETS
from launcher.topology import SERVICES, ServiceSpec, service

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s" / "base"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "gridbot.json"
RUNBOOK = ROOT / "docs" / "runbook.md"
# The Kubernetes release whose schemas the manifests must satisfy (bundled by kubernetes-validate).
K8S_VERSION = "1.30.0"
# A variable whose Secret key has another name: the notifier's ENCRYPTION_KEY seals channel secrets and is
# not the key of the exchange keys (compose: NOTIFIER_ENCRYPTION_KEY too).
SECRET_KEYS = {("notifier", "ENCRYPTION_KEY"): "NOTIFIER_ENCRYPTION_KEY"}
# Variables that carry credentials: never a literal in a manifest, always a secretKeyRef.
SECRET_VARIABLES = set(SECRETS) | {"DATABASE_URL", "REDIS_URL", "RABBITMQ_URL"}
# Series Prometheus itself makes for every target.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
DEPLOYED = [s for s in SERVICES if s.name != "exchange-sim"]  # the simulator is for development only


def exported() -> set[str]:
    """Every series name a gridbot process exports: the kit's registry (every service's metrics are defined
    in common.metrics) and the engine runtime's own collector."""
    return family_names() | exported_names() | PROMETHEUS_SERIES


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (parsed, not pattern-matched)."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        if node is None or isinstance(node, str | int | float):
            return
        if isinstance(node, list | tuple):
            for item in node:
                walk(item)
            return
        if type(node).__name__ == "VectorSelector":
            assert node.name, f"a selector without a metric name in {expr!r}"
            names.add(node.name)
            return
        for attribute in ("lhs", "rhs", "expr", "param", "args", "vector_selector"):
            walk(getattr(node, attribute, None))

    walk(promql_parser.parse(expr))
    return names


# --- Kubernetes --------------------------------------------------------------------------------------------------


def manifests() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield path.name, doc


def workloads() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, doc in manifests():
        if doc["kind"] in ("Deployment", "Job"):
            yield name, doc


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = doc["spec"]["template"]["spec"]
    return spec


def test_the_kustomization_lists_every_manifest_and_nothing_else() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)
    assert len(kustomization["resources"]) == len(set(kustomization["resources"]))


@pytest.mark.parametrize(
    ("name", "doc"), list(manifests()), ids=lambda v: v if isinstance(v, str) else v["kind"]
)
def test_every_manifest_is_valid_against_the_kubernetes_schemas(name: str, doc: dict[str, Any]) -> None:
    # strict: an unknown field (a typo) is an error too. The schemas ship with the package: no network.
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_validator_refuses_a_broken_manifest() -> None:
    for _, doc in workloads():
        misspelt = json.loads(json.dumps(doc))
        misspelt["spec"]["template"]["spec"]["restartPolicyy"] = "Never"
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(misspelt, K8S_VERSION, strict=True)
        mistyped = json.loads(json.dumps(doc))
        pod_spec(mistyped)["containers"][0]["env"][0]["value"] = 3
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(mistyped, K8S_VERSION, strict=True)


def test_every_service_has_a_deployment_and_a_service_and_every_schema_a_migration_job() -> None:
    kinds = {(doc["kind"], doc["metadata"]["name"]) for _, doc in manifests()}
    for spec in DEPLOYED:
        assert ("Deployment", spec.name) in kinds
        assert ("Service", spec.name) in kinds
        if spec.migrate_module:
            assert ("Job", f"{spec.name}-migrate") in kinds
    assert not any(kind == "Secret" for kind, _ in kinds), "no secret in the base: the operator creates it"


def owner_of(doc: dict[str, Any]) -> tuple[ServiceSpec, bool]:
    name: str = doc["metadata"]["name"]
    if doc["kind"] == "Job":
        return service(name.removesuffix("-migrate")), True
    return service(name), False


def settings_fields(spec: ServiceSpec) -> set[str]:
    module, cls = spec.settings.split(":")
    settings = getattr(importlib.import_module(module), cls)
    prefix = str(settings.model_config.get("env_prefix", "")).upper()
    return {prefix + name.upper() for name in settings.model_fields}


@pytest.mark.parametrize(("name", "doc"), list(workloads()), ids=lambda v: v if isinstance(v, str) else "")
def test_containers_run_the_topology_commands_with_variables_their_settings_read(
    name: str, doc: dict[str, Any]
) -> None:
    spec, migration = owner_of(doc)
    (container,) = pod_spec(doc)["containers"]
    assert container["command"] == (spec.migrate_command if migration else spec.command)
    assert container["image"] == f"gridbot/{spec.image}"
    env = {item["name"]: item for item in container["env"]}
    assert set(env) <= settings_fields(spec)
    for variable, item in env.items():
        if variable in SECRET_VARIABLES:
            assert set(item) == {"name", "valueFrom"}, variable
            key = SECRET_KEYS.get((spec.name, variable), variable)
            assert item["valueFrom"]["secretKeyRef"] == {"name": "gridbot-secrets", "key": key}
    if not migration:
        assert {t for t in env if t.startswith("INTERNAL_")} == set(spec.tokens)


@pytest.mark.parametrize("spec", DEPLOYED, ids=lambda s: s.name)
def test_probes_use_the_real_health_routes_and_metrics_are_annotated(spec: ServiceSpec) -> None:
    (deployment,) = [
        d for _, d in manifests() if d["kind"] == "Deployment" and d["metadata"]["name"] == spec.name
    ]
    (container,) = pod_spec(deployment)["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == spec.port
    assert container["livenessProbe"]["httpGet"] == {"path": spec.health_path, "port": "http"}
    # The gateway's /health/ready is the whole system's: an upstream down must not take the gateway out.
    ready = "/health" if spec.name == "gateway" else "/health/ready"
    assert container["readinessProbe"]["httpGet"] == {"path": ready, "port": "http"}
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    env = {item["name"]: item.get("value") for item in container["env"]}
    if spec.name == "gateway":
        # Never the public port: METRICS_PORT, which the Service does not expose.
        assert annotations["prometheus.io/port"] == env["METRICS_PORT"] == str(ports["metrics"])
    else:
        assert annotations["prometheus.io/port"] == str(spec.port)


# Tracing and error tracking settings an operator may put in the ConfigMap `gridbot-observability`.
OBSERVABILITY_CONFIG = (
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "SENTRY_ENVIRONMENT",
    "SENTRY_RELEASE",
)


@pytest.mark.parametrize("spec", DEPLOYED, ids=lambda s: s.name)
def test_tracing_and_error_tracking_are_optional_references_of_every_deployment(spec: ServiceSpec) -> None:
    (deployment,) = [
        d for _, d in manifests() if d["kind"] == "Deployment" and d["metadata"]["name"] == spec.name
    ]
    env = {item["name"]: item for item in pod_spec(deployment)["containers"][0]["env"]}
    assert env["OTEL_SERVICE_NAME"]["value"] == f"gridbot-{spec.name}"
    for variable in OBSERVABILITY_CONFIG:
        reference = {"name": "gridbot-observability", "key": variable, "optional": True}
        assert env[variable]["valueFrom"] == {"configMapKeyRef": reference}, variable
    # The DSN lets whoever holds it send events to the project: a Secret's key, optional like the feature.
    assert env["SENTRY_DSN"] == {
        "name": "SENTRY_DSN",
        "valueFrom": {"secretKeyRef": {"name": "gridbot-secrets", "key": "SENTRY_DSN", "optional": True}},
    }


def test_the_engine_runs_two_replicas_behind_a_disruption_budget() -> None:
    docs = {(d["kind"], d["metadata"]["name"]): d for _, d in manifests()}
    engine = docs[("Deployment", "engine")]
    assert engine["spec"]["replicas"] == 2
    pdb = docs[("PodDisruptionBudget", "engine")]
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == engine["spec"]["selector"]["matchLabels"]
    env = {e["name"]: e for e in pod_spec(engine)["containers"][0]["env"]}
    assert env["ENGINE_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}


# --- alert rules, dashboard, scrape configuration ----------------------------------------------------------------


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_the_alerts_cover_what_an_operator_must_hear_of() -> None:
    names = {rule["alert"] for rule in alert_rules()}
    assert {
        "EngineReplicaDown",
        "TickToOrderLatencyHigh",
        "DeadLetters",
        "ExchangeErrorRateHigh",
        "OutboxBacklogGrowing",
        "MarketDataStreamSilent",
    } <= names


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_every_alert_reads_exported_metrics_and_has_a_runbook_entry(rule: dict[str, Any]) -> None:
    used = metric_names(rule["expr"])
    assert used, rule["expr"]
    assert used <= exported(), f"not exported by any service: {sorted(used - exported())}"
    anchor = rule["annotations"]["runbook"].split("#", 1)[1]
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in RUNBOOK.read_text().splitlines()
        if line.startswith("#")
    }
    assert anchor in headings, f"docs/runbook.md has no heading for #{anchor}"
    assert rule["labels"]["severity"] in ("warning", "critical")


def test_every_dashboard_query_reads_exported_metrics() -> None:
    queries = dashboard_queries()
    assert len(queries) >= 20
    for expr in queries:
        used = metric_names(expr)
        assert used, expr
        assert used <= exported(), f"{expr}: not exported by any service: {sorted(used - exported())}"


def test_the_name_check_catches_a_misspelt_metric() -> None:
    assert not metric_names("rate(gridbot_engine_tick_to_ordre_seconds_bucket[5m])") <= exported()
    assert metric_names('sum by (le) (rate(x_bucket{a="b"}[5m])) / on() group_left y > 0') == {
        "x_bucket",
        "y",
    }


def test_prometheus_scrapes_every_service_where_it_serves_its_metrics() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert set(jobs) == {spec.name for spec in DEPLOYED}
    for spec in DEPLOYED:
        targets = [t for sc in jobs[spec.name]["static_configs"] for t in sc["targets"]]
        expected = []
        for replica in spec.replica_names():
            env = compose[replica]["environment"]
            port = env.get("METRICS_PORT", env["PORT"])
            expected.append(f"{replica}:{port}")
        assert targets == expected
    assert jobs["gateway"]["static_configs"][0]["targets"] == ["gateway:9100"]  # never the public port


def test_the_observability_profile_runs_prometheus_and_grafana_on_the_files_of_deploy() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name in ("prometheus", "grafana"):
        assert compose[name]["profiles"] == ["observability"]
        for volume in compose[name]["volumes"]:
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
    provisioned = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = provisioned["datasources"][0]["uid"]
    dashboard = json.loads(DASHBOARD.read_text())
    assert {p["datasource"]["uid"] for p in dashboard["panels"] if "datasource" in p} == {uid}
