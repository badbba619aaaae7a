"""Microsoft Defender for Endpoint API (``https://api.securitycenter.microsoft.com``).

- Auth: the OAuth 2.0 client-credentials grant at
  ``{login_url}/{tenant_id}/oauth2/v2.0/token`` (scope
  ``https://api.securitycenter.microsoft.com/.default``); the token is kept until a minute
  before its ``expires_in`` and renewed once on a 401. A refused client (``invalid_client``,
  ``unauthorized_client``) is :class:`EdrAuthError`.
- Inventory: ``GET /api/machines`` (OData: ``value``, paged by ``@odata.nextLink``, followed only
  on the configured API's origin, where the token may go). ``healthStatus`` gives the state
  (``Active`` → online, ``Inactive`` → offline, others unknown), overridden by the machine's
  latest isolation action that did not fail, from ``GET /api/machineactions`` filtered on the
  ``Isolate`` and ``Unisolate`` types: a succeeded ``Isolate`` → isolated, a pending one →
  isolating, a pending ``Unisolate`` → releasing.
- Actions: ``POST /api/machines/{id}/isolate`` (``Comment``, ``IsolationType``),
  ``/unisolate`` (``Comment``), ``/runAntiVirusScan`` (``Comment``, ``ScanType``) answer 201
  with a MachineAction (``id``, ``status`` ``Pending``); :meth:`DefenderConnector.status` reads
  ``GET /api/machineactions/{id}``: ``Pending``, ``InProgress``, ``Succeeded``, and ``Failed``,
  ``TimeOut``, ``Cancelled`` (failed).
- Errors: ``{"error": {"code", "message"}}``; a 404 on a machine is
  :class:`EdrEndpointUnknown`; 400 ``ActiveRequestAlreadyExists`` (an action of the same kind is
  pending on the machine) is :class:`EdrUnavailable` with Defender's code and message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar, Literal
from urllib.parse import quote

import aiohttp
from pydantic import SecretStr
from yarl import URL

from tools.edr.base import (
    ActionReceipt,
    ActionStatus,
    ConnectorEndpoint,
    EdrAction,
    EdrAuthError,
    EdrUnavailable,
    EndpointState,
)
from tools.edr.http import Answer, HttpConnector, as_dict, as_list, clip, parse_time

DEFAULT_API_URL = "https://api.securitycenter.microsoft.com"
DEFAULT_LOGIN_URL = "https://login.microsoftonline.com"
DEFAULT_SCOPE = "https://api.securitycenter.microsoft.com/.default"
DEFAULT_COMMENT = "Requested through AuroraSOC"

IsolationType = Literal["Full", "Selective"]
ScanType = Literal["Quick", "Full"]

_ACTION_STATUS = {
    "Pending": ActionStatus.PENDING,
    "InProgress": ActionStatus.IN_PROGRESS,
    "Succeeded": ActionStatus.SUCCEEDED,
    "Failed": ActionStatus.FAILED,
    "TimeOut": ActionStatus.FAILED,
    "Cancelled": ActionStatus.FAILED,
}
_HEALTH = {"Active": EndpointState.ONLINE, "Inactive": EndpointState.OFFLINE}
_PATHS = {
    EdrAction.ISOLATE: "isolate",
    EdrAction.UNISOLATE: "unisolate",
    EdrAction.SCAN: "runAntiVirusScan",
}
_REFUSED_CLIENT = {"invalid_client", "unauthorized_client"}
_COMMENT_LIMIT = 1000


class DefenderConnector(HttpConnector):
    """Microsoft Defender for Endpoint; see the module docstring."""

    product = "defender"
    MAX_PAGES: ClassVar[int] = 200

    def __init__(
        self,
        name: str,
        *,
        tenant_id: str,
        client_id: str,
        client_secret: SecretStr,
        base_url: str = DEFAULT_API_URL,
        login_url: str = DEFAULT_LOGIN_URL,
        scope: str = DEFAULT_SCOPE,
        isolation_type: IsolationType = "Full",
        scan_type: ScanType = "Quick",
        page_size: int = 1000,
        clock: Callable[[], float] = time.monotonic,
        **http: Any,
    ) -> None:
        super().__init__(name, base_url=base_url, **http)
        self.tenant_id = tenant_id
        self.client_id = client_id
        self._client_secret = client_secret
        self.login_url = login_url.rstrip("/")
        self.scope = scope
        self.isolation_type: IsolationType = isolation_type
        self.scan_type: ScanType = scan_type
        self.page_size = page_size
        self._clock = clock
        self._expires_at = 0.0

    # -- auth --------------------------------------------------------------------------------

    def _token_valid(self) -> bool:
        return self._token is not None and self._clock() < self._expires_at

    async def _authenticate(self) -> str:
        url = f"{self.login_url}/{quote(self.tenant_id, safe='')}/oauth2/v2.0/token"
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._client_secret.get_secret_value(),
            "scope": self.scope,
        }
        try:
            answer = await self._exchange("POST", url, form=form)
        except (TimeoutError, aiohttp.ClientError) as err:
            what = "timeout" if isinstance(err, TimeoutError) else type(err).__name__
            raise EdrUnavailable(self.name, f"token request failed: {what}") from err
        error = answer.body.get("error")
        if answer.status in (401, 403) or error in _REFUSED_CLIENT:
            raise EdrAuthError(self.name, answer.status)
        token = answer.body.get("access_token")
        if answer.status != 200 or not isinstance(token, str) or not token:
            description = str(answer.body.get("error_description") or "").split("\n")[0]
            reason = f"token request: HTTP {answer.status} {error or ''} {description}"
            raise EdrUnavailable(self.name, clip(reason))
        lifetime = answer.body.get("expires_in")
        seconds = float(lifetime) if isinstance(lifetime, int | float | str) else 300.0
        self._expires_at = self._clock() + max(0.0, seconds - 60.0)
        return token

    def _reason(self, answer: Answer) -> str:
        error = answer.body.get("error")
        if isinstance(error, dict):
            return clip(f"{error.get('code', '')}: {error.get('message', '')}".strip(": "))
        return clip(str(answer.body.get("text") or "no reason given"))

    # -- inventory ---------------------------------------------------------------------------

    async def _collection(self, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
        """Every item of an OData collection, through its ``@odata.nextLink`` pages."""
        origin = URL(self.base_url).origin()
        items: list[dict[str, Any]] = []
        answer = await self._send("GET", path, params=params)
        for _ in range(self.MAX_PAGES):
            items += [v for v in as_list(answer.body.get("value")) if isinstance(v, dict)]
            following = answer.body.get("@odata.nextLink")
            if not isinstance(following, str) or not following:
                break
            if URL(following).origin() != origin:
                raise EdrUnavailable(self.name, "next page link leaves the configured API")
            answer = await self._send("GET", following)
        return items

    async def inventory(self) -> list[ConnectorEndpoint]:
        top = {"$top": str(self.page_size)}
        machines = await self._collection("/api/machines", top)
        actions = await self._collection(
            "/api/machineactions",
            top | {"$filter": "type eq 'Isolate' or type eq 'Unisolate'"},
        )
        isolation = _isolation_states(actions)
        found: list[ConnectorEndpoint] = []
        for machine in machines:
            endpoint = self._endpoint(machine, isolation)
            if endpoint is not None:
                found.append(endpoint)
        return found

    def _endpoint(
        self, machine: dict[str, Any], isolation: dict[str, EndpointState]
    ) -> ConnectorEndpoint | None:
        ident, dns = machine.get("id"), machine.get("computerDnsName")
        if not isinstance(ident, str) or not ident or not isinstance(dns, str) or not dns:
            return None
        ips: list[str] = []
        candidates = [machine.get("lastIpAddress")]
        candidates += [as_dict(a).get("ipAddress") for a in as_list(machine.get("ipAddresses"))]
        for ip in candidates:
            if isinstance(ip, str) and ip and ip not in ips:
                ips.append(ip)
        health = machine.get("healthStatus")
        state = isolation.get(ident) or _HEALTH.get(str(health), EndpointState.UNKNOWN)
        details: dict[str, Any] = {"healthStatus": health}
        for key in ("osVersion", "riskScore", "exposureLevel", "agentVersion", "machineTags"):
            if machine.get(key) not in (None, "", []):
                details[key] = machine[key]
        return self._endpoint_of(
            ident,
            dns,
            ips=ips,
            os=machine.get("osPlatform"),
            state=state,
            last_seen=parse_time(machine.get("lastSeen")),
            details=details,
        )

    # -- actions -----------------------------------------------------------------------------

    async def act(
        self, action: EdrAction, endpoint: ConnectorEndpoint, *, comment: str
    ) -> ActionReceipt:
        machine = endpoint.native_id
        body: dict[str, str] = {"Comment": clip(comment)[:_COMMENT_LIMIT] or DEFAULT_COMMENT}
        if action is EdrAction.ISOLATE:
            body["IsolationType"] = self.isolation_type
        elif action is EdrAction.SCAN:
            body["ScanType"] = self.scan_type
        path = f"/api/machines/{quote(machine, safe='')}/{_PATHS[action]}"
        answer = await self._send("POST", path, json_body=body, endpoint=machine)
        return self._receipt(action, machine, answer.body)

    async def status(self, receipt: ActionReceipt) -> ActionReceipt:
        if receipt.native_action_id is None or receipt.status.finished:
            return receipt
        path = f"/api/machineactions/{quote(receipt.native_action_id, safe='')}"
        answer = await self._send("GET", path)
        return self._receipt(receipt.action, receipt.native_id, answer.body)

    def _receipt(self, action: EdrAction, machine: str, body: dict[str, Any]) -> ActionReceipt:
        native_status = body.get("status")
        status = _ACTION_STATUS.get(str(native_status))
        ident = body.get("id")
        if status is None or not isinstance(ident, str):
            raise EdrUnavailable(self.name, "unexpected machine action shape")
        detail = {
            key: body[key]
            for key in (
                "status",
                "type",
                "scope",
                "requestor",
                "creationDateTimeUtc",
                "lastUpdateDateTimeUtc",
            )
            if body.get(key) is not None
        }
        return ActionReceipt(
            connector=self.name,
            action=action,
            native_id=machine,
            status=status,
            native_action_id=ident,
            detail=detail,
        )


def _isolation_states(actions: list[dict[str, Any]]) -> dict[str, EndpointState]:
    """Each machine's isolation state from its latest isolation action that did not fail."""
    latest: dict[str, tuple[datetime, EndpointState | None]] = {}
    for action in actions:
        machine, created = action.get("machineId"), parse_time(action.get("creationDateTimeUtc"))
        kind, status = action.get("type"), action.get("status")
        if not isinstance(machine, str) or created is None:
            continue
        if status in ("Failed", "TimeOut", "Cancelled"):
            continue
        done = status == "Succeeded"
        if kind == "Isolate":
            state: EndpointState | None = (
                EndpointState.ISOLATED if done else EndpointState.ISOLATING
            )
        elif kind == "Unisolate":
            state = None if done else EndpointState.RELEASING
        else:
            continue
        if machine not in latest or created > latest[machine][0]:
            latest[machine] = (created, state)
    return {machine: state for machine, (_, state) in latest.items() if state is not None}
