"""The public OpenAPI document holds: schemathesis generates requests from it and checks every answer.

It runs against `make run`'s one process (the embedded system), through the gateway, with a real user's
access token and rate limits raised so that the generated traffic is not refused wholesale. Every phase
(examples, coverage, fuzzing, stateful) and every check runs, with the exceptions API.md rules, each
explained where it is made below.

`SCHEMATHESIS_EXAMPLES` sets the fuzzing examples per operation and mode: small in `make test`; the long
run is `SCHEMATHESIS_EXAMPLES=80 make test PYTEST_ARGS="tests/contract -s"` (2,000+ cases, figures printed).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis import Case, CheckContext, GenerationMode
from schemathesis.core.failures import Failure
from schemathesis.engine import Status, events, from_schema

from launcher.testing import System, embedded

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "3"))
UNLIMITED = "1000000/minute"
EMAIL, PASSWORD = "contract@example.com", "securePassword123"
LOGOUT = "POST /api/auth/logout"

# Rules of API.md that JSON Schema cannot state exactly: the document says them in words, and data it
# allows can still be refused for them (always VALIDATION_ERROR naming the field and the rule).
BEYOND_JSON_SCHEMA = (
    # RFC 6761's special-use domains (.test, .local, …): the `email` format allows them.
    "special-use or reserved name",
    # "A number with more digits than its field allows is a VALIDATION_ERROR": `multipleOf: 1e-18` cannot be
    # checked exactly on the binary floats a generator produces.
    "at most 18 decimal places",
    # ipWhitelist is a list of IP addresses and CIDR ranges, beyond a pattern's reach.
    "not an IP address or CIDR range",
    # A range across two query parameters: startDate not after endDate.
    "must not be after endDate",
    # A backtest's window (two body fields, and the clock): in the past, start before end, at most 366 days.
    "must be in the past",
    "must be before endDate",
    "must not be in the future",
    "days after startDate",
    # A grid option's limit on another field (or, on PUT, on the stored bot): trailingUpLimit needs trailingUp.
    "requires trailingUp: true",
    # Every text the API reads (a path segment too) is UTF-8 without control characters: a path parameter's
    # schema is a plain string.
    "not UTF-8 text without control characters",
)


def known_issue(label: str, check: str, failure: Failure) -> str | None:
    """The open issue a failure belongs to, when another engineer's branch fixes it (none is open now)."""
    return None


@dataclass
class Findings:
    """What the run saw: cases, answers by status, failures (one per operation, check and title)."""

    cases: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: dict[str, str] = field(default_factory=dict)
    known: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """The figures of a run, for the test's output."""
        lines = [f"schemathesis: {self.cases} cases; answers by status {dict(sorted(self.statuses.items()))}"]
        lines += [f"known issue seen: {issue}" for issue in sorted(self.known)]
        return "\n".join(lines)


@pytest.fixture(scope="module")
def contract_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """The embedded system, rate limits raised (the generated traffic is one user's, from one address)."""
    with embedded(
        tmp_path_factory.mktemp("contract"),
        ROOT,
        RATE_LIMIT_AUTH=UNLIMITED,
        RATE_LIMIT_DEFAULT=UNLIMITED,
        RATE_LIMIT_BOT_CREATE=UNLIMITED,
        LOG_LEVEL="WARNING",
    ) as system:
        yield system


class LogoutTokens:
    """Fresh access tokens for logout's cases (each logout revokes its own), one refresh each (no bcrypt)."""

    def __init__(self, system: System) -> None:
        self._system = system
        signed_in = self._post("/api/auth/login", {"email": EMAIL, "password": PASSWORD})
        self._refresh = signed_in["refreshToken"]

    def next(self) -> str:
        pair = self._post("/api/auth/refresh", {"refreshToken": self._refresh})
        self._refresh = pair["refreshToken"]
        token: str = pair["token"]
        return token

    def _post(self, path: str, body: dict[str, str]) -> dict[str, str]:
        response = httpx.post(self._system.gateway + path, json=body, timeout=60)
        assert response.status_code == 200, response.text
        data: dict[str, str] = response.json()["data"]
        return data


