"""The playbook engine: durable executions, one step at a time, every side effect at most once.

An execution waits in the database as ``queued`` and runs as a task of the gateway that claims
it. It walks its pinned playbook version's steps in order; each step (each item of a loop) is a
row of the step log, written when it starts and when it ends, with what went in and came out.
That log is the execution's checkpoint: an execution a stopped gateway left ``running`` is
queued again at start and replays its finished steps from the log (their outputs, not their
effects), then goes on.

What a step may do depends on its effect (:class:`gateway.soar.steps.Effect`) and the mode the
execution was queued under:

==========  ==================  ===================  =======================================
effect      ``dry_run``         ``monitor``          ``active``
==========  ==================  ===================  =======================================
read        runs                runs                 runs
record      ``recorded``        runs                 runs
response    ``recorded``        ``proposed``         the guardrail decides: runs, waits for
                                                     a human, or ``denied`` (AURORA-4031)
approval    ``recorded``        ``proposed``         waits for a human
==========  ==================  ===================  =======================================

A record or response step runs through the response-action ledger under the step's key
(``<execution>/<step>#<item>``): the key is written ``started`` before the effect and
``executed`` with its output after, so a replay returns the output and never repeats the
effect. A key found ``started`` (the gateway died during the effect) is reported ``unknown``
and not repeated; a key found ``failed`` (the product refused before acting: a rate limit) may
be tried again. Response steps are decided by the platform's guardrail policy exactly as an
investigation's actions are: a disruptive action on a target that only attacker-writable data
names waits for a human; the platform's own detections (the alert the execution is about) and
the threat-intel specialist's findings in earlier steps corroborate targets.

A step waiting for a human leaves the execution ``awaiting_approval``; the approval is decided
over ``/ws/approvals`` (its id is the step's key) and expires, failing closed, as an
investigation's does. Once no approval of the execution is pending it is queued again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType
from typing import Any, Final, Self

from pydantic import BaseModel
from sqlalchemy import and_, exists, select, update
from sqlalchemy.exc import IntegrityError

from agents.acp.provenance import Provenance, describe, platform_corroborations, vouched
from core.db import Database
from core.db.base import table_of, utcnow
from core.db.leases import process_identity
from core.db.queue import (
    HEARTBEAT_SECONDS,
    beat,
    claim_free_slots,
    give_back,
    requeue_orphans,
)
from core.db.sequences import next_id
from core.errors import AuroraError, Conflict, NotFound, RateLimited, ServiceUnavailable
from core.events import Event, EventBus, Gap, Subscription
from core.guardrails import ActionRequest, GuardrailPolicy, Outcome, decide
from core.loops import Periodic
from core.metrics import Metrics
from core.runtime import SystemMode
from gateway.alerts.api import get_alert
from gateway.investigations import approvals
from gateway.investigations.api import detected
from gateway.investigations.models import Approval, ResponseActionRecord
from gateway.soar.definition import (
    PlaybookDefinition,
    StepDef,
    check_inputs,
    evaluate,
    is_true,
    parse_playbook,
    render,
)
from gateway.soar.models import ExecutionStep, Playbook, PlaybookExecution, PlaybookVersion
from gateway.soar.steps import STEP_KINDS, Effect, StepEnv, StepKind

log = logging.getLogger("aurora.soar")

TERMINAL: Final = frozenset({"completed", "failed", "cancelled"})
DONE: Final = frozenset(
    {"succeeded", "failed", "skipped", "recorded", "proposed", "denied", "expired", "unknown"}
)
"""Step statuses that are final: a replay takes them from the log."""
FAILING: Final = frozenset({"failed", "unknown"})
"""Step statuses that stop the execution unless the step says ``on_error: continue``."""
_EXECUTIONS = table_of(PlaybookExecution)
_APPROVALS = table_of(Approval)
_DECIDED: Final = and_(
    _EXECUTIONS.c.status == "awaiting_approval",
    ~exists().where(
        and_(
            _APPROVALS.c.investigation_id == _EXECUTIONS.c.id,
            _APPROVALS.c.status == "pending",
        )
    ),
)
"""An execution waiting for humans whose approvals are all decided."""
_ANY_DECIDED: Final = select(_EXECUTIONS.c.id).where(_DECIDED).limit(1)
"""Whether any is (read every tick)."""
_REQUEUE_DECIDED: Final = update(_EXECUTIONS).where(_DECIDED).values(status="queued")
"""Those put back in the queue."""
MAX_ITEMS: Final = 100
"""The most items one loop may run over."""
BACKOFF_SECONDS: Final = (0.5, 1.0, 2.0, 4.0, 8.0)
LEDGER_PREFIX: Final = "soar."


@dataclass(slots=True)
class _Result:
    status: str
    output: Any = None
    paused: bool = False


_PAUSED: Final = _Result("awaiting_approval", paused=True)


class AttributedBus(EventBus):
    """The bus as an execution's steps see it: what they publish carries
    ``payload["automation"]`` (the automation chain that led to the execution), so an
    automation rule's loop guard sees its own effects come back."""

    def __init__(self, bus: EventBus, origin: Mapping[str, Any]) -> None:
        super().__init__(default_maxsize=bus.default_maxsize)
        self._bus = bus
        self._origin = dict(origin)

    def subscribe(
        self,
        *patterns: str,
        maxsize: int | None = None,
        where: Callable[[Event], bool] | None = None,
    ) -> Subscription:
        return self._bus.subscribe(*patterns, maxsize=maxsize, where=where)

    def publish(self, topic: str, payload: dict[str, Any] | None = None) -> Event:
        return self._bus.publish(topic, {**(payload or {}), "automation": self._origin})


