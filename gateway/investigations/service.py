"""Orchestrator dispatch: one agent method called through the HandoffClient, and recorded."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from types import TracebackType
from typing import Any, Final, Self

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.types import Command
from sqlalchemy import bindparam, case, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from agents.acp.client import CallOptions, HandoffClient
from agents.acp.protocol import (
    CANCELLED,
    DEADLINE_EXCEEDED,
    HOP_LIMIT_EXCEEDED,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    RpcError,
)
from agents.catalog import Subject
from core.db import LAST, Database
from core.db.base import table_of, utcnow
from core.db.leases import Lease, process_identity
from core.db.lookup import get_or_404
from core.db.pages import fetch_page
from core.db.queue import (
    HEARTBEAT_SECONDS,
    beat,
    claim_free_slots,
    give_back,
    requeue_orphans,
)
from core.db.sequences import next_id
from core.errors import AuroraError, Conflict, NotFound, ServiceUnavailable, ValidationFailed
from core.events import EventBus
from core.loops import Periodic
from core.schemas import PageQuery
from core.validation import field_error
from gateway.alerts.api import get_alert
from gateway.alerts.models import Alert
from gateway.cases.api import get_case, list_observables
from gateway.detections.api import ENTITY_FIELDS
from gateway.detections.models import DetectionRule, RuleHit
from gateway.investigations import approvals
from gateway.investigations.models import Approval, Dispatch, Investigation
from gateway.investigations.schemas import (
    PRIORITY_RANK,
    DispatchRequest,
    HistoryQuery,
    InvestigateRequest,
    InvestigationQuery,
)
from orchestrator.checkpoints import holding, prune
from orchestrator.context import GraphContext

log = logging.getLogger("aurora.investigations")


def as_platform_error(err: RpcError, agent: str, method: str) -> AuroraError:
    """The AURORA error a protocol error from an agent means to the API's caller."""
    if err.code == METHOD_NOT_FOUND:
        return NotFound({"agent": agent, "method": method, "reason": "no such method"})
    if err.code in {INVALID_PARAMS, INVALID_REQUEST}:
        errors = err.data.get("errors") if isinstance(err.data, dict) else None
        if isinstance(errors, list):
            return ValidationFailed(
                [
                    {**e, "loc": ["body", "params", *e.get("loc", [])]}
                    for e in errors
                    if isinstance(e, dict)
                ]
            )
        return field_error(["body", "params"], err.message)
    if err.code == HOP_LIMIT_EXCEEDED:
        return field_error(["body"], "hop limit exceeded", "hop_limit")
    if err.code in {DEADLINE_EXCEEDED, CANCELLED}:
        return ServiceUnavailable({"agent": agent, "reason": "deadline exceeded"})
    return ServiceUnavailable({"agent": agent, "reason": err.message, "rpc_code": err.code})


async def dispatch(
    *, db: AsyncSession, client: HandoffClient, actor: str, body: DispatchRequest
) -> Dispatch:
    """Call the method and record the call; a failure is recorded, then raised as its AURORA
    error (AURORA-4043 for an unknown agent)."""
    started = time.perf_counter()
    options = CallOptions(
        investigation_id=body.investigation_id,
        timeout=body.timeout_seconds,
        idempotency_key=body.idempotency_key,
    )
    record = Dispatch(
        agent=body.agent,
        method=body.method,
        params=body.params,
        investigation_id=body.investigation_id,
        actor=actor,
    )
    failure: AuroraError | None = None
    try:
        result: Any = await client.call(body.agent, body.method, body.params, options)
    except RpcError as err:
        failure = as_platform_error(err, body.agent, body.method)
    except AuroraError as err:
        failure = err
    else:
        record.status, record.result = "ok", result
    record.duration_ms = round((time.perf_counter() - started) * 1000, 3)
    if failure is not None:
        record.status = "error"
        record.error = {"code": failure.code, "message": failure.message, "detail": failure.detail}
    db.add(record)
    await db.commit()
    if failure is not None:
        raise failure
    return record


async def newest_first[M: Dispatch | Investigation](
    db: AsyncSession, model: type[M], query: PageQuery
) -> tuple[list[M], int]:
    """One page of ``model``'s rows, newest first, matching each filter the query gives (its
    fields besides the page's are columns of ``model``, matched by equality)."""
    filters = query.model_dump(exclude={"limit", "offset"}, exclude_none=True)
    where = [getattr(model, column) == value for column, value in filters.items()]
    return await fetch_page(
        db, model, where=where, sort="-created_at", limit=query.limit, offset=query.offset
    )


