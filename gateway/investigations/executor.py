"""The platform's action executor: the response-action ledger, at most once per action key.

An action is carried out by writing its key to the ledger first (``started``), in a transaction
of its own; only the writer that inserted the key goes on to act. The action itself is handed to
the integrations that enforce it (EDR, firewall, identity provider connectors subscribe to the
``response.actions`` topic of the event bus, with who approved it or what corroborated its
target) and the row becomes ``executed`` with what was done.
A key found ``executed`` or ``failed`` replays that outcome; one found ``started`` means an
earlier attempt died between the two writes, and it is reported ``unknown`` rather than risked
twice.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from core.db import Database
from core.db.base import utcnow
from core.events import EventBus
from gateway.investigations.models import ResponseActionRecord
from orchestrator.actions import ActionOrder, ExecutionResult

EXECUTOR = "platform"
TOPIC = "response.actions"


class LedgerExecutor:
    """Executes through the ledger and the bus (see the module docstring)."""

    def __init__(self, *, database: Database, bus: EventBus) -> None:
        self._db = database
        self._bus = bus

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
        return ExecutionResult("executed", EXECUTOR, detail)

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
