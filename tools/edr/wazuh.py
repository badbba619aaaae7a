"""Wazuh server API v4 (the manager's REST API, port 55000 by default).

- Auth: ``POST /security/user/authenticate`` with HTTP basic auth answers a JWT
  (``data.token``), sent as ``Authorization: Bearer``; a 401 later (the token lasts 900 s by
  default) renews it once.
- Inventory: ``GET /agents`` paged with ``offset``/``limit`` (``data.affected_items``,
  ``data.total_affected_items``). The manager itself (agent ``000``) is left out: isolating it
  would cut the platform off from every agent. An agent's ``status`` gives the state:
  ``active`` → online, ``disconnected``/``never_connected`` → offline, ``pending`` → unknown.
  Wazuh keeps no isolation state, so its inventory never says ``isolated``: the platform keeps
  that from the actions it took.
- Isolate and release: ``PUT /active-response?agents_list=ID`` with
  ``{"command", "arguments", "alert"}``. Wazuh ships no isolation command: the operator installs
  one on the agents (a script in ``active-response/bin``) and names it in the connector's
  configuration; ``!`` before a name means a script name rather than a command defined in
  ``ossec.conf``. Defaults :data:`DEFAULT_ISOLATE_COMMAND` and :data:`DEFAULT_RELEASE_COMMAND`.
  Wazuh reports delivery only, so a command the manager sent to the agent is ``succeeded``.
- Scan: ``PUT /syscheck?agents_list=ID`` restarts the file-integrity scan; its progress comes
  from ``GET /syscheck/ID/last_scan`` (a scan started after the request, with an ``end`` after
  its ``start``, has finished).

Wazuh answers a request it processed with HTTP 200 and lists agents it could not act on in
``data.failed_items`` (``{"error": {"code", "message"}, "id": [...]}``): code 1701 (agent does
not exist) is :class:`EdrEndpointUnknown`, any other :class:`EdrUnavailable` with Wazuh's
message. A refused request's body is ``{"title", "detail", "error"}``.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any, ClassVar

import aiohttp
from pydantic import SecretStr

from tools.edr.base import (
    ActionReceipt,
    ActionStatus,
    ConnectorEndpoint,
    EdrAction,
    EdrAuthError,
    EdrEndpointUnknown,
    EdrUnavailable,
    EndpointState,
)
from tools.edr.http import Answer, HttpConnector, as_dict, as_list, clip, parse_time

DEFAULT_ISOLATE_COMMAND = "!aurora-isolate"
"""The isolation script's name on the agents (``active-response/bin/aurora-isolate[.cmd]``)."""
DEFAULT_RELEASE_COMMAND = "!aurora-release"
"""The release script's name on the agents."""

_AGENT_UNKNOWN = 1701
_STATES = {
    "active": EndpointState.ONLINE,
    "disconnected": EndpointState.OFFLINE,
    "never_connected": EndpointState.OFFLINE,
    "pending": EndpointState.UNKNOWN,
}
_MANAGER_ID = "000"


