"""Typed keys of the application and request state."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from agents.acp.client import HandoffClient
from core.blobs import BlobStore
from core.db import Database
from core.events import EventBus
from core.ledger import Keyring
from core.llm import LLMBackend
from core.logstore.store import LogStore
from core.metrics import Metrics
from core.security.passwords import PasswordHasher
from core.security.tokens import TokenService
from core.settings import Settings
from tools.attack import AttackKB

if TYPE_CHECKING:
    from aiohttp.web_urldispatcher import AbstractRoute

    from gateway.auth.service import Authenticator, Principal
    from gateway.chat.engine import ChatEngine
    from gateway.console.assets import Console
    from gateway.detections.conversion import SigmaConverter
    from gateway.detections.runs import DetectionScheduler
    from gateway.edr.service import EdrService
    from gateway.fleet.service import ToolCallRecorder
    from gateway.investigations.service import InvestigationRunner
    from gateway.network.scheduler import NetworkScheduler
    from gateway.routing import Route
    from gateway.siem.parsing import IngestParser
    from gateway.soar.engine import SoarEngine
    from gateway.sso.routes import SsoClients
    from gateway.system.service import RuntimeState

SETTINGS = web.AppKey("settings", Settings)
DATABASE = web.AppKey("database", Database)
METRICS = web.AppKey("metrics", Metrics)
BUS = web.AppKey("bus", EventBus)
TOKENS = web.AppKey("tokens", TokenService)
HASHER = web.AppKey("hasher", PasswordHasher)
AUTHENTICATOR: web.AppKey[Authenticator] = web.AppKey("authenticator")
RUNTIME: web.AppKey[RuntimeState] = web.AppKey("runtime")
HANDOFF = web.AppKey("handoff", HandoffClient)
BLOBS = web.AppKey("blobs", BlobStore)
LEDGER_KEYS = web.AppKey("ledger_keys", Keyring)
LLM: web.AppKey[LLMBackend | None] = web.AppKey("llm")
RECORDER: web.AppKey[ToolCallRecorder] = web.AppKey("tool_call_recorder")
RUNNER: web.AppKey[InvestigationRunner] = web.AppKey("investigation_runner")
LOGSTORE = web.AppKey("logstore", LogStore)
INGEST: web.AppKey[IngestParser] = web.AppKey("ingest")
SIGMA: web.AppKey[SigmaConverter] = web.AppKey("sigma")
SCHEDULER: web.AppKey[DetectionScheduler] = web.AppKey("detection_scheduler")
EDR: web.AppKey[EdrService] = web.AppKey("edr")
SOAR: web.AppKey[SoarEngine] = web.AppKey("soar")
NETWORK: web.AppKey[NetworkScheduler] = web.AppKey("network_scheduler")
CHAT: web.AppKey[ChatEngine] = web.AppKey("chat")
SSO: web.AppKey[SsoClients] = web.AppKey("sso")
REPLICA = web.AppKey("replica", str)
"""This gateway process among its replicas, as it holds job leases (host, pid, a random tag)."""
ATTACK_KB: web.AppKey[Callable[[], AttackKB]] = web.AppKey("attack_kb")
"""The ATT&CK knowledge base, loaded by its first user (not at start-up)."""
ROUTE_TABLE: web.AppKey[dict[AbstractRoute, Route]] = web.AppKey("route_table")
CONSOLE: web.AppKey[Console] = web.AppKey("console")
"""The web console's files, read on first use."""

REQUEST_ID = web.RequestKey("request_id", str)
PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal")
ROUTE: web.RequestKey[Route] = web.RequestKey("route")
