"""The EDR connector interface: what every endpoint product offers the platform.

A connector speaks one product's published API (or, for labs, none: :class:`tools.edr.lab`)
and offers three things: its inventory of endpoints, the response actions the platform takes
(isolate, release, scan), and the status of an action it started. The platform decides
*whether* an action runs (guardrails, approvals, the system mode, the at-most-once ledger);
a connector only carries it out and reports what the product said.

Errors are typed and carry no secret: a refused credential is :class:`EdrAuthError`, an
exhausted quota :class:`EdrRateLimited` (with the product's ``Retry-After``), an endpoint the
product does not know :class:`EdrEndpointUnknown`, anything else :class:`EdrUnavailable`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from enum import StrEnum
from types import TracebackType
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field

from core.errors import NotFound, RateLimited, ServiceUnavailable


class EndpointState(StrEnum):
    """Where an endpoint stands, as far as its EDR knows."""

    ONLINE = "online"
    OFFLINE = "offline"
    ISOLATING = "isolating"
    ISOLATED = "isolated"
    RELEASING = "releasing"
    UNKNOWN = "unknown"


class EdrAction(StrEnum):
    """The response actions a connector carries out."""

    ISOLATE = "isolate"
    UNISOLATE = "unisolate"
    SCAN = "scan"


class ActionStatus(StrEnum):
    """An action's status at the product (a product's own words map onto these)."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in {ActionStatus.SUCCEEDED, ActionStatus.FAILED}


class ConnectorEndpoint(BaseModel):
    """One endpoint as a connector's inventory lists it."""

    model_config = ConfigDict(frozen=True)

    connector: str
    """The configured connector's name (``lab``, ``wazuh-prod``)."""
    native_id: str = Field(min_length=1, max_length=128)
    """The product's own id (a Wazuh agent id, a Defender machine id)."""
    hostname: str = Field(min_length=1, max_length=255)
    """Lower-cased host name (the short name; the FQDN, when known, in ``fqdn``)."""
    fqdn: str | None = None
    ips: list[str] = Field(default_factory=list)
    os: str | None = None
    state: EndpointState = EndpointState.UNKNOWN
    last_seen: datetime | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    """A few of the product's own fields (agent version, health), never credentials."""


class ActionReceipt(BaseModel):
    """What the product answered to an action, or to a status query on it."""

    model_config = ConfigDict(frozen=True)

    connector: str
    action: EdrAction
    native_id: str
    """The endpoint's id at the product."""
    status: ActionStatus
    native_action_id: str | None = None
    """The product's id of the action, when it gives one (a Defender machine action id)."""
    detail: dict[str, Any] = Field(default_factory=dict)
    """What the product said (its status words, message), never credentials."""


class EdrAuthError(ServiceUnavailable):
    """The product refused the configured credential (HTTP 401/403)."""

    message = "EDR product refused the configured credential"

    def __init__(self, connector: str, status: int) -> None:
        self.connector = connector
        super().__init__({"connector": connector, "status": status})


class EdrRateLimited(RateLimited):
    """The product's quota is exhausted (HTTP 429)."""

    message = "EDR product rate limit exceeded"

    def __init__(self, connector: str, retry_after: int) -> None:
        self.connector = connector
        super().__init__({"connector": connector}, retry_after=retry_after)


class EdrUnavailable(ServiceUnavailable):
    """The product could not answer or refused the request: timeout, connection failure, 5xx,
    an unreadable body, or a 4xx that says why (kept in ``reason``)."""

    message = "EDR product unavailable"

    def __init__(self, connector: str, reason: str) -> None:
        self.connector = connector
        self.reason = reason
        super().__init__({"connector": connector, "reason": reason})


class EdrEndpointUnknown(NotFound):
    """The product does not know the endpoint."""

    def __init__(self, connector: str, native_id: str) -> None:
        super().__init__({"connector": connector, "endpoint": native_id})


class EdrConnector(ABC):
    """One configured EDR product. Use as an async context manager (or call :meth:`aclose`)."""

    product: str
    """The product (``lab``, ``wazuh``, ``defender``)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:  # noqa: B027 - most connectors hold nothing open
        """Close what the connector holds open (an HTTP session); nothing by default."""

    @abstractmethod
    async def inventory(self) -> list[ConnectorEndpoint]:
        """Every endpoint the product manages (paged through, bounded by the connector)."""

    @abstractmethod
    async def act(
        self, action: EdrAction, endpoint: ConnectorEndpoint, *, comment: str
    ) -> ActionReceipt:
        """Start ``action`` on ``endpoint``; the product's answer. Called at most once per
        platform action: the caller keeps the ledger, the connector never retries a request
        the product may have carried out (only one refused before it acted: 429, 503)."""

    @abstractmethod
    async def status(self, receipt: ActionReceipt) -> ActionReceipt:
        """The action's status now (the receipt itself when the product reports no progress)."""
