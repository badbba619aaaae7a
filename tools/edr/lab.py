"""The lab connector: an EDR as a state machine inside the platform, with a full audit trail.

Nothing leaves the platform: isolating a lab endpoint changes its state here and nowhere else,
which is what a lab, a demo or a tabletop exercise needs. The platform enrols the hosts it sees
(:meth:`LabConnector.enrol`); the native id of a lab endpoint is its lower-cased short host name.

An endpoint is connected or not (:meth:`LabConnector.set_connected`; enrolled ones are), and
isolated or not. The rules:

- ``isolate`` on a connected endpoint isolates it (``succeeded``); ``unisolate`` releases it;
  ``scan`` records a scan (:meth:`LabConnector.scans`), which finds nothing: no file is read.
- An action whose goal already holds (isolating an isolated endpoint, releasing one that is
  not isolated) succeeds without a change: its receipt says ``"changed": false``, and the
  audit trail records it. A playbook that releases what someone else released is not an error.
- On a disconnected endpoint an action waits (``pending``; the endpoint is ``isolating`` or
  ``releasing``) and is carried out when the endpoint connects again, as a real agent picks up
  its orders. One action waits at a time: a different one meanwhile is refused
  (:class:`EdrUnavailable`, as Defender's ``ActiveRequestAlreadyExists``); the same one
  again answers the waiting action's receipt.

Every change (enrolment, connection, action, completion) is an :class:`AuditEntry` with its
time, action, states before and after, and comment. State lives in memory, and in a JSON file
when ``state_path`` is given (rewritten atomically after each change, read at start), so an
isolation survives a restart. One lock guards the state: the connector is safe to share
between threads and tasks of one process.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tools.edr.base import (
    ActionReceipt,
    ActionStatus,
    ConnectorEndpoint,
    EdrAction,
    EdrConnector,
    EdrEndpointUnknown,
    EdrUnavailable,
    EndpointState,
)

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class AuditEntry(BaseModel):
    """One change of a lab endpoint."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    hostname: str
    event: str
    """``enrol``, ``update``, ``connect``, ``disconnect``, an action (``isolate``,
    ``unisolate``, ``scan``) when requested, ``<action>.completed`` when carried out later."""
    from_state: EndpointState
    to_state: EndpointState
    comment: str = ""
    action_id: str | None = None
    changed: bool = True


class LabAction(BaseModel):
    """One action the lab was asked for."""

    id: str
    action: EdrAction
    hostname: str
    status: ActionStatus
    comment: str
    requested_at: datetime
    finished_at: datetime | None = None
    changed: bool = True


class _Host(BaseModel):
    hostname: str
    fqdn: str | None = None
    ips: list[str] = Field(default_factory=list)
    os: str | None = None
    connected: bool = True
    isolated: bool = False
    pending: str | None = None
    """The id of the action waiting for the endpoint to connect."""
    enrolled_at: datetime
    last_seen: datetime


class _Saved(BaseModel):
    hosts: dict[str, _Host] = Field(default_factory=dict)
    actions: dict[str, LabAction] = Field(default_factory=dict)
    audit: list[AuditEntry] = Field(default_factory=list)


def _names(hostname: str) -> tuple[str, str | None]:
    lowered = hostname.strip().lower().rstrip(".")
    if not lowered:
        raise ValueError("hostname is empty")
    short = lowered.split(".")[0]
    return short, lowered if "." in lowered else None