async def history(*, db: AsyncSession, query: HistoryQuery) -> tuple[list[Dispatch], int]:
    """The dispatches the query's filters match, newest first."""
    return await newest_first(db, Dispatch, query)


TERMINAL = frozenset({"completed", "failed", "cancelled"})
_INVESTIGATIONS = table_of(Investigation)
_ENQUEUE: Final = insert(_INVESTIGATIONS)
_FINISH: Final = (
    update(_INVESTIGATIONS)
    .where(_INVESTIGATIONS.c.id == bindparam("ident"), _INVESTIGATIONS.c.status == "running")
    .values(
        status=bindparam("to_status"),
        receipt=bindparam("to_receipt"),
        error=bindparam("to_error"),
        finished_at=bindparam("to_finished_at"),
    )
)
"""A run's end: its status and receipt, written only while it is still ``running`` (a
cancellation recorded meanwhile stands)."""
QUEUE_ORDER: Final = (
    case(PRIORITY_RANK, value=Investigation.priority),
    Investigation.created_at,
    Investigation.id,
)
"""The queue's order: most urgent first, then oldest."""
SEGMENT_ENDS: Final = ("respond",)
"""Where the graph of model-backed specialists also checkpoints: the response plan made."""
HOST_TYPES = frozenset({"host", "hostname"})
USER_TYPES = frozenset({"user", "account", "username"})
IOC_TYPES = frozenset(
    {
        "ip",
        "domain",
        "url",
        "email",
        "hash",
        "cve",
        "attack_technique",
        "md5",
        "sha1",
        "sha256",
        "sha512",
        "registry_key",
    }
)


DETECTED_TYPES = frozenset({"ip", "domain", "url", "hash", "host", "user"})


async def detected(*, db: AsyncSession, alert: Alert) -> list[dict[str, Any]]:
    """The indicators of ``alert`` that the platform's own telemetry corroborates: the alert was
    raised by one of the platform's Sigma rules over its own log store (a rule-hit row links
    them: an alert posted through the API has none, whatever its ``source`` says), and the
    indicator is the value of an event field that rule's condition tests. A value that merely
    rode along in the matched event (the destination of a process the rule judged by its
    command line) corroborates nothing."""
    rule_ids = list(
        await db.scalars(select(RuleHit.rule_id).where(RuleHit.alert_id == alert.id).distinct())
    )
    if not rule_ids:
        return []
    event = (alert.raw or {}).get("event")
    if not isinstance(event, dict):
        return []
    found: list[dict[str, Any]] = []
    for rule in await db.scalars(select(DetectionRule).where(DetectionRule.id.in_(rule_ids))):
        for name, kind in ENTITY_FIELDS:
            value = event.get(name)
            column = "`" + name.replace(".", "_") + "`"
            if kind in DETECTED_TYPES and value and column in rule.condition:
                found.append(
                    {
                        "type": kind,
                        "value": str(value)[:2048],
                        "kind": "telemetry",
                        "source": f"detection rule {rule.id}"[:256],
                        "detail": f"{rule.title[:200]}: matched on {name} (alert {alert.id})",
                    }
                )
    return found


async def subject_for(*, db: AsyncSession, body: InvestigateRequest) -> dict[str, Any]:
    """What the graph will look at, snapshotted now: the alert's or case's text and indicators
    plus what the caller gave, and the indicators the platform's own detection corroborates
    (:func:`detected`). Unknown alert → AURORA-4042, unknown case → AURORA-4041."""
    texts: list[str] = []
    iocs: list[dict[str, str]] = [i.model_dump() for i in body.iocs]
    hosts: list[str] = list(body.hosts)
    users: list[str] = list(body.users)
    corroborations: list[dict[str, Any]] = []
    title = None
    if body.alert_id is not None:
        alert = await get_alert(db=db, alert_id=body.alert_id)
        corroborations = await detected(db=db, alert=alert)
        title = alert.title
        texts += [alert.title, alert.description or ""]
        iocs += [
            {"type": e["type"], "value": e["value"]}
            for e in alert.entities
            if e.get("type") in IOC_TYPES
        ]
        hosts += [str(e["value"]) for e in alert.entities if e.get("type") in HOST_TYPES]
        users += [str(e["value"]) for e in alert.entities if e.get("type") in USER_TYPES]
    if body.case_id is not None:
        case_ = await get_case(db=db, case_id=body.case_id)
        title = title or case_.title
        texts += [case_.title, case_.description or ""]
        observables, _ = await list_observables(
            db=db, case_id=case_.id, query=PageQuery(limit=500, offset=0)
        )
        iocs += [{"type": o.type, "value": o.value} for o in observables if o.type in IOC_TYPES]
        hosts += [o.value for o in observables if o.type in HOST_TYPES]
        users += [o.value for o in observables if o.type in USER_TYPES]
    if body.text:
        texts.append(body.text)
    return {
        "title": title or (body.text or "")[:200] or "investigation",
        "text": "\n".join(t for t in texts if t),
        "iocs": iocs,
        "command_lines": body.command_lines,
        "hosts": list(dict.fromkeys(hosts))[:50],
        "users": list(dict.fromkeys(users))[:50],
        "alert_id": body.alert_id,
        "case_id": body.case_id,
        "corroborations": corroborations,
    }


