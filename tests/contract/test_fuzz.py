"""Schemathesis over the published OpenAPI document, against a real gateway on loopback.

Every operation of ``/api/v1/openapi.json`` is called with data generated from its schemas
(valid data, then data that breaks them), as an admin; each answer must not be a server error
and must match what the document declares for its status (body schema, status code, content
type, headers). Findings are collected over all operations and reported together.

Bounded: a few examples per operation and mode, a deterministic generation (Hypothesis
derandomised), and past a total budget every operation left still gets one example of each mode.
One backend (SQLite): the PostgreSQL suite covers the same handlers with fixed inputs.

Nothing is skipped, but two operations would lock the fuzzing user out if called with its own
credential: ``POST /auth/logout`` revokes the token it is sent with, so each of its calls gets a
token of its own; ``DELETE /users/{username}`` could delete the fuzzing admin, whose name is
therefore random and long (the generator never guesses it). WebSocket routes are not operations
of the document (``x-aurora-websockets``) and are not fuzzed here.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.errors import FailureGroup

from agents.catalog import SPECIALISTS
from core.security.permissions import Role
from core.settings import Settings
from gateway.app import create_app
from gateway.keys import DATABASE, HASHER, TOKENS
from gateway.server import GatewayRunner
from gateway.users import service as users
from tests.conftest import PASSWORD, Gateway, specialist_on_loopback
from tests.ports import free_port, free_ports

EXAMPLES = 5
"""Examples per operation and generation mode."""
BUDGET_SECONDS = 30.0
"""Past this, each remaining operation gets one example per mode."""
LOGOUT = "POST /api/v1/auth/logout"
CALL_TIMEOUT_SECONDS = 30.0
"""How long one answer (the document's included) may take on a loaded machine."""

CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
]


@pytest.fixture
def backend() -> str:
    return "sqlite"


@dataclass
class Fuzzing:
    """What the run saw: one line per distinct failure, the operations called, the errors."""

    failures: dict[str, str] = field(default_factory=dict)
    called: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    calls: int = 0
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Target:
    base_url: str
    headers: dict[str, str]
    fresh_token: Callable[[], str]


# The ingest route takes NDJSON (text lines): generated as a string, sent as text.
schemathesis.serializer.alias("application/x-ndjson", "text/plain")


@pytest.fixture
async def target(tmp_path: Path, settings: Settings) -> AsyncIterator[Target]:
    """A gateway whose network specialist listens on loopback: ``POST
    /network-security/analyze`` answers while the caller waits, so what the fuzzer sends there
    reaches the specialist itself. The other specialists (which investigations call after the
    answer) are on ports of this process's own, where nothing listens."""
    async with specialist_on_loopback("network", tmp_path / "agent", settings.jwt_secret) as url:
        port = free_port()
        settings = settings.model_copy(
            update={
                "agent_base_port": free_ports(len(SPECIALISTS)),
                "agent_urls": {"network": [url]},
            }
        )
        app = create_app(settings)
        runner = GatewayRunner(app, settings)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", port).start()
            name = f"fuzz-admin-{secrets.token_hex(12)}"
            async with app[DATABASE].session() as db:
                admin = await users.create_user(
                    db=db, hasher=app[HASHER], username=name, password=PASSWORD, role=Role.ADMIN
                )
            user_id = str(admin.id)

            def fresh_token() -> str:
                return app[TOKENS].issue(user_id).token

            yield Target(
                base_url=f"http://127.0.0.1:{port}",
                headers={"Authorization": f"Bearer {fresh_token()}"},
                fresh_token=fresh_token,
            )
        finally:
            await runner.cleanup()


def _answer(response: schemathesis.Response) -> str:
    """The status and, for an error envelope, its AURORA code."""
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = ""
    return f"{response.status_code} {code}".strip()


def _negatable(operation: schemathesis.APIOperation) -> bool:
    """Whether the operation takes anything a negative case could break."""
    return bool(len(operation.path_parameters) or len(operation.query) or len(operation.body))


