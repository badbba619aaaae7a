"""What an eval runs: a tool in this process, one specialist over ACP, or the whole orchestrator.

Specialists are reached the way the platform reaches them: JSON-RPC 2.0 over WebSocket through
the :class:`~agents.acp.client.HandoffClient`, with an agent token. ``Fleet.started`` serves the
specialists a suite needs for the length of the run, each on its own loopback port, with the
backend the run asks for: built-in analysis, or an LLM behind any OpenAI-compatible endpoint
(vLLM, a hosted API, the scripted servers of the tests) given by model, base URL and key.
``Fleet.running`` calls the agents an operator already runs (``aurora up``), where the platform's
settings say they are. The orchestrator is the platform's own LangGraph graph over that fleet,
in ``dry_run`` mode: an eval never executes a response action.
"""

from __future__ import annotations

import contextlib
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from agents.acp.client import CallOptions, HandoffClient, RetryPolicy
from agents.acp.finding import Finding
from agents.acp.registry import AgentRegistry
from agents.acp.server import AGENT_TOKEN_TYPE
from agents.catalog import SPECIALISTS, Subject, load_specialist
from agents.runtime.specialist import AgentDeps, Specialist, build_server
from core.llm.backend import LLMBackend
from core.security.tokens import TokenService
from core.settings import JwtAlgorithm, Settings
from tools.attack import AttackKB

SubjectKind = Literal["tool", "specialist", "orchestrator"]
BackendKind = Literal["builtin", "llm"]
EVAL_SENDER = "eval"


@dataclass(frozen=True, slots=True)
class Backend:
    """How specialists (and the orchestrator's planner) think: their built-in analysis, or
    ``model`` at an OpenAI-compatible ``base_url``. ``price_per_million`` (tokens, in any
    currency) turns the tokens a run spent into its cost."""

    kind: BackendKind = "builtin"
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    timeout_seconds: float = 60.0
    price_per_million: float = 0.0

    def client(self) -> LLMBackend | None:
        """A new LLM client for this backend (None for the built-in one); the caller closes it."""
        if self.kind == "builtin":
            return None
        if not self.base_url:
            raise ValueError("an LLM backend needs a base URL (--base-url)")
        return LLMBackend(
            base_url=self.base_url,
            model=self.model,
            api_key=self.api_key,
            timeout_seconds=self.timeout_seconds,
            max_retries=1,
        )

    def describe(self) -> dict[str, Any]:
        """What the run's log records of the backend (never the key)."""
        if self.kind == "builtin":
            return {"kind": "builtin"}
        return {"kind": "llm", "model": self.model, "base_url": self.base_url}


@dataclass(slots=True)
class Answer:
    """One specialist's answer: the finding (None when it failed), whether it passed the
    finding's schema, how long the call took and what it cost in tokens."""

    finding: dict[str, Any] | None
    valid: bool
    latency_ms: float
    tokens: int = 0
    error: str | None = None


def validate_finding(raw: Any) -> tuple[dict[str, Any] | None, bool]:
    """``raw`` as a finding's JSON, and whether it is one."""
    if not isinstance(raw, dict):
        return None, False
    try:
        Finding.model_validate(raw)
    except ValidationError:
        return raw, False
    return raw, True


def _eval_tokens() -> TokenService:
    # A fresh key per run: the agents started for it trust nothing else.
    secret = secrets.token_urlsafe(48)
    return TokenService(
        algorithm=JwtAlgorithm.HS256,
        signing_key=secret,
        verifying_key=secret,
        issuer="aurorasoc",
        audience="aurorasoc-api",
        default_ttl=3600,
    )