class WazuhConnector(HttpConnector):
    """Wazuh server API v4; see the module docstring."""

    product = "wazuh"
    MAX_ENDPOINTS: ClassVar[int] = 100_000

    def __init__(
        self,
        name: str,
        *,
        base_url: str,
        username: str,
        password: SecretStr,
        isolate_command: str = DEFAULT_ISOLATE_COMMAND,
        release_command: str = DEFAULT_RELEASE_COMMAND,
        command_arguments: list[str] | None = None,
        page_size: int = 500,
        **http: Any,
    ) -> None:
        super().__init__(name, base_url=base_url, **http)
        self._username = username
        self._password = password
        self.isolate_command = isolate_command
        self.release_command = release_command
        self.command_arguments = list(command_arguments or [])
        self.page_size = page_size

    async def _authenticate(self) -> str:
        pair = f"{self._username}:{self._password.get_secret_value()}".encode()
        basic = {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
        try:
            answer = await self._exchange(
                "POST", self.base_url + "/security/user/authenticate", headers=basic
            )
        except (TimeoutError, aiohttp.ClientError) as err:
            what = "timeout" if isinstance(err, TimeoutError) else type(err).__name__
            raise EdrUnavailable(self.name, f"authentication failed: {what}") from err
        if answer.status in (401, 403):
            raise EdrAuthError(self.name, answer.status)
        token = as_dict(answer.body.get("data")).get("token")
        if answer.status != 200 or not isinstance(token, str) or not token:
            raise EdrUnavailable(self.name, f"authentication: HTTP {answer.status}")
        return token

    def _reason(self, answer: Answer) -> str:
        body = answer.body
        text = ": ".join(str(body[k]) for k in ("title", "detail") if isinstance(body.get(k), str))
        code = body.get("error")
        if isinstance(code, int) and not isinstance(code, bool) and code:
            text += f" (Wazuh error {code})"
        return clip(text) or "no reason given"

    # -- inventory ---------------------------------------------------------------------------

    async def inventory(self) -> list[ConnectorEndpoint]:
        found: list[ConnectorEndpoint] = []
        offset = 0
        while offset < self.MAX_ENDPOINTS:
            answer = await self._send(
                "GET",
                "/agents",
                params={"offset": str(offset), "limit": str(self.page_size), "sort": "+id"},
            )
            data = as_dict(answer.body.get("data"))
            items = [a for a in as_list(data.get("affected_items")) if isinstance(a, dict)]
            found += [e for a in items if (e := self._endpoint(a)) is not None]
            offset += len(items)
            total = data.get("total_affected_items")
            if not items or not isinstance(total, int) or offset >= total:
                break
        return found

    def _endpoint(self, agent: dict[str, Any]) -> ConnectorEndpoint | None:
        ident, name = agent.get("id"), agent.get("name")
        if not isinstance(ident, str) or not ident or ident == _MANAGER_ID:
            return None
        if not isinstance(name, str) or not name:
            return None
        os_info = as_dict(agent.get("os"))
        os_name = os_info.get("name") or os_info.get("platform")
        ip = agent.get("ip")
        details: dict[str, Any] = {"status": agent.get("status")}
        for key in ("version", "node_name", "group", "dateAdd"):
            if agent.get(key) not in (None, "", []):
                details[key] = agent[key]
        if isinstance(os_info.get("platform"), str):
            details["platform"] = os_info["platform"]
        return self._endpoint_of(
            ident,
            name,
            ips=[ip] if isinstance(ip, str) and ip and ip != "any" else [],
            os=os_name,
            state=_STATES.get(str(agent.get("status")), EndpointState.UNKNOWN),
            last_seen=parse_time(agent.get("lastKeepAlive")),
            details=details,
        )

    # -- actions -----------------------------------------------------------------------------

    async def act(
        self, action: EdrAction, endpoint: ConnectorEndpoint, *, comment: str
    ) -> ActionReceipt:
        agent = endpoint.native_id
        params = {"agents_list": agent}
        if action is EdrAction.SCAN:
            before = await self._last_scan(agent)
            answer = await self._send("PUT", "/syscheck", params=params, endpoint=agent)
            self._delivered(answer, agent)
            return ActionReceipt(
                connector=self.name,
                action=action,
                native_id=agent,
                status=ActionStatus.PENDING,
                detail={
                    "message": answer.body.get("message"),
                    "previous_scan_start": before[0].isoformat() if before[0] else None,
                },
            )
        command = self.isolate_command if action is EdrAction.ISOLATE else self.release_command
        body = {
            "command": command,
            "arguments": self.command_arguments,
            "alert": {
                "data": {
                    "aurora": {"action": action.value, "comment": comment},
                    "srcip": endpoint.ips[0] if endpoint.ips else None,
                    "hostname": endpoint.hostname,
                }
            },
        }
        answer = await self._send(
            "PUT", "/active-response", params=params, json_body=body, endpoint=agent
        )
        self._delivered(answer, agent)
        return ActionReceipt(
            connector=self.name,
            action=action,
            native_id=agent,
            status=ActionStatus.SUCCEEDED,
            detail={"message": answer.body.get("message"), "command": command},
        )

    def _delivered(self, answer: Answer, agent: str) -> None:
        """Raise when Wazuh lists the agent among those it could not act on."""
        data = as_dict(answer.body.get("data"))
        for failed in as_list(data.get("failed_items")):
            error = as_dict(as_dict(failed).get("error"))
            if agent not in [str(i) for i in as_list(as_dict(failed).get("id"))]:
                continue
            if error.get("code") == _AGENT_UNKNOWN:
                raise EdrEndpointUnknown(self.name, agent)
            message = error.get("message") or "agent not reached"
            raise EdrUnavailable(self.name, clip(f"Wazuh error {error.get('code')}: {message}"))
        if agent not in [str(i) for i in as_list(data.get("affected_items"))]:
            raise EdrUnavailable(self.name, clip(str(answer.body.get("message") or "not sent")))

    async def _last_scan(self, agent: str) -> tuple[datetime | None, datetime | None]:
        answer = await self._send("GET", f"/syscheck/{agent}/last_scan", endpoint=agent)
        items = as_list(as_dict(answer.body.get("data")).get("affected_items"))
        scan = as_dict(items[0]) if items else {}
        return parse_time(scan.get("start")), parse_time(scan.get("end"))

    async def status(self, receipt: ActionReceipt) -> ActionReceipt:
        if receipt.action is not EdrAction.SCAN or receipt.status.finished:
            return receipt
        previous = parse_time(receipt.detail.get("previous_scan_start"))
        start, end = await self._last_scan(receipt.native_id)
        if start is None or (previous is not None and start <= previous):
            status = ActionStatus.PENDING
        elif end is not None and end >= start:
            status = ActionStatus.SUCCEEDED
        else:
            status = ActionStatus.IN_PROGRESS
        detail = receipt.detail | {
            "scan_start": start.isoformat() if start else None,
            "scan_end": end.isoformat() if end else None,
        }
        return receipt.model_copy(update={"status": status, "detail": detail})
