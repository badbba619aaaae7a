"""Elastic Defend response actions, through Kibana's Security endpoint management API.

- Auth: an Elasticsearch API key (the base64 ``encoded`` form), sent as
  ``Authorization: ApiKey …``; every request carries ``kbn-xsrf`` (Kibana refuses a write
  without it) and ``Elastic-Api-Version: 2023-10-31``. A refused key is :class:`EdrAuthError`
  at once: there is no token to renew.
- Inventory: ``GET /api/endpoint/metadata`` (``page`` from 0, ``pageSize`` up to 10,000;
  ``data``, ``total``). The native id is the agent id (``metadata.agent.id``, what the actions'
  ``endpoint_ids`` take). ``metadata.Endpoint.state.isolation`` true → isolated; else
  ``host_status``: ``healthy``/``updating`` → online, ``offline``/``inactive``/``unenrolled`` →
  offline, others unknown.
- Actions: ``POST /api/endpoint/action/{isolate|unisolate|scan}`` with ``endpoint_ids`` and
  ``comment`` (a scan also ``parameters.path``: :attr:`ElasticConnector.scan_path`, else the
  system drive's root for Windows and ``/`` for the rest); the answer's ``data`` is the action
  (``id``, ``status``). :meth:`ElasticConnector.status` reads ``GET /api/endpoint/action/{id}``:
  ``pending`` (or not ``isCompleted``) → pending, ``successful`` → succeeded, ``failed`` or
  ``isExpired`` → failed. Kibana keeps a pending action for an offline host until it connects.
- Errors: ``{"statusCode", "error", "message"}``; a 404 naming the host is
  :class:`EdrEndpointUnknown`.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

from pydantic import SecretStr

from tools.edr.base import (
    ActionReceipt,
    ActionStatus,
    ConnectorEndpoint,
    EdrAction,
    EdrUnavailable,
    EndpointState,
)
from tools.edr.http import Answer, HttpConnector, as_dict, as_list, clip, parse_time

API_VERSION = "2023-10-31"
DEFAULT_COMMENT = "Requested through AuroraSOC"

_HOST_STATUS = {
    "healthy": EndpointState.ONLINE,
    "updating": EndpointState.ONLINE,
    "offline": EndpointState.OFFLINE,
    "inactive": EndpointState.OFFLINE,
    "unenrolled": EndpointState.OFFLINE,
}
_PATHS = {EdrAction.ISOLATE: "isolate", EdrAction.UNISOLATE: "unisolate", EdrAction.SCAN: "scan"}


class ElasticConnector(HttpConnector):
    """Elastic Defend through Kibana; see the module docstring."""

    product = "elastic"
    renews_credential = False
    MAX_PAGES: ClassVar[int] = 1000

    def __init__(
        self,
        name: str,
        *,
        base_url: str,
        api_key: SecretStr,
        scan_path: str | None = None,
        page_size: int = 1000,
        **http: Any,
    ) -> None:
        super().__init__(name, base_url=base_url, **http)
        self._api_key = api_key
        self.scan_path = scan_path
        self.page_size = page_size

    async def _authenticate(self) -> str:
        key = self._api_key.get_secret_value().strip()
        if not key.isascii() or not key.isprintable():
            raise EdrUnavailable(self.name, "API key has characters not allowed in a header")
        return key

    def _headers(self, token: str) -> dict[str, str]:
        return {
            "Authorization": f"ApiKey {token}",
            "kbn-xsrf": "true",
            "Elastic-Api-Version": API_VERSION,
        }

    def _reason(self, answer: Answer) -> str:
        body = answer.body
        parts = [str(body[k]) for k in ("error", "message") if isinstance(body.get(k), str)]
        return clip(": ".join(parts)) or "no reason given"

    # -- inventory ---------------------------------------------------------------------------

    async def inventory(self) -> list[ConnectorEndpoint]:
        found: list[ConnectorEndpoint] = []
        seen = 0
        for page in range(self.MAX_PAGES):
            answer = await self._send(
                "GET",
                "/api/endpoint/metadata",
                params={"page": str(page), "pageSize": str(self.page_size)},
            )
            items = [h for h in as_list(answer.body.get("data")) if isinstance(h, dict)]
            found += [e for h in items if (e := self._endpoint(h)) is not None]
            seen += len(items)
            total = answer.body.get("total")
            if not items or not isinstance(total, int) or seen >= total:
                break
        return found

    def _endpoint(self, host_info: dict[str, Any]) -> ConnectorEndpoint | None:
        metadata = as_dict(host_info.get("metadata"))
        agent, host = as_dict(metadata.get("agent")), as_dict(metadata.get("host"))
        ident = agent.get("id")
        name = host.get("hostname") or host.get("name")
        if not isinstance(ident, str) or not ident or not isinstance(name, str) or not name:
            return None
        os_info = as_dict(host.get("os"))
        ips = [
            ip
            for ip in as_list(host.get("ip"))
            if isinstance(ip, str) and ip not in ("127.0.0.1", "::1")
        ]
        endpoint_info = as_dict(metadata.get("Endpoint"))
        isolated = as_dict(endpoint_info.get("state")).get("isolation") is True
        status = host_info.get("host_status")
        state = (
            EndpointState.ISOLATED
            if isolated
            else _HOST_STATUS.get(str(status), EndpointState.UNKNOWN)
        )
        details: dict[str, Any] = {"host_status": status, "agent_version": agent.get("version")}
        policy = as_dict(as_dict(endpoint_info.get("policy")).get("applied"))
        if policy.get("name"):
            details["policy"] = policy["name"]
        return self._endpoint_of(
            ident,
            name,
            ips=ips,
            os=os_info.get("full") or os_info.get("name"),
            state=state,
            last_seen=parse_time(host_info.get("last_checkin")),
            details=details,
        )

    # -- actions -----------------------------------------------------------------------------

    async def act(
        self, action: EdrAction, endpoint: ConnectorEndpoint, *, comment: str
    ) -> ActionReceipt:
        body: dict[str, Any] = {
            "endpoint_ids": [endpoint.native_id],
            "comment": clip(comment) or DEFAULT_COMMENT,
        }
        if action is EdrAction.SCAN:
            windows = "windows" in (endpoint.os or "").lower()
            body["parameters"] = {"path": self.scan_path or ("C:\\" if windows else "/")}
        answer = await self._send(
            "POST",
            f"/api/endpoint/action/{_PATHS[action]}",
            json_body=body,
            endpoint=endpoint.native_id,
        )
        return self._receipt(action, endpoint.native_id, as_dict(answer.body.get("data")))

    async def status(self, receipt: ActionReceipt) -> ActionReceipt:
        if receipt.native_action_id is None or receipt.status.finished:
            return receipt
        path = f"/api/endpoint/action/{quote(receipt.native_action_id, safe='')}"
        answer = await self._send("GET", path)
        return self._receipt(receipt.action, receipt.native_id, as_dict(answer.body.get("data")))

    def _receipt(self, action: EdrAction, agent: str, data: dict[str, Any]) -> ActionReceipt:
        ident = data.get("id")
        if not isinstance(ident, str) or not ident:
            raise EdrUnavailable(self.name, "unexpected action shape")
        native = data.get("status")
        if data.get("isExpired") is True or native == "failed":
            status = ActionStatus.FAILED
        elif native == "successful" or (
            data.get("isCompleted") is True and data.get("wasSuccessful") is True
        ):
            status = ActionStatus.SUCCEEDED
        elif data.get("isCompleted") is True:
            status = ActionStatus.FAILED
        else:
            status = ActionStatus.PENDING
        detail = {
            key: data[key]
            for key in ("status", "command", "startedAt", "completedAt", "createdBy", "isExpired")
            if data.get(key) is not None
        }
        errors = [e for e in as_list(data.get("errors")) if isinstance(e, str)]
        if errors:
            detail["errors"] = [clip(e) for e in errors[:5]]
        return ActionReceipt(
            connector=self.name,
            action=action,
            native_id=agent,
            status=status,
            native_action_id=ident,
            detail=detail,
        )