def _fuzz_operation(
    target: Target,
    session: requests.Session,
    operation: schemathesis.APIOperation,
    mode: GenerationMode,
    examples: int,
    seen: Fuzzing,
) -> None:
    key = operation.label

    @hypothesis_settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def call(case: schemathesis.Case) -> None:
        headers = dict(target.headers)
        if key == LOGOUT:
            headers["Authorization"] = f"Bearer {target.fresh_token()}"
        example = f"{mode.value}: {case.as_curl_command(headers=headers)}"
        try:
            response = case.call(
                base_url=target.base_url,
                session=session,
                headers=headers,
                timeout=CALL_TIMEOUT_SECONDS,
            )
        except requests.RequestException as err:  # no answer at all
            seen.failures.setdefault(f"{key}: no answer ({type(err).__name__})", example)
            return
        seen.calls += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except FailureGroup as group:
            for failure in group.exceptions:
                message = " ".join(str(failure.message).split())[:600]
                seen.failures.setdefault(
                    f"{key}: {failure.title} (answered {_answer(response)})",
                    f"{example}\n    {message}",
                )

    try:
        call()
    except Exception as err:  # a schema the generator cannot use: reported by the test
        causes = getattr(err, "exceptions", ())
        detail = "; ".join(f"{type(c).__name__}: {c}" for c in causes) or str(err)
        seen.errors.append(f"{key} [{mode.value}]: {type(err).__name__}: {detail}")


def fuzz(target: Target) -> Fuzzing:
    """Run every operation of the served document; blocking (requests), so off the loop."""
    schema = schemathesis.openapi.from_url(
        f"{target.base_url}/api/v1/openapi.json", timeout=CALL_TIMEOUT_SECONDS
    )
    seen = Fuzzing()
    started = time.monotonic()
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            seen.called.add(operation.label)
            examples = EXAMPLES if time.monotonic() - started < BUDGET_SECONDS else 1
            modes = [GenerationMode.POSITIVE]
            if _negatable(operation):
                modes.append(GenerationMode.NEGATIVE)
            for mode in modes:
                _fuzz_operation(target, session, operation, mode, examples, seen)
    seen.seconds = time.monotonic() - started
    return seen


# Raised by the generator's own strategies, not by anything here.
@pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies"
    ":hypothesis.errors.HypothesisDeprecationWarning"
)
async def test_every_operation_survives_fuzzing(target: Target) -> None:
    seen = await asyncio.to_thread(fuzz, target)
    print(f"{len(seen.called)} operations, {seen.calls} calls in {seen.seconds:.1f} s")
    assert "GET /api/v1/alerts" in seen.called
    assert "POST /api/v1/auth/logout" in seen.called
    report = [f"{line}\n    {example}" for line, example in sorted(seen.failures.items())]
    report += [f"not fuzzed: {error}" for error in seen.errors]
    assert not report, f"{len(report)} findings:\n" + "\n".join(report)


BOUNDARY = "e172f14a820bc24ac06063fc4ea2cda1"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        # What the fuzzer sent: a part with no headers, only a number before the boundary.
        (MULTIPART, f"--{BOUNDARY}\r\n4.341805096915244e+16--{BOUNDARY}--\r\n"),
        # A part header that is not a header.
        (MULTIPART, f"--{BOUNDARY}\r\nnot a header\r\n\r\nx\r\n--{BOUNDARY}--\r\n"),
        # A form without its boundary.
        ("multipart/form-data", f"--{BOUNDARY}\r\n\r\nx\r\n--{BOUNDARY}--\r\n"),
    ],
)
async def test_a_malformed_multipart_upload_is_422(
    gateway: Gateway, admin: dict[str, str], content_type: str, body: str
) -> None:
    response = await gateway.client.post(
        "/api/v1/cases/CASE-1/evidence",
        data=body.encode(),
        headers={**admin, "Content-Type": content_type},
    )
    assert response.status == 422, await response.text()
    assert (await response.json())["error"]["code"] == "AURORA-4220"