async def enqueue(
    *, db: AsyncSession, actor: str, body: InvestigateRequest, run_by: str | None = None
) -> Investigation:
    """Record the request as ``queued``, or with ``run_by`` (a runner that took a slot for it,
    :meth:`InvestigationRunner.submit`) as ``running`` there, as that runner's claim would
    leave it: once this returns, it will run (restarts included)."""
    subject = await subject_for(db=db, body=body)
    now = utcnow()
    row = {
        "id": await next_id(db, "INV"),
        "status": "queued",
        "priority": body.priority,
        "alert_id": body.alert_id,
        "case_id": body.case_id,
        "subject": subject,
        "requested_by": actor,
        "attempts": 0,
        "created_at": now,
    }
    if run_by is not None:
        row |= {
            "status": "running",
            "attempts": 1,
            "started_at": now,
            "owner": run_by,
            "heartbeat_at": now,
        }
    # On the table (core.db.base.table_of), not the ORM's flush; the transaction's last.
    await db.execute(_ENQUEUE, row, execution_options=LAST)
    await db.commit()
    return Investigation(**row)


async def get_investigation(*, db: AsyncSession, investigation_id: str) -> Investigation:
    """The investigation; AURORA-4040 when there is none."""
    return await get_or_404(db, Investigation, investigation_id, name="investigation_id")


async def list_investigations(
    *, db: AsyncSession, query: InvestigationQuery
) -> tuple[list[Investigation], int]:
    """The investigations the query's filters match, newest first."""
    return await newest_first(db, Investigation, query)