class LabConnector(EdrConnector):
    """The lab EDR; see the module docstring."""

    product = "lab"

    def __init__(
        self, name: str = "lab", *, clock: Clock = _utcnow, state_path: Path | None = None
    ) -> None:
        super().__init__(name)
        self._clock = clock
        self._lock = threading.RLock()
        self._path = state_path
        self._saved = _Saved()
        if state_path is not None and state_path.exists():
            try:
                self._saved = _Saved.model_validate_json(state_path.read_bytes())
            except ValueError as err:
                raise EdrUnavailable(name, "lab state file is unreadable") from err

    # -- the platform's side -----------------------------------------------------------------

    def enrol(
        self, hostname: str, *, ips: Iterable[str] = (), os: str | None = None
    ) -> ConnectorEndpoint:
        """Manage ``hostname`` (a short name or an FQDN); enrolling again adds its new addresses
        and a newly known OS. Raises ValueError for an empty name."""
        short, fqdn = _names(hostname)
        with self._lock:
            now = self._clock()
            host = self._saved.hosts.get(short)
            if host is None:
                host = _Host(
                    hostname=short,
                    fqdn=fqdn,
                    ips=list(dict.fromkeys(ips)),
                    os=os,
                    enrolled_at=now,
                    last_seen=now,
                )
                self._saved.hosts[short] = host
                self._audit(host, "enrol", EndpointState.UNKNOWN, comment="enrolled")
            else:
                ips_now = list(dict.fromkeys([*host.ips, *ips]))
                changes = {
                    "ips": ips_now,
                    "fqdn": fqdn or host.fqdn,
                    "os": os or host.os,
                }
                if any(getattr(host, k) != v for k, v in changes.items()):
                    before = self._current(host)
                    for key, value in changes.items():
                        setattr(host, key, value)
                    self._audit(host, "update", before, comment="enrolment updated")
            self._save()
            return self._endpoint(host)

    def set_connected(self, hostname: str, connected: bool, *, comment: str = "") -> None:
        """Connect or disconnect an endpoint; connecting carries out its waiting action."""
        with self._lock:
            host = self._host(hostname)
            if host.connected == connected:
                return
            before = self._current(host)
            host.connected = connected
            if connected:
                host.last_seen = self._clock()
            event = "connect" if connected else "disconnect"
            self._audit(host, event, before, comment=comment)
            if connected and host.pending is not None:
                action = self._saved.actions[host.pending]
                before = self._current(host)
                host.pending = None
                self._carry_out(host, action)
                self._audit(
                    host,
                    f"{action.action.value}.completed",
                    before,
                    comment=action.comment,
                    action=action,
                )
            self._save()

    def audit(self, hostname: str | None = None) -> list[AuditEntry]:
        """The audit trail, oldest first (of one endpoint when ``hostname`` is given)."""
        with self._lock:
            if hostname is None:
                return list(self._saved.audit)
            short, _ = _names(hostname)
            return [entry for entry in self._saved.audit if entry.hostname == short]

    def scans(self, hostname: str) -> list[LabAction]:
        """The scans of an endpoint, oldest first."""
        short, _ = _names(hostname)
        with self._lock:
            return [
                a.model_copy()
                for a in self._saved.actions.values()
                if a.hostname == short and a.action is EdrAction.SCAN
            ]

    def state_of(self, hostname: str) -> EndpointState:
        """An enrolled endpoint's state (EdrEndpointUnknown otherwise)."""
        with self._lock:
            return self._current(self._host(hostname))

    # -- the connector interface -------------------------------------------------------------

    async def inventory(self) -> list[ConnectorEndpoint]:
        with self._lock:
            return [self._endpoint(host) for host in self._saved.hosts.values()]

    async def act(
        self, action: EdrAction, endpoint: ConnectorEndpoint, *, comment: str
    ) -> ActionReceipt:
        with self._lock:
            host = self._host(endpoint.native_id)
            if host.pending is not None:
                waiting = self._saved.actions[host.pending]
                if waiting.action is action:
                    return self._receipt(waiting)
                raise EdrUnavailable(
                    self.name,
                    f"{waiting.action.value} {waiting.id} is waiting for {host.hostname} "
                    "to connect",
                )
            record = LabAction(
                id=f"lab-{uuid.uuid4()}",
                action=action,
                hostname=host.hostname,
                status=ActionStatus.PENDING,
                comment=comment,
                requested_at=self._clock(),
            )
            self._saved.actions[record.id] = record
            before = self._current(host)
            goal_holds = (action is EdrAction.ISOLATE and host.isolated) or (
                action is EdrAction.UNISOLATE and not host.isolated
            )
            if goal_holds:
                record.changed = False
                self._finish(record, ActionStatus.SUCCEEDED)
            elif host.connected:
                self._carry_out(host, record)
            else:
                host.pending = record.id
            self._audit(host, action.value, before, comment=comment, action=record)
            self._save()
            return self._receipt(record)

    async def status(self, receipt: ActionReceipt) -> ActionReceipt:
        with self._lock:
            record = self._saved.actions.get(receipt.native_action_id or "")
            if record is None:
                raise EdrUnavailable(self.name, "the lab has no such action")
            return self._receipt(record)

    # -- internals (called under the lock) ---------------------------------------------------

    def _host(self, hostname: str) -> _Host:
        short = hostname.strip().lower().rstrip(".").split(".")[0]
        host = self._saved.hosts.get(short)
        if host is None:
            raise EdrEndpointUnknown(self.name, hostname)
        return host

    def _carry_out(self, host: _Host, record: LabAction) -> None:
        if record.action is EdrAction.ISOLATE:
            host.isolated = True
        elif record.action is EdrAction.UNISOLATE:
            host.isolated = False
        self._finish(record, ActionStatus.SUCCEEDED)

    def _finish(self, record: LabAction, status: ActionStatus) -> None:
        record.status = status
        record.finished_at = self._clock()

    def _audit(
        self,
        host: _Host,
        event: str,
        before: EndpointState,
        *,
        comment: str = "",
        action: LabAction | None = None,
    ) -> None:
        self._saved.audit.append(
            AuditEntry(
                at=self._clock(),
                hostname=host.hostname,
                event=event,
                from_state=before,
                to_state=self._current(host),
                comment=comment,
                action_id=action.id if action else None,
                changed=action.changed if action else True,
            )
        )

    def _current(self, host: _Host) -> EndpointState:
        if host.pending is not None:
            waiting = self._saved.actions[host.pending].action
            if waiting is EdrAction.ISOLATE:
                return EndpointState.ISOLATING
            if waiting is EdrAction.UNISOLATE:
                return EndpointState.RELEASING
        if host.isolated:
            return EndpointState.ISOLATED
        return EndpointState.ONLINE if host.connected else EndpointState.OFFLINE

    def _endpoint(self, host: _Host) -> ConnectorEndpoint:
        return ConnectorEndpoint(
            connector=self.name,
            native_id=host.hostname,
            hostname=host.hostname,
            fqdn=host.fqdn,
            ips=list(host.ips),
            os=host.os,
            state=self._current(host),
            last_seen=host.last_seen,
            details={"lab": True, "connected": host.connected, "enrolled_at": host.enrolled_at},
        )

    def _receipt(self, record: LabAction) -> ActionReceipt:
        detail: dict[str, Any] = {"changed": record.changed, "comment": record.comment}
        if record.finished_at is not None:
            detail["finished_at"] = record.finished_at.isoformat()
        if record.action is EdrAction.SCAN and record.status is ActionStatus.SUCCEEDED:
            detail["findings"] = []
        return ActionReceipt(
            connector=self.name,
            action=record.action,
            native_id=record.hostname,
            status=record.status,
            native_action_id=record.id,
            detail=detail,
        )

    def _save(self) -> None:
        if self._path is None:
            return
        partial = self._path.with_name(self._path.name + ".partial")
        partial.write_text(json.dumps(self._saved.model_dump(mode="json")), encoding="utf-8")
        os.replace(partial, self._path)
