"""The platform's action executor: the response-action ledger, at most once per action key.

An action is carried out by writing its key to the ledger first (``started``), in a transaction
of its own; only the writer that inserted the key goes on to act. An action the platform has a
handler for (the EDR actions: the endpoint's connector) is carried out by that handler, and its
row becomes ``executed`` with what the product answered, or ``failed`` with the error; any other
action is handed to the integrations that enforce it (firewall and identity provider connectors
subscribe to the ``response.actions`` topic of the event bus, with who approved it or what
corroborated its target) and the row becomes ``executed`` with what was done.
A key found ``executed`` or ``failed`` replays that outcome; one found ``started`` means an
earlier attempt died between the two writes, and it is reported ``unknown`` rather than risked
twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from core.db import Database
from core.db.base import utcnow
from core.errors import AuroraError
from core.events import EventBus
from core.metrics import Metrics
from gateway.investigations.models import ResponseActionRecord
from orchestrator.actions import ActionOrder, ExecutionResult

EXECUTOR = "platform"
TOPIC = "response.actions"

type Handler = Callable[[ActionOrder], Awaitable[dict[str, Any]]]
"""Carries out one action and says what was done (raises a platform error when it fails)."""


class LedgerExecutor:
    """Executes through the ledger, and the handlers or the bus (see the module docstring)."""

    def __init__(
        self,
        *,
        database: Database,
        bus: EventBus,
        handlers: Mapping[str, Handler] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._db = database
        self._bus = bus
        self._handlers = dict(handlers or {})
        self._metrics = metrics

    async def execute(self, order: ActionOrder) -> ExecutionResult:
        try:
            async with self._db.session() as db:
                db.add(
                    ResponseActionRecord(
                        key=order.key,
                        investigation_id=order.investigation_id,
                        action=order.action,
                        target=order.target,
                        reason=order.reason[:2000],
                        approved_by=order.approved_by,
                        status="started",
                        executor=EXECUTOR,
                        detail={},
                    )
                )
                await db.commit()
        except IntegrityError:
            return await self._earlier(order.key)
        handler = self._handlers.get(order.action)
        if handler is not None:
            return await self._handle(handler, order)
        detail: dict[str, Any] = {
            "dispatched_to": TOPIC,
            "corroborated_by": list(order.corroborated_by),
        }
        self._bus.publish(
            TOPIC,
            {
                "key": order.key,
                "investigation_id": order.investigation_id,
                "action": order.action,
                "target": order.target,
                "approved_by": order.approved_by,
                "corroborated_by": list(order.corroborated_by),
            },
        )
        async with self._db.session() as db:
            await db.execute(
                update(ResponseActionRecord)
                .where(ResponseActionRecord.key == order.key)
                .values(status="executed", detail=detail, finished_at=utcnow())
            )
            await db.commit()
        self._count(order, "executed")
        return ExecutionResult("executed", EXECUTOR, detail)

    async def _handle(self, handler: Handler, order: ActionOrder) -> ExecutionResult:
        status: str
        try:
            detail = await handler(order)
            status = "executed"
        except AuroraError as err:
            status = "failed"
            detail = {"error": {"code": err.code, "message": err.message, "detail": err.detail}}
        detail["corroborated_by"] = list(order.corroborated_by)
        async with self._db.session() as db:
            await db.execute(
                update(ResponseActionRecord)
                .where(ResponseActionRecord.key == order.key)
                .values(status=status, detail=detail, finished_at=utcnow())
            )
            await db.commit()
        self._count(order, status)
        return ExecutionResult("executed" if status == "executed" else "failed", EXECUTOR, detail)

    def _count(self, order: ActionOrder, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.response_actions.labels(
                source="investigation", action=order.action, outcome=outcome
            ).inc()

    async def _earlier(self, key: str) -> ExecutionResult:
        async with self._db.session() as db:
            record = await db.get(ResponseActionRecord, key)
        if record is None:  # pragma: no cover - the insert conflicted on this very key
            raise RuntimeError(f"ledger row {key} vanished")
        if record.status == "started":
            return ExecutionResult(
                "unknown",
                record.executor,
                {"reason": "an earlier attempt started and did not finish; not repeated"},
                replayed=True,
            )
        detail = dict(record.detail)
        if record.status == "executed":
            return ExecutionResult("executed", record.executor, detail, replayed=True)
        return ExecutionResult("failed", record.executor, detail, replayed=True)