class InvestigationRunner:
    """The durable queue: investigations wait in the database as ``queued`` and at most
    ``concurrency()`` run at once, most urgent first, each as one checkpointed LangGraph thread
    (the thread id is the investigation id).

    - A graph that pauses for human approvals leaves its run ``awaiting_approval`` with the
      approvals recorded; when the last is decided (or expires, or the investigation is
      cancelled) it is queued again and resumes with the decisions.
    - Investigations a stopped gateway left ``running`` are queued again when it starts and
      continue from their last checkpoint; actions go through an executor that never runs one
      key twice.
    - Every tick also expires approvals past their deadline (fail closed) and, hourly, deletes
      the checkpoints of investigations finished longer than the retention ago.

    Its three loops (the queue, approval expiry, checkpoint retention) run from :meth:`start`
    to :meth:`stop`, or for as long as it is entered as an async context manager.
    """

    def __init__(
        self,
        *,
        database: Database,
        graph: Any,
        context: GraphContext | None = None,
        bus: EventBus,
        concurrency: Callable[[], int],
        mode: Callable[[], str],
        approval_timeout: Callable[[], float],
        checkpointer: BaseCheckpointSaver[Any],
        retention: timedelta,
        tick_seconds: float = 1.0,
        lease: Lease | None = None,
        owner: str | None = None,
        segment_ends: Sequence[str] = SEGMENT_ENDS,
    ) -> None:
        self._db = database
        self._graph = graph
        self._segment_ends = list(segment_ends)
        self._context = context
        self._bus = bus
        self._concurrency = concurrency
        self._mode = mode
        self._approval_timeout = approval_timeout
        self._checkpointer = checkpointer
        self._retention = retention
        self._running: dict[str, asyncio.Task[None]] = {}
        self._cancelled: set[str] = set()
        self._owner = owner or process_identity()
        self._drained = False
        """The last claim found nothing queued, and nothing was queued here since."""
        self._reserved = 0
        """Slots taken by :meth:`submit` for investigations being recorded."""
        self._serving = False
        self._queue = Periodic("investigation-queue", self._fill, tick_seconds, log=log)
        self._loops = (
            self._queue,
            Periodic("investigation-heartbeat", self._heartbeat, HEARTBEAT_SECONDS, log=log),
            Periodic("approval-expiry", self.expire_approvals, tick_seconds, log=log, lease=lease),
            Periodic(
                "checkpoint-retention",
                self.prune_checkpoints,
                RETENTION_SWEEP_SECONDS,
                log=log,
                lease=lease,
            ),
        )

    async def start(self) -> None:
        """Queue again what a gone replica (this gateway before a restart, or another) left
        running, then start the loops."""
        if requeued := await requeue_orphans(self._db, Investigation, own=self._owner):
            log.info("queued again %d investigation(s) a gone gateway left", len(requeued))
        for loop in self._loops:
            loop.start()
        self._serving = True

    async def stop(self) -> None:
        """Stop the loops and the investigations running, and give them back to the queue
        (another replica, or this one restarted, resumes them from their checkpoints)."""
        self._serving = False
        for loop in self._loops:
            await loop.stop()
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await give_back(self._db, Investigation, self._owner)

    async def _heartbeat(self) -> None:
        """Say which investigations this replica still runs, and take over those of a replica
        that is gone."""
        await beat(self._db, Investigation, list(self._running), self._owner)
        if await requeue_orphans(
            self._db,
            Investigation,
            own=self._owner,
            running=self._running,
            own_grace_seconds=HEARTBEAT_SECONDS,
        ):
            self.wake()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def submit(
        self, record: Callable[[str | None], Awaitable[Investigation]]
    ) -> Investigation:
        """Record an investigation with ``record(run_by)`` and see it run: at once, on a slot
        of this runner, when one is free and nothing waits in the queue (its last look found
        it empty, and nothing was queued here since); it is then recorded as this runner's
        claim would leave it (``run_by`` is this replica), so it needs no claim and does not
        wait for the queue's next look. Otherwise it is recorded queued (``run_by`` None) and
        the queue is woken. Work another replica queued is found by the next look, as ever."""
        run_by = self._owner if self._serving and self._drained and self._free() > 0 else None
        if run_by is not None:
            self._reserved += 1
        try:
            investigation = await record(run_by)
        finally:
            if run_by is not None:
                self._reserved -= 1
        if run_by is None:
            self.wake()
        elif self._serving:
            self._start(investigation)
        # else: stopped while it was recorded; running as this replica's, it is queued again
        # when this replica starts, or by another once its heartbeat is stale.
        return investigation

    def _free(self) -> int:
        return max(1, self._concurrency()) - len(self._running) - self._reserved

    def wake(self) -> None:
        """Look at the queue now (something was queued or can go on)."""
        self._drained = False
        self._queue.wake()

    async def _fill(self) -> None:
        """Start queued investigations, most urgent first, while fewer than the concurrency
        run: the free slots are claimed in one statement, and a claim that fills fewer than
        it asked for says the queue is empty (see :meth:`_finished`)."""
        peek, self._drained = self._drained, False
        self._drained = await claim_free_slots(
            self._db,
            Investigation,
            order_by=QUEUE_ORDER,
            free=self._free,
            start=self._start,
            owner=self._owner,
            peek=peek,
        )

    def _start(self, investigation: Investigation) -> None:
        """Run a claimed investigation (the row as the claim left it)."""
        task = asyncio.create_task(self._run(investigation), name=f"inv-{investigation.id}")
        self._running[investigation.id] = task

    def _finished(self) -> None:
        """A slot is free: look at the queue, unless its last look found it empty and nothing
        was queued since (work another replica queues is found by the next tick, as before)."""
        if not self._drained:
            self._queue.wake()

    async def expire_approvals(self) -> None:
        """Expire the approvals past their deadline (fail closed) and say so on the stream;
        the investigations that can go on are looked at at once."""
        async with self._db.session() as db:
            expired, resumable = await approvals.expire_due(db)
        for approval in expired:
            self._bus.publish("approvals.decided", approvals.as_event(approval))
        if resumable:
            self.wake()

    async def prune_checkpoints(self) -> int:
        """Delete the graph checkpoints of investigations finished more than the retention
        ago; how many investigations' checkpoints were deleted."""
        cutoff = utcnow() - self._retention
        async with self._db.session() as db:
            ids = list(
                await db.scalars(
                    select(Investigation.id)
                    .where(
                        Investigation.status.in_(TERMINAL),
                        Investigation.finished_at <= cutoff,
                        Investigation.checkpoints_pruned_at.is_(None),
                    )
                    .limit(1000)
                )
            )
            if not ids:
                return 0
            await prune(self._checkpointer, ids)
            await db.execute(
                update(Investigation)
                .where(Investigation.id.in_(ids))
                .values(checkpoints_pruned_at=utcnow())
            )
            await db.commit()
        return len(ids)

    async def _input(self, investigation: Investigation, config: dict[str, Any]) -> Any:
        """What to run the thread with: a fresh start, the humans' decisions, or nothing (go
        on from the last checkpoint); ``_WAIT`` when approvals are still pending."""
        fresh = {
            "investigation_id": investigation.id,
            "subject": dict(investigation.subject),
            "mode": self._mode(),
        }
        if investigation.attempts <= 1:
            return fresh  # its first run: there is no checkpoint to look for
        snapshot = await self._graph.aget_state(config)
        if not snapshot.values:
            return fresh
        if not isinstance(snapshot.values.get("subject"), Subject):
            # Checkpointed by a version whose state held plain dicts: start it over (its
            # specialists' calls replay by idempotency key, its actions are at most once).
            log.warning(
                "investigation %s: checkpoint from an older version; starting over",
                investigation.id,
            )
            if self._checkpointer is not None:
                await prune(self._checkpointer, [investigation.id])
            return fresh
        if snapshot.interrupts:
            async with self._db.session() as db:
                decided = await approvals.decisions(db, investigation.id)
            return _WAIT if decided is None else Command(resume=decided)
        return None

    async def _run(self, investigation: Investigation) -> None:
        investigation_id = investigation.id
        config = {"configurable": {"thread_id": investigation_id}}
        try:
            payload = await self._input(investigation, config)
            if payload is _WAIT:
                await self._pause(investigation_id, [])
                return
            state = await self._segments(payload, config)
            if pending := state.get("__interrupt__"):
                asked = [r for item in pending for r in item.value.get("approvals", [])]
                await self._pause(investigation_id, asked)
                return
            started = investigation.started_at or utcnow()
            receipt = {
                "investigation_id": investigation_id,
                **state["report"],
                "timeline": state.get("timeline", []),
                "latency_ms": round((utcnow() - started).total_seconds() * 1000, 3),
            }
            status, error = _outcome(receipt)
        except asyncio.CancelledError:
            if investigation_id in self._cancelled:
                self._cancelled.discard(investigation_id)
                return  # cancel() has recorded it
            raise  # the gateway is stopping: the row stays running and is queued at restart
        except Exception as err:
            log.exception("investigation %s failed", investigation_id)
            receipt, status, error = None, "failed", type(err).__name__
        finally:
            self._running.pop(investigation_id, None)
            self._finished()
        async with self._db.begin() as connection:
            await connection.execute(
                _FINISH,
                {
                    "ident": investigation_id,
                    "to_status": status,
                    "to_receipt": receipt,
                    "to_error": error,
                    "to_finished_at": utcnow(),
                },
                execution_options=LAST,
            )
        self._bus.publish(
            "investigations.receipt",
            {
                "investigation_id": investigation_id,
                "alert_id": investigation.alert_id,
                "case_id": investigation.case_id,
                "status": status,
                "receipt": receipt,
            },
        )

    async def _segments(self, payload: Any, config: dict[str, Any]) -> dict[str, Any]:
        """Run the thread to its end or to a human's decision, one segment at a time.

        A checkpoint is written where a segment ends: at an approval, on an error, and, with
        ``segment_ends`` (:data:`SEGMENT_ENDS` when the specialists use a model), once the
        response plan is made, every specialist's finding in it; never after every step (a
        step's checkpoint costs more than the step: per-step checkpoints made orchestration
        ~30 % slower than calling the specialists directly), nor at the end (see
        :meth:`_segment`). A gateway that dies mid-segment resumes from the segment's start:
        the specialists' calls carry idempotency keys, so their finished work replays, and
        actions go through the at-most-once ledger. The
        plan's checkpoint saves a restart from asking model-backed specialists again (seconds
        of model time each); the built-in specialists answer in milliseconds, less than the
        extra checkpoint and second graph run cost every investigation (about a tenth of the
        gateway's CPU for one), so their graph runs in one segment.
        """
        run = {
            "context": self._context,
            "durability": "exit",
            "interrupt_after": self._segment_ends,
            # What the receipt reads: the graph maps only these after each step, not all of
            # the state.
            "output_keys": RECEIPT_KEYS,
        }
        state = await self._segment(payload, config, run)
        for _ in range(MAX_SEGMENTS):
            if state.get("__interrupt__") or state.get("report"):
                return state
            state = await self._segment(None, config, run)
        raise RuntimeError("the investigation graph did not finish")

    async def _segment(
        self, payload: Any, config: dict[str, Any], run: dict[str, Any]
    ) -> dict[str, Any]:
        """One segment of the thread. Its checkpoint is written where it stopped (an approval,
        a segment's end, an error, the gateway stopping), so that the run resumes from there;
        not where it finished the investigation: the receipt, written next, is the record, and
        nothing resumes a finished run (a gateway that dies before the receipt is written runs it
        again from its last checkpoint, its specialists' calls replaying by idempotency key).
        Left out, the time from the report to the receipt's delivery went from 16-20 to 12-15
        ms (p50 at 4 in flight), and the checkpoints no longer grow with every investigation."""
        with holding() as held:
            try:
                state: dict[str, Any] = await self._graph.ainvoke(payload, config, **run)
            except BaseException:
                await held.write()
                raise
        if state.get("report") and not state.get("__interrupt__"):
            held.drop()
        else:
            await held.write()
        return state

    async def _pause(self, investigation_id: str, asked: list[dict[str, Any]]) -> None:
        timeout = timedelta(seconds=self._approval_timeout())
        async with self._db.session() as db:
            rows = await approvals.request(db, investigation_id, asked, timeout)
            await db.execute(
                update(Investigation)
                .where(Investigation.id == investigation_id, Investigation.status == "running")
                .values(status="awaiting_approval")
            )
            # Decided while it ran (a restart re-asked what was already answered): go on.
            resumable = await approvals.requeue_if_decided(db, investigation_id)
            await db.commit()
        for row in rows:
            if row.status == "pending":
                self._bus.publish("approvals.requested", approvals.as_event(row))
        if resumable:
            self.wake()

    async def cancel(self, investigation_id: str, actor: str) -> None:
        """Stop an investigation that has not finished: AURORA-4040 unknown, AURORA-4090
        already finished. Its pending approvals are cancelled; nothing more is executed."""
        async with self._db.session() as db:
            found = await get_investigation(db=db, investigation_id=investigation_id)
            if found.status in TERMINAL:
                raise Conflict({"investigation_id": investigation_id, "status": found.status})
            if found.status == "running":
                self._cancelled.add(investigation_id)
            moved = await db.execute(
                update(Investigation)
                .where(Investigation.id == investigation_id, Investigation.status.not_in(TERMINAL))
                .values(status="cancelled", error=f"cancelled by {actor}", finished_at=utcnow())
            )
            if not getattr(moved, "rowcount", 0):
                self._cancelled.discard(investigation_id)
                await db.rollback()
                raise Conflict({"investigation_id": investigation_id, "status": "finished"})
            withdrawn = await approvals.cancel_pending(db, investigation_id, actor)
            await db.commit()
            for approval in withdrawn:
                await db.refresh(approval)
        task = self._running.get(investigation_id)
        if task is not None:
            task.cancel()
        else:
            self._cancelled.discard(investigation_id)
        for approval in withdrawn:
            self._bus.publish("approvals.decided", approvals.as_event(approval))
        self._bus.publish(
            "investigations.receipt",
            {"investigation_id": investigation_id, "status": "cancelled", "receipt": None},
        )

    def on_decided(self, approval: Approval, resumable: bool) -> None:
        """Say that ``approval`` was decided; go on with its investigation when it can."""
        self._bus.publish("approvals.decided", approvals.as_event(approval))
        if resumable:
            self.wake()


def _outcome(receipt: dict[str, Any]) -> tuple[str, str | None]:
    """The investigation's status and error for a finished graph: ``failed`` when no specialist
    answered (the receipt, kept, says ``inconclusive`` and why each failed), else
    ``completed`` (``degraded`` in the receipt when some failed)."""
    if receipt.get("verdict") != "inconclusive":
        return "completed", None
    why = "; ".join(f"{f.get('agent')}: {f.get('reason')}" for f in receipt.get("failures", []))
    return "failed", f"every specialist dispatched failed ({why})"[:2000]


_WAIT: Final = object()
MAX_SEGMENTS: Final = 20
RECEIPT_KEYS: Final = ("report", "timeline")
"""The state a finished run's receipt is made of."""
RETENTION_SWEEP_SECONDS = 3600.0