def origin(execution: PlaybookExecution) -> dict[str, Any] | None:
    """The automation chain that led to ``execution`` (None: a human started it)."""
    rules = execution.trigger.get("rules")
    if execution.trigger.get("kind") != "automation" or not isinstance(rules, list):
        return None
    return {"depth": execution.depth, "rules": list(rules), "execution_id": execution.id}


def step_key(execution_id: str, step_id: str, item: int | None) -> str:
    """The key of one step (one loop item) of an execution: its log row, its ledger key and
    its approval's id."""
    return f"{execution_id}/{step_id}" if item is None else f"{execution_id}/{step_id}#{item}"


def _error(err: BaseException) -> dict[str, Any]:
    """What the step log says of an error: an AURORA code and its safe message, never a
    traceback."""
    if isinstance(err, AuroraError):
        return {"code": err.code, "message": err.message, "detail": err.detail}
    if isinstance(err, TimeoutError):
        return {"code": "AURORA-5030", "message": "step timed out"}
    return {"code": "AURORA-5000", "message": f"step failed ({type(err).__name__})"}


def _backoff(tries: int) -> float:
    return BACKOFF_SECONDS[min(tries - 1, len(BACKOFF_SECONDS) - 1)]


def _transient(err: BaseException) -> bool:
    return isinstance(err, (RateLimited, ServiceUnavailable, TimeoutError))