@pytest.fixture(scope="module")
def api_schema(contract_system: System) -> Any:
    """The merged document as the gateway serves it, set up for the run with a real user's token."""
    registered = httpx.post(
        contract_system.gateway + "/api/auth/register",
        json={"email": EMAIL, "password": PASSWORD},
        timeout=30,
    )
    assert registered.status_code == 201, registered.text
    token = registered.json()["data"]["token"]
    logout_tokens = LogoutTokens(contract_system)
    schema = schemathesis.openapi.from_url(contract_system.gateway + "/api-docs/openapi.json")
    assert not schema.raw_schema.get("x-unavailable-services"), "a service's document is missing"

    @schema.auth(refresh_interval=None)
    class RealToken:
        """The user's token; logout revokes the one it is sent with, so each logout gets a new one."""

        def get(self, case: Case, ctx: Any) -> str:
            return logout_tokens.next() if case.operation.label == LOGOUT else token

        def set(self, case: Case, data: str, ctx: Any) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    config = schema.config
    # As long as the gateway waits for the slowest service (UPSTREAM_SERVICE_TIMEOUTS: a cold 90-day
    # recommendation first pages through the exchange's candles), so no answer is cut short by the client.
    config.update(base_url=contract_system.gateway, request_timeout=120)
    config.generation.update(
        max_examples=EXAMPLES,
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        deterministic=True,
        # The real token goes with every request; a generated Authorization header would replace it.
        with_security_parameters=False,
    )
    # API.md: a request that fits the document can still break a business rule (a price range, an order
    # below the exchange minimum, keys the exchange refuses, a ticker it does not list): 400 with the rule's
    # own code. `positive_data_is_never_a_validation_error` keeps the document honest: a request it allows
    # is never answered VALIDATION_ERROR.
    config.checks.positive_data_acceptance.expected_statuses = [
        "2xx",
        "400",
        "401",
        "403",
        "404",
        "409",
        "429",
        "5xx",
    ]
    return schema


@schemathesis.check
def error_code_is_documented(ctx: CheckContext, response: Any, case: Case) -> bool | None:
    """An error answer is the envelope with a code that its status's response lists (`x-error-codes`)."""
    if response.status_code < 400:
        return None
    documented = case.operation.definition.raw.get("responses", {}).get(str(response.status_code), {})
    codes = documented.get("x-error-codes")
    if codes is None:
        return None  # an undocumented status is status_code_conformance's failure
    body = response.json()
    code = body.get("error", {}).get("code") if isinstance(body, dict) else None
    if code not in codes:
        raise Failure(
            operation=case.operation.label,
            title="Undocumented error code",
            message=f"{response.status_code} with code {code!r}; documented: {', '.join(codes)}",
        )
    return None


@schemathesis.check
def positive_data_is_never_a_validation_error(ctx: CheckContext, response: Any, case: Case) -> bool | None:
    """A request the document allows is never refused as malformed (VALIDATION_ERROR)."""
    if case.meta is None or not case.meta.generation.mode.is_positive or response.status_code != 400:
        return None
    error = response.json().get("error", {})
    fields = error.get("details", {}).get("fields", [])
    if fields and all(any(rule in f.get("reason", "") for rule in BEYOND_JSON_SCHEMA) for f in fields):
        return None
    if error.get("code") == "VALIDATION_ERROR":
        raise Failure(
            operation=case.operation.label,
            title="The document allows what the server refuses",
            message=f"VALIDATION_ERROR for data the document allows: {error.get('details')}",
        )
    return None


def run(schema: Any) -> Findings:
    """Every phase of schemathesis over the whole document; what it found, known issues set apart."""
    found = Findings()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished | events.FuzzScenarioFinished):
            _record(event.recorder, found)
        elif isinstance(event, events.NonFatalError):
            found.errors.append(f"{event.label}: {event.info.format()}")
        elif isinstance(event, events.FatalError):
            found.errors.append(f"fatal: {event.exception!r}")
    return found


def _record(recorder: Any, found: Findings) -> None:
    for interaction in recorder.interactions.values():
        found.cases += 1
        if interaction.response is not None:
            found.statuses[interaction.response.status_code] += 1
    for checks in recorder.checks.values():
        for check in checks:
            if check.status != Status.FAILURE or check.failure_info is None:
                continue
            failure = check.failure_info.failure
            label = failure.operation or recorder.label
            issue = known_issue(label, check.name, failure)
            if issue is not None:
                found.known.add(f"{label}: {issue}")
                continue
            key = f"{label} — {check.name}: {failure.title}"
            found.failures.setdefault(key, f"{key}\n{failure.message}\n{check.failure_info.code_sample}")


@pytest.mark.timeout(300 + EXAMPLES * 60)
def test_every_answer_matches_the_document(api_schema: Any) -> None:
    """No server error, and every status, header, body and error code as the document says."""
    found = run(api_schema)
    print("\n" + found.summary())  # noqa: T201 - the figures are the run's report (pytest -s)
    assert found.cases > 0
    assert not found.errors, "\n".join(found.errors)
    assert not found.failures, "\n\n".join(found.failures.values())
