"""Fake Wazuh server API v4, Microsoft Defender for Endpoint API and Kibana's endpoint
management API for Elastic Defend, for the EDR connectors.

Each listens on 127.0.0.1 (a free port) and speaks its product's HTTP API as its documentation
describes it: the same paths, authentication (Wazuh's JWT from basic auth; Defender's OAuth 2.0
client credentials, served by the same fake at ``/{tenant}/oauth2/v2.0/token``; Kibana's API
key), request shapes
(a malformed request gets the product's 400), answers and error bodies::

    async with FakeDefender(tenant_id=T, client_id=C, client_secret=S) as mde:
        machine = mde.add_machine("ws-0042.corp.example", last_ip="10.20.0.42")
        mde.rate_limit(1, retry_after="2")  # the next API request gets 429 with Retry-After: 2
        connector = DefenderConnector("mde", tenant_id=T, client_id=C,
            client_secret=SecretStr(S), base_url=mde.base_url, login_url=mde.base_url)

Scripting common to all (:class:`FakeProduct`): :meth:`~FakeProduct.rate_limit`,
:meth:`~FakeProduct.fail` (the next API requests answer a status with the product's error
body), :meth:`~FakeProduct.expire_tokens` (every token handed out so far is refused with 401),
and :attr:`~FakeProduct.delay` (seconds before each answer; closing wakes it). Every request is
kept in :attr:`~FakeProduct.requests`; every state-changing call the product accepted to
process is in :attr:`~FakeProduct.writes`, counted by :meth:`~FakeProduct.write_count` (what
tests use to prove no action was sent twice).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import re
import secrets
import uuid
from abc import abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from aiohttp import web
from yarl import URL

from core.loopback import LoopbackServer

START = datetime(2024, 6, 1, 9, 0, tzinfo=UTC)


@dataclass
class ProductRequest:
    """One request a fake received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: str
    status: int = 0


@dataclass
class Scripted:
    status: int
    count: int
    path: str | None
    retry_after: str | None = None


class FakeProduct(LoopbackServer):
    """What the fakes share: lifecycle, the bearer check, scripted failures, the records."""

    auth_paths: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        self.requests: list[ProductRequest] = []
        self.writes: list[tuple[str, str]] = []
        """(route, target id) of each state-changing call the product processed."""
        self.delay = 0.0
        self.tokens: set[str] = set()
        self.expired: set[str] = set()
        self._scripts: list[Scripted] = []
        self._closing = asyncio.Event()
        self._now = START

    # -- lifecycle ---------------------------------------------------------------------------

    @abstractmethod
    def routes(self, app: web.Application) -> None:
        """Add the product's routes."""

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._gate])
        self.routes(app)
        return app

    async def on_close(self) -> None:
        self._closing.set()

    @property
    def base_url(self) -> str:
        """What to configure as the product's URL: ``http://127.0.0.1:PORT``."""
        return self.origin

    def tick(self) -> datetime:
        """The fake's clock: one second later at each reading."""
        self._now += timedelta(seconds=1)
        return self._now

    # -- scripting ---------------------------------------------------------------------------

    def rate_limit(self, count: int = 1, *, retry_after: str | None = None) -> None:
        """Answer the next ``count`` API requests with 429 (and ``Retry-After`` when given)."""
        self._scripts.append(Scripted(429, count, None, retry_after))

    def fail(
        self,
        status: int,
        count: int = 1,
        *,
        path: str | None = None,
        retry_after: str | None = None,
    ) -> None:
        """Answer the next ``count`` API requests (those under ``path`` when given) with
        ``status`` and the product's error body."""
        self._scripts.append(Scripted(status, count, path, retry_after))

    def expire_tokens(self) -> None:
        """Every token handed out so far is expired: the next request with one gets 401."""
        self.expired |= self.tokens
        self.tokens.clear()

    def write_count(self, route: str | None = None, target: str | None = None) -> int:
        """How many state-changing calls (on ``route``, for ``target``) were processed."""
        return sum(
            1
            for done_route, done_target in self.writes
            if (route is None or done_route == route) and (target is None or done_target == target)
        )

    def issue_token(self) -> str:
        token = secrets.token_urlsafe(24)
        self.tokens.add(token)
        return token

    # -- what each product says --------------------------------------------------------------

    @abstractmethod
    def error(self, status: int, message: str | None = None) -> web.Response:
        """The product's error answer for ``status``."""

    @abstractmethod
    def unauthorised(self, expired: bool) -> web.Response:
        """The product's 401 for a missing, invalid (or expired) token."""

    def presented_token(self, request: web.Request) -> str | None:
        """The credential a request carries (a bearer token by default)."""
        header = request.headers.get("Authorization", "")
        return header[7:] if header.startswith("Bearer ") else None

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.read()
        record = ProductRequest(
            request.method,
            request.path,
            dict(request.query),
            dict(request.headers),
            body.decode("utf-8", "replace"),
        )
        self.requests.append(record)
        if self.delay:  # a scripted slow product, cut short on close
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.delay)
        response: web.StreamResponse
        if request.path.endswith(self.auth_paths):
            response = await handler(request)
        else:
            token = self.presented_token(request)
            scripted = self._scripted(request.path)
            if token is None or token not in self.tokens:
                response = self.unauthorised(expired=token in self.expired)
            elif scripted is not None:
                response = self.error(scripted.status)
                if scripted.retry_after is not None:
                    response.headers["Retry-After"] = scripted.retry_after
            else:
                response = await handler(request)
        record.status = response.status
        return response

    def _scripted(self, path: str) -> Scripted | None:
        for script in self._scripts:
            if script.count > 0 and (script.path is None or path.startswith(script.path)):
                script.count -= 1
                return script
        return None