class SoarEngine:
    """Queues, runs and resumes playbook executions (see the module docstring). Its loop runs
    from :meth:`start` to :meth:`stop`, or while it is entered as an async context manager."""

    def __init__(
        self,
        *,
        database: Database,
        bus: EventBus,
        env: Callable[[PlaybookExecution], StepEnv],
        policy: GuardrailPolicy,
        mode: Callable[[], str],
        approval_timeout: Callable[[], float],
        concurrency: Callable[[], int] = lambda: 4,
        metrics: Metrics | None = None,
        tick_seconds: float = 1.0,
        owner: str | None = None,
    ) -> None:
        self._db = database
        self._bus = bus
        self._env = env
        self._policy = policy
        self._mode = mode
        self._approval_timeout = approval_timeout
        self._concurrency = concurrency
        self._metrics = metrics
        self._running: dict[str, asyncio.Task[None]] = {}
        self._owner = owner or process_identity()
        self._drained = False
        """The last look found nothing queued nor decided, and nothing was queued here since."""
        self._queue = Periodic("playbook-queue", self._fill, tick_seconds, log=log)
        self._heartbeat_loop = Periodic(
            "playbook-heartbeat", self._heartbeat, HEARTBEAT_SECONDS, log=log
        )
        self._listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Queue again what a gone replica (this gateway before a restart, or another) left
        running, then start the loop."""
        if requeued := await requeue_orphans(self._db, PlaybookExecution, own=self._owner):
            log.info("queued again %d playbook execution(s) a gone gateway left", len(requeued))
        self._heartbeat_loop.start()
        subscription = self._bus.subscribe("approvals.decided", maxsize=1024)
        self._listener = asyncio.create_task(self._listen(subscription), name="playbook-approvals")
        self._queue.start()

    async def stop(self) -> None:
        """Stop the loop and the executions running, and give them back to the queue (they go
        on from their step log, here after a restart or on another replica)."""
        await self._queue.stop()
        await self._heartbeat_loop.stop()
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await give_back(self._db, PlaybookExecution, self._owner)

    async def _heartbeat(self) -> None:
        """Say which executions this replica still runs, and take over those of a replica
        that is gone."""
        await beat(self._db, PlaybookExecution, list(self._running), self._owner)
        if await requeue_orphans(
            self._db,
            PlaybookExecution,
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

    def wake(self) -> None:
        """Look at the queue now (something was queued or can go on)."""
        self._drained = False
        self._queue.wake()

    async def _listen(self, subscription: Any) -> None:
        with subscription:
            async for event in subscription:
                # A decided approval of an execution (or a lost event: the sweep in the queue's
                # tick finds it either way).
                if isinstance(event, Gap) or str(
                    event.payload.get("investigation_id", "")
                ).startswith("PBX-"):
                    self.wake()

    # -- queueing -------------------------------------------------------------------------

    async def enqueue(
        self,
        *,
        playbook_id: str,
        inputs: Mapping[str, Any],
        actor: str,
        trigger: Mapping[str, Any],
        depth: int = 0,
    ) -> PlaybookExecution:
        """Queue a run of the playbook's newest version under the current mode: AURORA-4040
        for an unknown playbook, AURORA-4090 for a disabled one, AURORA-4221 for inputs its
        definition refuses. Once this returns the execution will run (restarts included)."""
        async with self._db.session() as db:
            playbook = await db.get(Playbook, playbook_id)
            if playbook is None:
                raise NotFound({"playbook_id": playbook_id})
            if not playbook.enabled:
                raise Conflict({"playbook_id": playbook_id, "reason": "the playbook is disabled"})
            definition = parse_playbook(playbook.definition)
            checked = check_inputs(definition, dict(inputs))
            execution = PlaybookExecution(
                id=await next_id(db, "PBX"),
                playbook_id=playbook.id,
                playbook_version=playbook.version,
                status="queued",
                mode=SystemMode(self._mode()).value,
                inputs=checked,
                trigger=dict(trigger),
                depth=depth,
                requested_by=actor,
            )
            db.add(execution)
            await db.commit()
        self._publish(execution)
        self.wake()
        return execution

    async def _requeue_decided(self) -> bool:
        """Executions waiting for humans whose approvals are all decided go back in the queue
        (decided here or on another replica, before or after a restart); whether any did.
        A read looks first, so that a tick with none decided writes nothing."""
        async with self._db.begin() as connection:  # asked every tick: built once
            if (await connection.execute(_ANY_DECIDED)).first() is None:
                return False
        async with self._db.begin() as connection:
            await connection.execute(_REQUEUE_DECIDED)
        return True

    async def _fill(self) -> None:
        """Queue again the executions whose approvals are decided, then claim the free slots
        in one statement, again while each claim fills every slot it asked for (with a read
        first when the last look found the queue empty and nothing was requeued)."""
        peek, self._drained = self._drained, False
        if await self._requeue_decided():
            peek = False
        self._drained = await claim_free_slots(
            self._db,
            PlaybookExecution,
            order_by=(PlaybookExecution.created_at, PlaybookExecution.id),
            free=lambda: max(1, self._concurrency()) - len(self._running),
            start=self._start,
            owner=self._owner,
            peek=peek,
        )

    def _start(self, execution: PlaybookExecution) -> None:
        task = asyncio.create_task(self._run(execution.id), name=f"pbx-{execution.id}")
        self._running[execution.id] = task

    # -- running ----------------------------------------------------------------------------

    async def _run(self, execution_id: str) -> None:
        status, error = "failed", None
        try:
            status, error = await self._walk(execution_id)
        except asyncio.CancelledError:
            raise  # the gateway is stopping: the row stays running and is queued at restart
        except Exception as err:
            log.exception("playbook execution %s failed", execution_id)
            error = f"the execution failed ({type(err).__name__})"
        finally:
            self._running.pop(execution_id, None)
            if not self._drained:  # a slot is free: look, unless the last look found nothing
                self._queue.wake()
        async with self._db.session() as db:
            values: dict[str, Any] = {"status": status, "error": error}
            if status in TERMINAL:
                values["finished_at"] = utcnow()
            await db.execute(
                update(PlaybookExecution)
                .where(PlaybookExecution.id == execution_id, PlaybookExecution.status == "running")
                .values(**values)
            )
            await db.commit()
            execution = await db.get(PlaybookExecution, execution_id)
        if execution is not None:
            self._publish(execution)
            if status in TERMINAL and self._metrics is not None:
                self._metrics.soar_executions.labels(status=status).inc()

    async def _walk(self, execution_id: str) -> tuple[str, str | None]:
        """Run the execution's steps from its log on; its status and error when it stops."""
        async with self._db.session() as db:
            execution = await db.get(PlaybookExecution, execution_id)
            assert execution is not None
            version = await db.get(
                PlaybookVersion, (execution.playbook_id, execution.playbook_version)
            )
            if version is None:
                return "failed", "its playbook version is gone"
            rows = {
                row.key: row
                for row in await db.scalars(
                    select(ExecutionStep).where(ExecutionStep.execution_id == execution_id)
                )
            }
            db.expunge_all()
        definition = parse_playbook(version.definition)
        run = _Run(self, execution, definition, rows)
        return await run.walk()

    def _publish(self, execution: PlaybookExecution) -> None:
        self._bus.publish(
            "soar.executions",
            {
                "execution_id": execution.id,
                "playbook_id": execution.playbook_id,
                "status": execution.status,
                "mode": execution.mode,
            },
        )

    # -- effects -----------------------------------------------------------------------------

    async def _ledger_claim(
        self, key: str, execution_id: str, action: str, target: str, reason: str, by: str | None
    ) -> tuple[str, dict[str, Any]]:
        """Take the ledger key before an effect: ``new`` (go on), or the earlier outcome:
        ``executed`` (with its detail), ``unknown`` (started, never finished)."""
        try:
            async with self._db.session() as db:
                db.add(
                    ResponseActionRecord(
                        key=key,
                        investigation_id=execution_id,
                        action=action[:64],
                        target=target[:512],
                        reason=reason[:2000],
                        approved_by=by,
                        status="started",
                        executor="playbook",
                        detail={},
                    )
                )
                await db.commit()
            return "new", {}
        except IntegrityError:
            pass
        async with self._db.session() as db:
            retried = await db.execute(
                update(ResponseActionRecord)
                .where(ResponseActionRecord.key == key, ResponseActionRecord.status == "failed")
                .values(status="started", approved_by=by)
            )
            await db.commit()
            if getattr(retried, "rowcount", 0):
                return "new", {}
            record = await db.get(ResponseActionRecord, key)
        if record is None:  # pragma: no cover - the insert conflicted on this very key
            raise RuntimeError(f"ledger row {key} vanished")
        if record.status == "executed":
            return "executed", dict(record.detail)
        return "unknown", {"reason": "an earlier attempt started and did not finish; not repeated"}

    async def _ledger_finish(self, key: str, status: str, detail: dict[str, Any]) -> None:
        async with self._db.session() as db:
            await db.execute(
                update(ResponseActionRecord)
                .where(ResponseActionRecord.key == key)
                .values(status=status, detail=detail, finished_at=utcnow())
            )
            await db.commit()