@dataclass
class Fleet:
    """Specialists reachable over ACP, and the client that calls them."""

    client: HandoffClient
    available: frozenset[str]
    backend: Backend
    llm: LLMBackend | None = None
    started_here: bool = True
    """The agents were started for the run with :attr:`backend` (else they run their own)."""
    attack: AttackKB | None = None
    """ATT&CK for the orchestrator's reading of the subject's text (loaded when first needed)."""

    def attack_kb(self) -> AttackKB:
        if self.attack is None:
            self.attack = AttackKB.load()
        return self.attack

    @classmethod
    @contextlib.asynccontextmanager
    async def started(
        cls,
        agents: Iterable[str],
        backend: Backend,
        *,
        settings: Settings | None = None,
        attack: AttackKB | None = None,
    ) -> AsyncIterator[Fleet]:
        """Serve ``agents`` on loopback ports for the length of the block."""
        names = tuple(dict.fromkeys(agents))
        unknown = [name for name in names if name not in SPECIALISTS]
        if unknown:
            raise ValueError(f"unknown specialist(s): {', '.join(unknown)}")
        tokens = _eval_tokens()
        llm = backend.client()
        kb = attack or AttackKB.load()
        with tempfile.TemporaryDirectory(prefix="aurora-eval-") as scratch:
            base = settings or Settings(data_dir=Path(scratch))
            running: list[tuple[Specialist, Any]] = []
            endpoints: dict[str, tuple[str, ...]] = {}
            try:
                for name in names:
                    specialist = load_specialist(name)(AgentDeps(settings=base, attack=kb, llm=llm))
                    await specialist.start()
                    listener = await build_server(specialist, base, tokens).start("127.0.0.1", 0)
                    running.append((specialist, listener))
                    port = next(iter(listener.sockets)).getsockname()[1]
                    endpoints[name] = (f"ws://127.0.0.1:{port}",)
                client = HandoffClient(
                    registry=AgentRegistry(endpoints),
                    sender=EVAL_SENDER,
                    token=lambda: tokens.issue(EVAL_SENDER, token_type=AGENT_TOKEN_TYPE).token,
                    default_timeout=backend.timeout_seconds * 4,
                    retry=RetryPolicy(attempts=1),
                    startup_grace=0,
                )
                try:
                    yield cls(client, frozenset(names), backend, llm, attack=kb)
                finally:
                    await client.close()
            finally:
                for specialist, listener in reversed(running):
                    listener.close()
                    await listener.wait_closed()
                    await specialist.stop()
                if llm is not None:
                    await llm.close()

    @classmethod
    @contextlib.asynccontextmanager
    async def running(
        cls, settings: Settings, agents: Iterable[str], backend: Backend
    ) -> AsyncIterator[Fleet]:
        """The agents the platform's settings point at (started by ``aurora up``), called with
        an agent token signed with the platform's key. Their own backend is whatever they run
        with; ``backend`` only serves the orchestrator's planner."""
        tokens = TokenService.from_settings(settings)
        llm = backend.client()
        client = HandoffClient(
            registry=AgentRegistry.from_settings(settings),
            sender=EVAL_SENDER,
            token=lambda: tokens.issue(EVAL_SENDER, token_type=AGENT_TOKEN_TYPE).token,
            default_timeout=settings.acp_call_timeout_seconds,
            retry=RetryPolicy(attempts=2),
            startup_grace=5.0,
        )
        try:
            yield cls(client, frozenset(agents), backend, llm, started_here=False)
        finally:
            await client.close()
            if llm is not None:
                await llm.close()

    async def ask(
        self, agent: str, subject: Subject, *, prompt_version: str | None = None
    ) -> Answer:
        """Call ``agent`` with what its catalogue entry takes of ``subject``."""
        entry = SPECIALISTS[agent]
        params = entry.call_params(subject)
        if params is None:
            return Answer(None, False, 0.0, error=f"{agent} takes nothing of this subject")
        started = time.perf_counter()
        try:
            raw = await self.client.call(
                agent, entry.method, params, CallOptions(prompt_version=prompt_version)
            )
        except Exception as err:
            latency = (time.perf_counter() - started) * 1000
            message = getattr(err, "message", None) or type(err).__name__
            return Answer(None, False, latency, error=str(message)[:300])
        latency = (time.perf_counter() - started) * 1000
        finding, valid = validate_finding(raw)
        llm_run = self.started_here and self.backend.kind == "llm"
        if valid and llm_run and (finding or {}).get("backend") != "llm":
            # The model gave no valid finding (or could not be reached): the agent fell back
            # to its built-in analysis, which is not what this run measures.
            valid = False
        tokens = int((finding or {}).get("tokens") or 0)
        return Answer(finding, valid, latency, tokens)

    async def investigate(self, subject: Subject, investigation_id: str) -> Answer:
        """One investigation of ``subject`` by the orchestrator graph over this fleet, in
        ``dry_run``; the answer's finding is the receipt."""
        from orchestrator.context import GraphContext
        from orchestrator.graph import build_graph
        from orchestrator.planner import PlannerTools

        tools = PlannerTools(self.client, self.available) if self.llm is not None else None
        started = time.perf_counter()
        try:
            state = await build_graph().ainvoke(
                {
                    "investigation_id": investigation_id,
                    "subject": subject.model_dump(mode="json"),
                    "mode": "dry_run",
                },
                context=GraphContext(
                    client=self.client,
                    available=self.available,
                    llm=self.llm,
                    planner_tools=tools,
                    attack=self.attack_kb,
                ),
            )
        except Exception as err:
            latency = (time.perf_counter() - started) * 1000
            return Answer(None, False, latency, error=type(err).__name__)
        latency = (time.perf_counter() - started) * 1000
        receipt = state.get("report")
        if not isinstance(receipt, dict):
            return Answer(None, False, latency, error="no receipt")
        return Answer(receipt, True, latency, int(receipt.get("tokens") or 0))