# -- Wazuh -----------------------------------------------------------------------------------


@dataclass
class Agent:
    """A Wazuh agent as ``GET /agents`` shows it, and what was sent to it."""

    id: str
    name: str
    ip: str
    status: str
    os: dict[str, str]
    version: str
    last_keep_alive: str
    commands: list[dict[str, Any]] = field(default_factory=list)
    scan_start: str | None = None
    scan_end: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "ip": self.ip,
            "registerIP": "any",
            "status": self.status,
            "os": self.os,
            "version": self.version,
            "lastKeepAlive": self.last_keep_alive,
            "dateAdd": "2024-01-15T08:00:00+00:00",
            "group": ["default"],
            "node_name": "node01",
            "manager": "wazuh-manager",
        }


_AGENT_ID = re.compile(r"^[0-9]{3,5}$")
_WAZUH_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Permission Denied",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    429: "Too Many Requests",
    500: "Wazuh Internal Error",
    503: "Service Unavailable",
}


class FakeWazuh(FakeProduct):
    """Wazuh server API v4: ``/security/user/authenticate``, ``/agents``, ``/active-response``,
    ``/syscheck`` and ``/syscheck/{agent_id}/last_scan``.

    Agent ``000`` (the manager) is always there, as in a real installation.
    """

    auth_paths = ("/security/user/authenticate",)
    MAX_LIMIT: ClassVar[int] = 100_000

    def __init__(self, *, username: str = "wazuh-wui", password: str) -> None:
        super().__init__()
        self.username = username
        self.password = password
        self.agents: dict[str, Agent] = {}
        self.add_agent("000", "wazuh-manager", ip="127.0.0.1", os_name="Ubuntu")
        self.agents["000"].last_keep_alive = "9999-12-31T23:59:59+00:00"

    def routes(self, app: web.Application) -> None:
        app.router.add_route("POST", "/security/user/authenticate", self._authenticate)
        app.router.add_route("GET", "/security/user/authenticate", self._authenticate)
        app.router.add_get("/agents", self._agents)
        app.router.add_put("/active-response", self._active_response)
        app.router.add_put("/syscheck", self._syscheck)
        app.router.add_get("/syscheck/{agent_id}/last_scan", self._last_scan)

    def add_agent(
        self,
        agent_id: str,
        name: str,
        *,
        ip: str,
        status: str = "active",
        os_name: str = "Microsoft Windows 11 Enterprise",
        platform: str | None = None,
        version: str = "Wazuh v4.7.3",
        last_keep_alive: str = "2024-06-01T08:59:30+00:00",
    ) -> Agent:
        """An agent (``status``: active, disconnected, pending, never_connected)."""
        if platform is None:
            platform = "windows" if "Windows" in os_name else os_name.split()[0].lower()
        agent = Agent(
            id=agent_id,
            name=name,
            ip=ip,
            status=status,
            os={"name": os_name, "platform": platform, "arch": "x86_64"},
            version=version,
            last_keep_alive=last_keep_alive,
        )
        self.agents[agent_id] = agent
        return agent

    def complete_scan(self, agent_id: str) -> None:
        """The agent finishes the scan it is running."""
        self.agents[agent_id].scan_end = self.tick().isoformat()

    # -- answers -----------------------------------------------------------------------------

    def error(self, status: int, message: str | None = None) -> web.Response:
        body: dict[str, Any] = {"title": _WAZUH_TITLES.get(status, "Error")}
        if status == 429:
            body |= {"detail": "Maximum number of requests per minute reached", "error": 6001}
        elif status == 403:
            body |= {"detail": "Permission denied: Resource type: *:*", "error": 4000}
        else:
            body["detail"] = message or body["title"]
        return web.json_response(body, status=status)

    def unauthorised(self, expired: bool) -> web.Response:
        return web.json_response(
            {"title": "Unauthorized", "detail": "Invalid token" if expired else "Unauthorized"},
            status=401,
        )

    @staticmethod
    def _page(
        items: list[Any], failed: list[dict[str, Any]], message: str, total: int | None = None
    ) -> web.Response:
        error = 0 if not failed else (1 if not items else 2)
        return web.json_response(
            {
                "data": {
                    "affected_items": items,
                    "total_affected_items": len(items) if total is None else total,
                    "total_failed_items": sum(len(f["id"]) for f in failed),
                    "failed_items": failed,
                },
                "message": message,
                "error": error,
            }
        )

    async def _authenticate(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        given = None
        if header.startswith("Basic "):
            with contextlib.suppress(ValueError):
                given = base64.b64decode(header[6:], validate=True).decode()
        if given != f"{self.username}:{self.password}":
            return web.json_response(
                {"title": "Unauthorized", "detail": "Invalid credentials"}, status=401
            )
        return web.json_response({"data": {"token": self.issue_token()}, "error": 0})

    def _agents_list(self, request: web.Request) -> list[str] | web.Response:
        text = request.query.get("agents_list")
        if text is None:
            return self.error(400, "Missing query parameter 'agents_list'")
        ids = text.split(",")
        if not all(_AGENT_ID.match(i) for i in ids):
            return self.error(400, f"'{text}' does not match '^[0-9]{{3,5}}$'")
        return ids

    async def _json_body(self, request: web.Request) -> dict[str, Any] | web.Response:
        if request.content_type != "application/json":
            return self.error(406, "Invalid content-type")
        try:
            body = json.loads(await request.text())
        except ValueError:
            return self.error(400, "Invalid JSON body")
        if not isinstance(body, dict):
            return self.error(400, "The request body must be an object")
        return body

    async def _agents(self, request: web.Request) -> web.Response:
        try:
            offset = int(request.query.get("offset", "0"))
            limit = int(request.query.get("limit", "500"))
        except ValueError:
            return self.error(400, "offset and limit must be integers")
        if offset < 0 or not 1 <= limit <= self.MAX_LIMIT:
            return self.error(400, f"Invalid offset or limit: limit must be 1..{self.MAX_LIMIT}")
        if request.query.get("sort", "+id") not in ("+id", "-id", "id"):
            return self.error(400, "Invalid sort field")
        agents = sorted(self.agents.values(), key=lambda a: a.id)
        if request.query.get("sort") == "-id":
            agents.reverse()
        page = [a.as_json() for a in agents[offset : offset + limit]]
        message = "All selected agents information was returned"
        return self._page(page, [], message, total=len(agents))

    def _reach(self, ids: list[str]) -> tuple[list[Agent], list[dict[str, Any]]]:
        reached: list[Agent] = []
        unknown: list[str] = []
        inactive: list[str] = []
        for ident in ids:
            agent = self.agents.get(ident)
            if agent is None:
                unknown.append(ident)
            elif agent.status != "active":
                inactive.append(ident)
            else:
                reached.append(agent)
        failed = []
        if unknown:
            failed.append(
                {"error": {"code": 1701, "message": "Agent does not exist"}, "id": unknown}
            )
        if inactive:
            failed.append(
                {
                    "error": {
                        "code": 1707,
                        "message": "Cannot send request, agent is not active",
                    },
                    "id": inactive,
                }
            )
        return reached, failed

    async def _active_response(self, request: web.Request) -> web.Response:
        ids = self._agents_list(request)
        if isinstance(ids, web.Response):
            return ids
        body = await self._json_body(request)
        if isinstance(body, web.Response):
            return body
        unknown = set(body) - {"command", "arguments", "alert"}
        if unknown:
            return self.error(400, f"Additional properties are not allowed ({sorted(unknown)})")
        command, arguments = body.get("command"), body.get("arguments", [])
        if not isinstance(command, str) or not command:
            return self.error(400, "'command' is a required property")
        if not isinstance(arguments, list) or not all(isinstance(a, str) for a in arguments):
            return self.error(400, "'arguments' must be an array of strings")
        if not isinstance(body.get("alert", {}), dict):
            return self.error(400, "'alert' must be an object")
        reached, failed = self._reach(ids)
        for agent in reached:
            self.writes.append(("PUT /active-response", agent.id))
            agent.commands.append(body)
        if not failed:
            message = "AR command was sent to all agents"
        elif reached:
            message = "AR command was not sent to some agents"
        else:
            message = "AR command was not sent to any agent"
        return self._page([a.id for a in reached], failed, message)

    async def _syscheck(self, request: web.Request) -> web.Response:
        ids = self._agents_list(request)
        if isinstance(ids, web.Response):
            return ids
        reached, failed = self._reach(ids)
        for agent in reached:
            self.writes.append(("PUT /syscheck", agent.id))
            agent.scan_start = self.tick().isoformat()
        if not failed:
            message = "Syscheck scan was restarted on returned agents"
        elif reached:
            message = "Syscheck scan was not restarted on some agents"
        else:
            message = "Could not restart syscheck scan on any agent"
        return self._page([a.id for a in reached], failed, message)

    async def _last_scan(self, request: web.Request) -> web.Response:
        ident = request.match_info["agent_id"]
        if not _AGENT_ID.match(ident):
            return self.error(400, f"'{ident}' does not match '^[0-9]{{3,5}}$'")
        agent = self.agents.get(ident)
        if agent is None:
            failed = [{"error": {"code": 1701, "message": "Agent does not exist"}, "id": [ident]}]
            return self._page([], failed, "No last scan information was returned")
        scan = {"start": agent.scan_start, "end": agent.scan_end}
        return self._page([scan], [], "Last syscheck scan of the agent was returned")


# -- Microsoft Defender for Endpoint ---------------------------------------------------------

SCOPE = "https://api.securitycenter.microsoft.com/.default"
_FILTER_CLAUSE = re.compile(r"^(type|status|machineId) eq '([^']*)'$")
_ACTION_TYPES = {
    "isolate": "Isolate",
    "unisolate": "Unisolate",
    "runAntiVirusScan": "RunAntiVirusScan",
}


class FakeDefender(FakeProduct):
    """Microsoft Defender for Endpoint: the token endpoint, ``GET /api/machines``,
    ``POST /api/machines/{id}/{isolate|unisolate|runAntiVirusScan}``, ``GET /api/machineactions``
    and ``GET /api/machineactions/{id}``. ``max_page`` caps a page below ``$top`` (the real
    one's cap is 10,000), so paging is tested with a few machines."""

    auth_paths = ("/oauth2/v2.0/token",)

    def __init__(
        self,
        *,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        token_lifetime: int = 3599,
        max_page: int = 10_000,
    ) -> None:
        super().__init__()
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_lifetime = token_lifetime
        self.max_page = max_page
        self.machines: dict[str, dict[str, Any]] = {}
        self.actions: dict[str, dict[str, Any]] = {}
        self.link_origin: str | None = None
        """Where ``@odata.nextLink`` points (the request's own origin when None)."""

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token)
        app.router.add_get("/api/machines", self._machines)
        app.router.add_post("/api/machines/{id}/{action}", self._act)
        app.router.add_get("/api/machineactions", self._action_list)
        app.router.add_get("/api/machineactions/{id}", self._action)

    @staticmethod
    def machine_id(name: str) -> str:
        """A Defender machine id (40 hex digits), stable per name."""
        return hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()

    def add_machine(
        self,
        computer_dns_name: str,
        *,
        last_ip: str,
        os_platform: str = "Windows11",
        health_status: str = "Active",
        last_seen: str = "2024-06-01T08:58:12.1234567Z",
        **fields: Any,
    ) -> str:
        """A machine (``health_status``: Active, Inactive, ImpairedCommunication, NoSensorData,
        Unknown); its id."""
        ident = self.machine_id(computer_dns_name)
        self.machines[ident] = {
            "id": ident,
            "computerDnsName": computer_dns_name,
            "firstSeen": "2024-01-15T08:00:00Z",
            "lastSeen": last_seen,
            "osPlatform": os_platform,
            "osVersion": "10.0.22631",
            "version": "23H2",
            "osProcessor": "x64",
            "lastIpAddress": last_ip,
            "lastExternalIpAddress": "203.0.113.10",
            "agentVersion": "10.8760.22621.1016",
            "healthStatus": health_status,
            "onboardingStatus": "Onboarded",
            "rbacGroupName": "Workstations",
            "riskScore": "Low",
            "exposureLevel": "Medium",
            "isAadJoined": True,
            "machineTags": [],
            "ipAddresses": [
                {"ipAddress": last_ip, "macAddress": "00155D0A1B2C", "operationalStatus": "Up"}
            ],
            **fields,
        }
        return ident

    def set_action_status(self, action_id: str, status: str) -> None:
        """Move a machine action on (InProgress, Succeeded, Failed, TimeOut, Cancelled)."""
        action = self.actions[action_id]
        action["status"] = status
        action["lastUpdateDateTimeUtc"] = self._stamp()

    def _stamp(self) -> str:
        return self.tick().strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"

    # -- answers -----------------------------------------------------------------------------

    @staticmethod
    def _error(status: int, code: str, message: str) -> web.Response:
        return web.json_response(
            {"error": {"code": code, "message": message, "target": str(uuid.uuid4())}},
            status=status,
        )

    def error(self, status: int, message: str | None = None) -> web.Response:
        codes = {
            400: "InvalidRequestBody",
            403: "Forbidden",
            404: "ResourceNotFound",
            429: "TooManyRequests",
            500: "InternalServerError",
            503: "ServiceUnavailable",
        }
        default = {
            403: "The application does not have any of the required application roles "
            "(Machine.Isolate) to access resource.",
            429: "Rate limit is exceeded. Try again in 2 seconds.",
        }
        text = message or default.get(status, "An error occurred")
        return self._error(status, codes.get(status, "InternalServerError"), text)

    def unauthorised(self, expired: bool) -> web.Response:
        message = "The token is expired" if expired else "Authorization header missing or invalid"
        return self._error(401, "Unauthorized", message)

    @staticmethod
    def _aad_error(status: int, error: str, code: int, description: str) -> web.Response:
        return web.json_response(
            {
                "error": error,
                "error_description": f"AADSTS{code}: {description}\r\nTrace ID: {uuid.uuid4()}",
                "error_codes": [code],
                "timestamp": "2024-06-01 09:00:00Z",
                "trace_id": str(uuid.uuid4()),
                "correlation_id": str(uuid.uuid4()),
            },
            status=status,
        )

    async def _token(self, request: web.Request) -> web.Response:
        if request.content_type != "application/x-www-form-urlencoded":
            return self._aad_error(
                400, "invalid_request", 900144, "The request body must contain 'grant_type'."
            )
        form = await request.post()
        if request.match_info["tenant"] != self.tenant_id:
            tenant = request.match_info["tenant"]
            return self._aad_error(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
        if form.get("grant_type") != "client_credentials":
            return self._aad_error(
                400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
            )
        if form.get("client_id") != self.client_id:
            return self._aad_error(
                400,
                "unauthorized_client",
                700016,
                "Application was not found in the directory.",
            )
        if form.get("client_secret") != self.client_secret:
            return self._aad_error(
                401, "invalid_client", 7000215, "Invalid client secret provided."
            )
        if form.get("scope") != SCOPE:
            return self._aad_error(
                400,
                "invalid_scope",
                70011,
                "The provided value for the input parameter 'scope' is not valid.",
            )
        return web.json_response(
            {
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
                "ext_expires_in": self.token_lifetime,
                "access_token": self.issue_token(),
            }
        )

    def _paged(
        self, request: web.Request, items: list[dict[str, Any]], context: str
    ) -> web.Response:
        try:
            top = int(request.query.get("$top", "10000"))
            skip = int(request.query.get("$skip", "0"))
        except ValueError:
            return self._error(400, "InvalidRequest", "Invalid $top or $skip")
        if not 1 <= top <= 10_000 or skip < 0:
            return self._error(400, "InvalidRequest", "$top must be between 1 and 10000")
        size = min(top, self.max_page)
        body: dict[str, Any] = {
            "@odata.context": f"{self.base_url}/api/$metadata#{context}",
            "value": items[skip : skip + size],
        }
        if skip + size < len(items):
            following = request.url.with_query(
                {**request.query, "$top": str(top), "$skip": str(skip + size)}
            )
            if self.link_origin is not None:
                following = URL(self.link_origin).join(following.relative())
            body["@odata.nextLink"] = str(following)
        return web.json_response(body)

    async def _machines(self, request: web.Request) -> web.Response:
        return self._paged(request, list(self.machines.values()), "Machines")

    async def _action_list(self, request: web.Request) -> web.Response:
        actions = list(self.actions.values())
        text = request.query.get("$filter")
        if text is not None:
            # OData: clauses "field eq 'value'" joined by "or" (all on one field) or "and".
            joiner = " or " if " or " in text else " and "
            clauses = [_FILTER_CLAUSE.match(c.strip()) for c in text.split(joiner)]
            if not all(clauses):
                return self._error(400, "InvalidRequest", f"Invalid filter: {text}")
            pairs = [(m.group(1), m.group(2)) for m in clauses if m]
            if joiner == " or ":
                actions = [a for a in actions if any(a[f] == v for f, v in pairs)]
            else:
                actions = [a for a in actions if all(a[f] == v for f, v in pairs)]
        return self._paged(request, actions, "MachineActions")

    async def _action(self, request: web.Request) -> web.Response:
        action = self.actions.get(request.match_info["id"])
        if action is None:
            return self._error(404, "ResourceNotFound", "Machine action was not found")
        return web.json_response(action)

    async def _act(self, request: web.Request) -> web.Response:
        kind = _ACTION_TYPES.get(request.match_info["action"])
        if kind is None:
            return self._error(404, "ResourceNotFound", "Resource not found")
        ident = request.match_info["id"]
        try:
            body = json.loads(await request.text())
        except ValueError:
            return self._error(400, "InvalidRequestBody", "Request body is incorrect")
        if not isinstance(body, dict):
            return self._error(400, "InvalidRequestBody", "Request body is incorrect")
        allowed = {"Comment"} | {
            "Isolate": {"IsolationType"},
            "RunAntiVirusScan": {"ScanType"},
        }.get(kind, set())
        comment = body.get("Comment")
        if set(body) - allowed or not isinstance(comment, str) or not comment.strip():
            return self._error(400, "InvalidRequestBody", "Request body is incorrect")
        scope = body.get("IsolationType", body.get("ScanType"))
        if kind == "Isolate" and scope not in (None, "Full", "Selective"):
            return self._error(400, "InvalidRequestBody", "Invalid IsolationType")
        if kind == "RunAntiVirusScan" and scope not in (None, "Quick", "Full"):
            return self._error(400, "InvalidRequestBody", "Invalid ScanType")
        machine = self.machines.get(ident)
        if machine is None:
            return self._error(404, "ResourceNotFound", f"Machine {ident} was not found")
        for action in self.actions.values():
            if (
                action["machineId"] == ident
                and action["type"] == kind
                and action["status"] in ("Pending", "InProgress")
            ):
                return self._error(
                    400, "ActiveRequestAlreadyExists", "Action is already in progress"
                )
        self.writes.append((f"POST /api/machines/{{id}}/{request.match_info['action']}", ident))
        stamp = self._stamp()
        action = {
            "id": str(uuid.uuid4()),
            "type": kind,
            "scope": scope or ("Full" if kind == "Isolate" else None),
            "requestor": self.client_id,
            "requestorComment": comment,
            "status": "Pending",
            "machineId": ident,
            "computerDnsName": machine["computerDnsName"],
            "creationDateTimeUtc": stamp,
            "lastUpdateDateTimeUtc": stamp,
            "cancellationRequestor": None,
            "cancellationComment": None,
            "cancellationDateTimeUtc": None,
            "errorHResult": 0,
            "title": None,
            "relatedFileInfo": None,
        }
        self.actions[action["id"]] = action
        return web.json_response(action, status=201)


# -- Elastic Defend (Kibana) -----------------------------------------------------------------


class FakeElastic(FakeProduct):
    """Kibana's Security endpoint management API for Elastic Defend: ``GET
    /api/endpoint/metadata``, ``POST /api/endpoint/action/{isolate|unisolate|scan}`` and ``GET
    /api/endpoint/action/{id}``, authenticated by ``Authorization: ApiKey <encoded key>``; a
    write without ``kbn-xsrf`` is refused as Kibana refuses it. :meth:`expire_tokens` revokes
    the key. Actions stay pending until :meth:`complete_action`, which also changes the
    host's isolation state."""

    COMMANDS: ClassVar[frozenset[str]] = frozenset({"isolate", "unisolate", "scan"})
    _BODY_KEYS: ClassVar[frozenset[str]] = frozenset(
        {"endpoint_ids", "comment", "agent_type", "alert_ids", "case_ids", "parameters"}
    )

    def __init__(self, *, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key
        self.tokens.add(api_key)
        self.hosts: dict[str, dict[str, Any]] = {}
        self.actions: dict[str, dict[str, Any]] = {}

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/api/endpoint/metadata", self._metadata)
        app.router.add_post("/api/endpoint/action/{command}", self._act)
        app.router.add_get("/api/endpoint/action/{id}", self._action)

    def presented_token(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        return header[7:] if header.startswith("ApiKey ") else None

    def add_endpoint(
        self,
        hostname: str,
        *,
        ips: list[str],
        os_name: str = "Windows",
        os_full: str = "Windows 11 Enterprise 23H2 (10.0.22631.3593)",
        host_status: str = "healthy",
        isolated: bool = False,
    ) -> str:
        """A host running Elastic Defend (``host_status``: healthy, offline, updating,
        unhealthy, inactive, unenrolled); its agent id."""
        agent_id = str(uuid.uuid5(uuid.NAMESPACE_DNS, hostname))
        self.hosts[agent_id] = {
            "metadata": {
                "@timestamp": 1717232292000,
                "Endpoint": {
                    "capabilities": ["isolation", "kill_process", "scan"],
                    "configuration": {"isolation": isolated},
                    "policy": {"applied": {"name": "Protect", "status": "success"}},
                    "state": {"isolation": isolated},
                    "status": "enrolled",
                },
                "agent": {"id": agent_id, "type": "endpoint", "version": "8.14.1"},
                "elastic": {"agent": {"id": agent_id}},
                "host": {
                    "hostname": hostname,
                    "name": hostname,
                    "id": hashlib.md5(hostname.encode(), usedforsecurity=False).hexdigest(),
                    "ip": ["127.0.0.1", "::1", *ips],
                    "os": {"name": os_name, "full": os_full, "family": os_name.lower()},
                },
            },
            "host_status": host_status,
            "last_checkin": "2024-06-01T08:58:12.432173535Z",
        }
        return agent_id

    def complete_action(self, action_id: str, *, successful: bool = True) -> None:
        """The endpoint reports the action done (or failed)."""
        action = self.actions[action_id]
        action |= {
            "isCompleted": True,
            "wasSuccessful": successful,
            "status": "successful" if successful else "failed",
            "completedAt": self.tick().isoformat().replace("+00:00", "Z"),
        }
        if not successful:
            action["errors"] = ["Endpoint action failed to apply"]
            return
        for agent in action["agents"]:
            state = self.hosts[agent]["metadata"]["Endpoint"]
            if action["command"] in ("isolate", "unisolate"):
                isolated = action["command"] == "isolate"
                state["state"]["isolation"] = isolated
                state["configuration"]["isolation"] = isolated

    def error(self, status: int, message: str | None = None) -> web.Response:
        names = {
            400: "Bad Request",
            403: "Forbidden",
            404: "Not Found",
            429: "Too Many Requests",
            500: "Internal Server Error",
            503: "Service Unavailable",
        }
        default = {
            403: "Endpoint authz error: the user does not have the Host Isolation privilege",
            500: "An internal server error occurred.",
        }
        name = names.get(status, "Internal Server Error")
        body = {
            "statusCode": status,
            "error": name,
            "message": message or default.get(status, name),
        }
        return web.json_response(body, status=status)

    def unauthorised(self, expired: bool) -> web.Response:
        return web.json_response(
            {
                "statusCode": 401,
                "error": "Unauthorized",
                "message": "[security_exception\n\tRoot causes:\n\t\tsecurity_exception: unable to "
                "authenticate with provided credentials and anonymous access is not allowed for "
                "this request]: unable to authenticate with provided credentials and anonymous "
                "access is not allowed for this request",
            },
            status=401,
        )

    async def _metadata(self, request: web.Request) -> web.Response:
        try:
            page = int(request.query.get("page", "0"))
            size = int(request.query.get("pageSize", "10"))
        except ValueError:
            return self.error(400, "[request query.page]: expected value of type [number]")
        if page < 0 or not 1 <= size <= 10_000:
            return self.error(400, "[request query.pageSize]: Value must be between 1 and 10000")
        hosts = list(self.hosts.values())
        return web.json_response(
            {
                "data": hosts[page * size : (page + 1) * size],
                "total": len(hosts),
                "page": page,
                "pageSize": size,
                "sortField": "enrolled_at",
                "sortDirection": "desc",
            }
        )

    async def _act(self, request: web.Request) -> web.Response:
        command = request.match_info["command"]
        if command not in self.COMMANDS:
            return self.error(404, "Not Found")
        if "kbn-xsrf" not in request.headers:
            return self.error(400, "Request must contain a kbn-xsrf header.")
        try:
            body = json.loads(await request.text())
        except ValueError:
            return self.error(
                400, "[request body]: expected a plain object value, but found [null]"
            )
        if not isinstance(body, dict):
            return self.error(400, "[request body]: expected a plain object value")
        unknown = sorted(set(body) - self._BODY_KEYS)
        if unknown:
            return self.error(
                400, f"[request body.{unknown[0]}]: definition for this key is missing"
            )
        ids = body.get("endpoint_ids")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
            return self.error(
                400,
                "[request body.endpoint_ids]: array size is [0], but cannot be smaller than [1]",
            )
        if not isinstance(body.get("comment", ""), str):
            return self.error(400, "[request body.comment]: expected value of type [string]")
        parameters = body.get("parameters")
        if command == "scan" and not (
            isinstance(parameters, dict)
            and isinstance(parameters.get("path"), str)
            and parameters["path"]
        ):
            return self.error(
                400, "[request body.parameters.path]: expected value of type [string]"
            )
        for agent in ids:
            if agent not in self.hosts:
                return self.error(404, f"Endpoint host [{agent}] not found")
        for agent in ids:
            self.writes.append((f"POST /api/endpoint/action/{command}", agent))
        action: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "agents": ids,
            "agentType": "endpoint",
            "command": command,
            "comment": body.get("comment"),
            "parameters": parameters,
            "createdBy": "aurora-api",
            "startedAt": self.tick().isoformat().replace("+00:00", "Z"),
            "isCompleted": False,
            "wasSuccessful": False,
            "isExpired": False,
            "status": "pending",
            "outputs": {},
        }
        self.actions[action["id"]] = action
        return web.json_response({"action": action["id"], "data": action})

    async def _action(self, request: web.Request) -> web.Response:
        action = self.actions.get(request.match_info["id"])
        if action is None:
            return self.error(404, f"Action with id '{request.match_info['id']}' not found.")
        return web.json_response({"data": action})