class _Run:
    """One pass over an execution's steps."""

    def __init__(
        self,
        engine: SoarEngine,
        execution: PlaybookExecution,
        definition: PlaybookDefinition,
        rows: dict[str, ExecutionStep],
    ) -> None:
        self.engine = engine
        self.execution = execution
        self.definition = definition
        self.rows = rows
        self.mode = SystemMode(execution.mode)
        self.env = engine._env(execution)
        self.context: dict[str, Any] = {
            "inputs": dict(execution.inputs),
            "trigger": dict(execution.trigger),
            "steps": {},
            "execution": {
                "id": execution.id,
                "mode": execution.mode,
                "playbook": execution.playbook_id,
                "version": execution.playbook_version,
            },
        }
        self.corroborations: list[dict[str, Any]] | None = None
        self.vouched: list[dict[str, Any]] = []

    async def walk(self) -> tuple[str, str | None]:
        paused = False
        for position, step in enumerate(self.definition.steps):
            result = await self.step(position, step)
            if result.paused:
                paused = True
                # Later steps may need this one's output: stop here until a human decides.
                break
            self.context["steps"][step.id] = {"status": result.status, "output": result.output}
            if result.status in FAILING and step.on_error == "stop":
                return "failed", f"step {step.id} {result.status}"
            if step.uses == "approval" and result.status in {"denied", "expired"}:
                return "failed", f"approval step {step.id} {result.status}"
        if paused:
            return "awaiting_approval", None
        return "completed", None

    async def step(self, position: int, step: StepDef) -> _Result:
        try:
            wanted = step.if_ is None or is_true(evaluate(step.if_, self.context))
        except AuroraError as err:
            return await self.fail(position, step, None, err)
        if not wanted:
            return await self.record(position, step, None, "skipped", inputs=None)
        if step.foreach is None:
            return await self.item(position, step, None, self.context)
        try:
            items = evaluate(step.foreach, self.context)
        except AuroraError as err:
            return await self.fail(position, step, None, err)
        if not isinstance(items, list):
            return await self.fail(
                position, step, None, None, f"foreach gave {type(items).__name__}, not a list"
            )
        if len(items) > MAX_ITEMS:
            return await self.fail(
                position, step, None, None, f"foreach gave {len(items)} items; at most {MAX_ITEMS}"
            )
        results = []
        for index, item in enumerate(items):
            scope = {**self.context, "item": item, "index": index}
            results.append(await self.item(position, step, index, scope))
        if any(r.paused for r in results):
            return _PAUSED
        statuses = {r.status for r in results}
        status = next((s for s in ("unknown", "failed") if s in statuses), "succeeded")
        if statuses and statuses <= {"recorded", "proposed", "skipped", "denied", "expired"}:
            status = "recorded" if "recorded" in statuses else sorted(statuses)[0]
        return _Result(status, [{"status": r.status, "output": r.output} for r in results])

    async def item(
        self, position: int, step: StepDef, index: int | None, scope: dict[str, Any]
    ) -> _Result:
        key = step_key(self.execution.id, step.id, index)
        row = self.rows.get(key)
        if row is not None and row.status in DONE:
            self.learn(step, row.output)
            return _Result(row.status, row.output)
        kind = STEP_KINDS[step.uses]
        if row is not None and row.inputs is not None:
            raw = row.inputs
        else:
            try:
                raw = render(step.with_, scope)
            except AuroraError as err:
                return await self.fail(position, step, index, err)
        try:
            params = kind.validate(raw)
        except AuroraError as err:
            return await self.fail(position, step, index, err, inputs=raw)
        if row is None:
            row = await self.begin(position, step, index, raw)
        if kind.effect is Effect.APPROVAL:
            return await self.approval(row, step, kind, params)
        if kind.effect is Effect.READ:
            return await self.attempt(row, step, kind, params, ledger=None)
        if kind.effect is Effect.RECORD:
            if self.mode is SystemMode.DRY_RUN:
                return await self.would(row, kind, params, "recorded")
            return await self.attempt(row, step, kind, params, ledger=(kind.action, None))
        return await self.response(row, step, kind, params)

    # -- effects -----------------------------------------------------------------------------

    async def response(
        self, row: ExecutionStep, step: StepDef, kind: StepKind[Any], params: BaseModel
    ) -> _Result:
        action = kind.action or step.uses
        target = kind.target(params) if kind.target is not None else ""
        approval = await self.approval_of(row.key)
        if approval is None:
            corroborated = await self.corroborated(target)
            verdict = decide(
                self.engine._policy,
                ActionRequest(
                    action=action,
                    target=target,
                    corroborated_by=[describe(c) for c in corroborated][:100],
                ),
                self.mode,
            )
            guardrail = {
                "decision": verdict.decision.value,
                "outcome": verdict.outcome.value,
                "mode": self.mode.value,
                "reasons": list(verdict.reasons),
                "rules": verdict.rules,
                "criticality": verdict.criticality.value,
                "corroborated_by": corroborated,
            }
            row.guardrail = guardrail
            if verdict.outcome is Outcome.RECORD_ONLY:
                return await self.would(row, kind, params, "recorded")
            if verdict.outcome is Outcome.PROPOSE:
                return await self.would(row, kind, params, "proposed")
            if verdict.outcome is Outcome.DENIED:
                return await self.finish(
                    row,
                    "denied",
                    error={"code": "AURORA-4031", "message": "Action denied by guardrail policy"},
                    action=action,
                )
            if verdict.outcome is Outcome.AWAIT_APPROVAL:
                await self.ask(row, action, target, guardrail, step)
                return _PAUSED
            return await self.attempt(row, step, kind, params, ledger=(action, None))
        if approval.status == "pending":
            return _PAUSED
        if approval.status == "approved":
            return await self.attempt(row, step, kind, params, ledger=(action, approval.decided_by))
        code = "AURORA-4080" if approval.status == "expired" else "AURORA-4031"
        message = (
            "Human approval timed out"
            if approval.status == "expired"
            else f"Action denied by {approval.decided_by or 'an approver'}"
        )
        status = "expired" if approval.status == "expired" else "denied"
        return await self.finish(
            row, status, error={"code": code, "message": message}, action=action
        )

    async def approval(
        self, row: ExecutionStep, step: StepDef, kind: StepKind[Any], params: BaseModel
    ) -> _Result:
        if self.mode is not SystemMode.ACTIVE:
            status = "recorded" if self.mode is SystemMode.DRY_RUN else "proposed"
            return await self.would(row, kind, params, status)
        approval = await self.approval_of(row.key)
        if approval is None:
            prompt = str(getattr(params, "prompt", "") or step.id)
            wait = getattr(params, "timeout_seconds", None)
            await self.ask(row, "approve_step", prompt, {"reasons": [prompt]}, step, wait)
            return _PAUSED
        if approval.status == "pending":
            return _PAUSED
        output = {
            "decision": approval.status,
            "by": approval.decided_by,
            "comment": approval.comment,
        }
        if approval.status == "approved":
            return await self.finish(row, "succeeded", output=output)
        code = "AURORA-4080" if approval.status == "expired" else "AURORA-4031"
        status = "expired" if approval.status == "expired" else "denied"
        return await self.finish(
            row, status, output=output, error={"code": code, "message": f"approval {status}"}
        )

    async def attempt(
        self,
        row: ExecutionStep,
        step: StepDef,
        kind: StepKind[Any],
        params: BaseModel,
        *,
        ledger: tuple[str | None, str | None] | None,
    ) -> _Result:
        """Run the step's work with its timeout and retries; through the ledger when
        ``ledger`` is given (the action's name, who approved it). A read is retried on a
        transient error; an effect only when the product refused it before acting (a rate
        limit), and one that timed out is ``unknown``: it may have happened, so it is never
        run again."""
        action = None
        if ledger is not None:
            action = ledger[0] or LEDGER_PREFIX + step.uses
        target = kind.target(params) if kind.target is not None else ""
        tries = 0
        while True:
            tries += 1
            row.attempts = tries
            if action is not None:
                claim, earlier = await self.engine._ledger_claim(
                    row.key,
                    self.execution.id,
                    action,
                    target,
                    f"playbook {self.execution.playbook_id} step {step.id}",
                    ledger[1] if ledger else None,
                )
                if claim == "executed":
                    output = earlier.get("output")
                    self.learn(step, output)
                    return await self.finish(row, "succeeded", output=output, action=action)
                if claim == "unknown":
                    error = {"code": "AURORA-5000", "message": earlier["reason"]}
                    return await self.finish(row, "unknown", error=error, action=action)
            env = dataclasses.replace(
                self.env,
                key=row.key,
                approved_by=ledger[1] if ledger else None,
                corroborated_by=tuple(
                    describe(c) for c in (row.guardrail or {}).get("corroborated_by", [])
                ),
            )
            try:
                async with asyncio.timeout(step.timeout):
                    output = await kind.run(env, params)
            except Exception as err:
                if action is None:
                    if tries <= step.retries and _transient(err):
                        await asyncio.sleep(_backoff(tries))
                        continue
                    return await self.finish(row, "failed", error=_error(err))
                if isinstance(err, TimeoutError):
                    # The ledger row stays started: whatever happens, it is not run again.
                    return await self.finish(row, "unknown", error=_error(err), action=action)
                await self.engine._ledger_finish(row.key, "failed", {"error": _error(err)})
                if tries <= step.retries and isinstance(err, RateLimited):
                    await asyncio.sleep(max(_backoff(tries), min(err.retry_after, 30)))
                    continue
                return await self.finish(row, "failed", error=_error(err), action=action)
            break
        if action is not None:
            await self.engine._ledger_finish(row.key, "executed", {"output": output})
        self.learn(step, output)
        return await self.finish(row, "succeeded", output=output, action=action)

    async def would(
        self, row: ExecutionStep, kind: StepKind[Any], params: BaseModel, status: str
    ) -> _Result:
        output = {"would": kind.describe(params)}
        return await self.finish(row, status, output=output, action=kind.action)

    # -- corroboration -------------------------------------------------------------------------

    def learn(self, step: StepDef, output: Any) -> None:
        """What a specialist's finding in a step's output corroborates (only what that agent
        may vouch for, set by its code: :func:`agents.acp.provenance.vouched`)."""
        for finding in _findings(output):
            self.vouched += vouched(str(finding.get("agent", "")), finding)

    async def corroborated(self, target: str) -> list[dict[str, Any]]:
        if self.corroborations is None:
            self.corroborations = []
            alert_id = self.execution.inputs.get("alert_id")
            if isinstance(alert_id, str):
                async with self.engine._db.session() as db:
                    try:
                        alert = await get_alert(db=db, alert_id=alert_id)
                    except AuroraError:
                        alert = None
                    if alert is not None:
                        self.corroborations = platform_corroborations(
                            await detected(db=db, alert=alert)
                        )
        return Provenance([], [*self.corroborations, *self.vouched]).corroborations(target)

    # -- the step log ------------------------------------------------------------------------

    async def approval_of(self, key: str) -> Approval | None:
        async with self.engine._db.session() as db:
            return await db.get(Approval, key)

    async def ask(
        self,
        row: ExecutionStep,
        action: str,
        target: str,
        guardrail: dict[str, Any],
        step: StepDef,
        seconds: float | None = None,
    ) -> None:
        wait = timedelta(seconds=seconds or self.engine._approval_timeout())
        request = {
            "approval_id": row.key,
            "action": action,
            "target": target[:512],
            "reason": f"playbook {self.execution.playbook_id} step {step.id}",
            "impact": None,
            "guardrail": guardrail,
            "provenance": {"execution_id": self.execution.id, "step": step.id},
        }
        async with self.engine._db.session() as db:
            asked = await approvals.request(db, self.execution.id, [request], wait)
            await db.execute(
                update(ExecutionStep)
                .where(ExecutionStep.key == row.key)
                .values(status="awaiting_approval", guardrail=row.guardrail)
            )
            await db.commit()
        for approval in asked:
            if approval.status == "pending":
                self.engine._bus.publish("approvals.requested", approvals.as_event(approval))

    async def begin(
        self, position: int, step: StepDef, index: int | None, inputs: Any
    ) -> ExecutionStep:
        row = ExecutionStep(
            key=step_key(self.execution.id, step.id, index),
            execution_id=self.execution.id,
            position=position,
            step_id=step.id,
            item=index,
            uses=step.uses,
            status="running",
            inputs=inputs,
            attempts=0,
            started_at=utcnow(),
        )
        async with self.engine._db.session() as db:
            db.add(row)
            await db.commit()
            db.expunge(row)
        self.rows[row.key] = row
        return row

    async def finish(
        self,
        row: ExecutionStep,
        status: str,
        *,
        output: Any = None,
        error: dict[str, Any] | None = None,
        action: str | None = None,
    ) -> _Result:
        now = utcnow()
        duration = round((now - row.started_at).total_seconds() * 1000, 3)
        async with self.engine._db.session() as db:
            await db.execute(
                update(ExecutionStep)
                .where(ExecutionStep.key == row.key)
                .values(
                    status=status,
                    output=output,
                    error=error,
                    guardrail=row.guardrail,
                    attempts=row.attempts,
                    finished_at=now,
                    duration_ms=duration,
                )
            )
            await db.commit()
        row.status, row.output, row.error = status, output, error
        metrics = self.engine._metrics
        if metrics is not None:
            metrics.soar_step_duration.labels(uses=row.uses, status=status).observe(duration / 1000)
            if action is not None:
                metrics.response_actions.labels(
                    source="playbook", action=action, outcome=status
                ).inc()
        return _Result(status, output)

    async def record(
        self, position: int, step: StepDef, index: int | None, status: str, *, inputs: Any
    ) -> _Result:
        key = step_key(self.execution.id, step.id, index)
        row = self.rows.get(key) or await self.begin(position, step, index, inputs)
        return await self.finish(row, status)

    async def fail(
        self,
        position: int,
        step: StepDef,
        index: int | None,
        err: AuroraError | None,
        message: str | None = None,
        problems: list[dict[str, Any]] | None = None,
        *,
        inputs: Any = None,
    ) -> _Result:
        key = step_key(self.execution.id, step.id, index)
        row = self.rows.get(key) or await self.begin(position, step, index, inputs)
        error = (
            _error(err)
            if err is not None
            else {"code": "AURORA-4221", "message": message or "step failed", "detail": problems}
        )
        return await self.finish(row, "failed", error=error)


def _findings(output: Any) -> Iterable[Mapping[str, Any]]:
    """The specialists' findings in a step's output (an ``agent.call`` answer, or each item
    of a loop's)."""
    if isinstance(output, Mapping):
        if "agent" in output and "severity" in output:
            yield output
        for value in output.values():
            if isinstance(value, Mapping) and "agent" in value and "severity" in value:
                yield value
    elif isinstance(output, list):
        for item in output:
            yield from _findings(item)
