"""Automation: the enabled rules of each trigger act on the events of its bus topic.

One task reads the bus through a bounded subscription, so a slow rule never holds a publisher:
when the task falls behind, the bus drops the oldest events and says how many (a
:class:`~core.events.Gap`); they are counted as lost, logged and shown in :attr:`Automation.counts`.

For each event, every enabled rule of its trigger whose conditions hold is, in order:

- stopped by the loop guard when the event is ``max_depth`` automation firings deep (its
  ``payload["automation"]["depth"]``) or its chain already holds the rule that often:
  counted in ``skipped_loop`` and recorded as a ``loop_guard`` firing;
- stopped by the flood guard when the rule already acted ``max_per_minute`` times in the last
  60 seconds: counted in ``skipped_rate`` and recorded as a ``rate_limited`` firing;
- otherwise it acts: its actions in order, as ``automation:<rule id>``. What they cause carries
  ``payload["automation"] = {"depth": depth + 1, "rules": chain + [rule id]}`` (alert changes
  on ``alerts.updated``; playbook runs through ``depth`` and their ``trigger``), so the guard
  sees it. It is recorded as ``fired``, or ``failed`` with the error's AURORA code (never a
  traceback) when an action fails: the actions after it are not taken.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Protocol, Self

import orjson
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError

from core.db import Database
from core.db.base import as_models, table_of, utcnow
from core.errors import AlertNotFound, AuroraError, Conflict
from core.events import Event, EventBus, Gap, Subscription
from core.tasks import cancel_and_wait
from core.validation import field_error
from gateway.alerts import api as alerts
from gateway.alerts.schemas import AlertPromote, AlertRead, AlertUpdate
from gateway.soar import definition
from gateway.soar.models import AutomationFiring, AutomationRule, PlaybookExecution
from gateway.soar.rules import (
    TOPICS,
    TRIGGERS,
    Action,
    Assign,
    ConditionTimeout,
    DispatchInvestigation,
    PromoteToCase,
    RunPlaybook,
    Tag,
    holds,
    resolve,
)

log = logging.getLogger("aurora.soar.automation")

WINDOW_SECONDS: Final = 60.0
"""The flood guard's window: ``max_per_minute`` acts in any 60 seconds."""
OUTCOMES: Final = ("fired", "loop_guard", "rate_limited", "failed")
_RULES = table_of(AutomationRule)
_ENABLED: Final = (
    select(_RULES)
    .where(_RULES.c.enabled.is_(True), _RULES.c.trigger == bindparam("trigger"))
    .order_by(_RULES.c.created_at, _RULES.c.id)
)
"""The enabled rules of a trigger, read for each event: built once, on the table (the ORM's
entity query cost more than the read)."""
BURST: Final = 100
"""The most events handled together on one read of the rules: a rule an analyst turns off stops
acting within a burst."""
COUNTER_OF: Final = {
    "fired": "fired",
    "loop_guard": "skipped_loop",
    "rate_limited": "skipped_rate",
    "failed": "failed",
}
"""The rule's counter each firing outcome adds to."""
REMEMBERED_INVESTIGATIONS: Final = 10_000
"""How many dispatched investigations' chains are kept until their receipt comes."""
SAVE_ATTEMPTS: Final = 3
"""An alert edited concurrently is read again and changed again this many times at most."""
SUBJECT_KEYS: Final[dict[str, tuple[str, ...]]] = {
    "alerts.created": ("id",),
    "alerts.updated": ("id",),
    "detections.matched": ("alert_id", "detection_id", "rule_id", "id"),
    "investigations.receipt": ("investigation_id",),
    "network.attacks": ("attack_id", "id"),
}
"""Where each topic's event names what it is about (the first present)."""
ALERT_PATHS: Final = ("alert_id", "receipt.alert_id", "subject.alert_id")
CASE_PATHS: Final = ("case_id", "receipt.case_id", "subject.case_id")
"""Where an event that is not an alert's own names its alert and case."""

ACTIONS: TypeAdapter[RunPlaybook | DispatchInvestigation | Assign | Tag | PromoteToCase] = (
    TypeAdapter(Action)
)


class PlaybookStarter(Protocol):
    """Queues a playbook run (the SOAR engine)."""

    async def enqueue(
        self,
        *,
        playbook_id: str,
        inputs: dict[str, Any],
        actor: str,
        trigger: dict[str, Any],
        depth: int = 0,
    ) -> PlaybookExecution: ...


class InvestigationStarter(Protocol):
    """Queues an investigation and wakes its runner; returns the investigation's id."""

    async def dispatch(
        self, *, actor: str, alert_id: str | None, case_id: str | None, priority: str
    ) -> str: ...


@dataclass(frozen=True, slots=True)
class Chain:
    """How many automation firings led to an event, and which rules fired, in order."""

    depth: int = 0
    rules: tuple[str, ...] = ()

    @classmethod
    def of(cls, payload: Mapping[str, Any]) -> Chain | None:
        """The chain an event's payload carries (``payload["automation"]``), if any."""
        marked = payload.get("automation")
        if not isinstance(marked, Mapping):
            return None
        depth = marked.get("depth")
        rules = marked.get("rules")
        return cls(
            depth=depth if isinstance(depth, int) and not isinstance(depth, bool) else 0,
            rules=tuple(r for r in rules if isinstance(r, str)) if isinstance(rules, list) else (),
        )

    def then(self, rule_id: str) -> Chain:
        """The chain of what ``rule_id`` causes acting on this event."""
        return Chain(depth=self.depth + 1, rules=(*self.rules, rule_id))

    def as_payload(self) -> dict[str, Any]:
        return {"depth": self.depth, "rules": list(self.rules)}


@dataclass(slots=True)
class SlidingWindow:
    """Each rule's acts in the last :data:`WINDOW_SECONDS`, on a monotonic ``clock``."""

    clock: Callable[[], float]
    acts: dict[str, deque[float]] = field(default_factory=dict)

    def admit(self, rule_id: str, limit: int) -> bool:
        """Count an act of ``rule_id`` and say yes, unless ``limit`` are already in the window."""
        now = self.clock()
        seen = self.acts.setdefault(rule_id, deque())
        while seen and seen[0] <= now - WINDOW_SECONDS:
            seen.popleft()
        if len(seen) >= limit:
            return False
        seen.append(now)
        return True


class Failed(Exception):
    """An action failed: its AURORA code and a detail safe to keep."""

    def __init__(self, index: int, code: str, detail: Any, done: list[dict[str, Any]]) -> None:
        super().__init__(code)
        self.index, self.code, self.detail, self.done = index, code, detail, done


class Automation:
    """Runs the automation rules on the bus's events (see the module's description).

    ``on_outcome(trigger, outcome)`` is called for each firing and ``on_lost(count)`` when the
    bus dropped events before this read them: the hooks of the platform's metrics.
    """

    def __init__(
        self,
        *,
        database: Database,
        bus: EventBus,
        engine: PlaybookStarter,
        dispatch: InvestigationStarter,
        clock: Callable[[], float] = time.monotonic,
        queue_size: int = 1000,
        on_outcome: Callable[[str, str], None] | None = None,
        on_lost: Callable[[int], None] | None = None,
    ) -> None:
        self._db = database
        self._bus = bus
        self._engine = engine
        self._dispatch = dispatch
        self._window = SlidingWindow(clock)
        self._queue_size = queue_size
        self._on_outcome = on_outcome
        self._on_lost = on_lost
        self._subscription: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._investigations: OrderedDict[str, Chain] = OrderedDict()
        self._counts: dict[str, int] = dict.fromkeys(
            ("events", "events_lost", "errors", *OUTCOMES), 0
        )

    @property
    def counts(self) -> dict[str, int]:
        """Events handled and lost (dropped by the bus), events whose handling broke
        (``errors``, logged), and firings by outcome, since start."""
        return dict(self._counts)

    def start(self) -> None:
        """Subscribe to the triggers' topics (events published from now on are seen) and start
        the task that handles them."""
        if self._task is not None:
            return
        # This replica's own events only: each event fires its rules once, however many
        # replicas hear it (core.bridge).
        self._subscription = self._bus.subscribe(
            *TRIGGERS, maxsize=self._queue_size, where=lambda event: event.origin is None
        )
        self._task = asyncio.create_task(self._run(self._subscription), name="automation")

    async def stop(self) -> None:
        """Stop reading the bus; an event being handled is abandoned where it is."""
        task, self._task = self._task, None
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None
        await cancel_and_wait(task)

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _run(self, subscription: Subscription) -> None:
        async for item in subscription:
            if isinstance(item, Gap):
                self._counts["events_lost"] += item.dropped
                log.warning(
                    "automation fell behind: the bus dropped %d events before it read them "
                    "(%d lost since start)",
                    item.dropped,
                    self._counts["events_lost"],
                )
                if self._on_lost is not None:
                    self._on_lost(item.dropped)
                continue
            # The events queued behind it (a detection run announces its alerts in bursts) are
            # handled with it, each trigger's rules read once for them all.
            read: dict[str, list[AutomationRule]] = {}
            for event in (item, *subscription.ready(BURST - 1)):
                try:
                    await self.handle(event, read)
                except Exception:
                    self._counts["errors"] += 1
                    log.exception("automation could not handle %s", event.topic)
                self._counts["events"] += 1

    async def handle(
        self, event: Event, read: dict[str, list[AutomationRule]] | None = None
    ) -> None:
        """Run the enabled rules of the event's trigger on it (what the task does with each).
        ``read``: the rules already read for each trigger, for events handled together (the
        rules this one reads are added)."""
        trigger = TRIGGERS.get(event.topic)
        if trigger is None:
            return
        chain = self._chain(event)
        rules = read.get(trigger) if read is not None else None
        if rules is None:
            async with self._db.begin() as connection:
                rules = as_models(
                    AutomationRule, await connection.execute(_ENABLED, {"trigger": trigger})
                )
            if read is not None:
                read[trigger] = rules
        for rule in rules:
            await self._apply(rule, event, trigger, chain)

    def _chain(self, event: Event) -> Chain:
        marked = Chain.of(event.payload)
        if marked is not None:
            return marked
        if event.topic == TOPICS["investigation.finished"]:
            ident = event.payload.get("investigation_id")
            if isinstance(ident, str) and ident in self._investigations:
                return self._investigations.pop(ident)
        return Chain()

    async def _apply(self, rule: AutomationRule, event: Event, trigger: str, chain: Chain) -> None:
        subject = _subject(event)
        try:
            matched = all(
                holds(str(c.get("field")), str(c.get("op")), c.get("value"), event.payload)
                for c in rule.conditions
            )
        except ConditionTimeout as err:
            detail: dict[str, Any] = {"error": "condition_timeout", "field": str(err)}
            await self._record(rule, event, trigger, subject, "failed", chain.depth, detail)
            return
        if not matched:
            return
        if chain.depth >= rule.max_depth or chain.rules.count(rule.id) >= rule.max_depth:
            detail = {"max_depth": rule.max_depth, "chain": list(chain.rules)}
            await self._record(rule, event, trigger, subject, "loop_guard", chain.depth, detail)
            return
        if not self._window.admit(rule.id, rule.max_per_minute):
            detail = {"max_per_minute": rule.max_per_minute}
            await self._record(rule, event, trigger, subject, "rate_limited", chain.depth, detail)
            return
        try:
            done = await self._act(rule, event, trigger, subject, chain.then(rule.id))
        except Failed as failure:
            detail = {
                "error": failure.code,
                "action": failure.index,
                "reason": _jsonable(failure.detail),
                "actions": failure.done,
            }
            await self._record(rule, event, trigger, subject, "failed", chain.depth, detail)
            return
        await self._record(rule, event, trigger, subject, "fired", chain.depth, {"actions": done})

    async def _act(
        self, rule: AutomationRule, event: Event, trigger: str, subject: str | None, child: Chain
    ) -> list[dict[str, Any]]:
        done: list[dict[str, Any]] = []
        for index, stored in enumerate(rule.actions):
            try:
                action = ACTIONS.validate_python(stored)
                done.append(await self._take(action, rule, event, trigger, subject, child))
            except AuroraError as err:
                log.warning("automation rule %s: action %d failed: %s", rule.id, index, err.code)
                raise Failed(index, err.code, err.detail, done) from err
            except ValidationError as err:
                log.warning("automation rule %s: action %d is not valid", rule.id, index)
                raise Failed(index, "AURORA-4220", "the stored action is not valid", done) from err
            except Exception as err:
                log.exception("automation rule %s: action %d failed", rule.id, index)
                raise Failed(index, "AURORA-5000", type(err).__name__, done) from err
        return done

    async def _take(
        self,
        action: RunPlaybook | DispatchInvestigation | Assign | Tag | PromoteToCase,
        rule: AutomationRule,
        event: Event,
        trigger: str,
        subject: str | None,
        child: Chain,
    ) -> dict[str, Any]:
        actor = f"automation:{rule.id}"
        match action:
            case RunPlaybook():
                context = {
                    "event": event.payload,
                    "topic": event.topic,
                    "trigger": trigger,
                    "rule": {"id": rule.id, "name": rule.name},
                }
                execution = await self._engine.enqueue(
                    playbook_id=action.playbook_id,
                    inputs=definition.render(action.inputs, context),
                    actor=actor,
                    trigger={
                        "kind": "automation",
                        "rule_id": rule.id,
                        "topic": event.topic,
                        "subject": subject,
                        "rules": list(child.rules),
                    },
                    depth=child.depth,
                )
                return {"type": action.type, "execution_id": execution.id}
            case DispatchInvestigation():
                alert_id, case_id = _targets(event)
                if alert_id is None and case_id is None:
                    raise field_error(["event"], "the event names no alert or case to investigate")
                ident = await self._dispatch.dispatch(
                    actor=actor, alert_id=alert_id, case_id=case_id, priority=action.priority
                )
                self._remember(ident, child)
                return {"type": action.type, "investigation_id": ident}
            case Assign():
                alert = await self._change_alert(event, actor, child, assignee=action.assignee)
                return {"type": action.type, "alert_id": alert.id, "assignee": alert.assignee}
            case Tag():
                alert = await self._change_alert(event, actor, child, tags=action.tags)
                return {"type": action.type, "alert_id": alert.id, "tags": action.tags}
            case PromoteToCase():
                return await self._promote(event, actor, child)

    def _remember(self, investigation_id: str, chain: Chain) -> None:
        self._investigations[investigation_id] = chain
        while len(self._investigations) > REMEMBERED_INVESTIGATIONS:
            self._investigations.popitem(last=False)

    async def _change_alert(
        self,
        event: Event,
        actor: str,
        child: Chain,
        *,
        assignee: str | None = None,
        tags: list[str] | None = None,
    ) -> AlertRead:
        alert_id = _alert_of(event)
        for attempt in range(1, SAVE_ATTEMPTS + 1):
            async with self._db.session() as db:
                current = await alerts.get_alert(db=db, alert_id=alert_id)
                change: dict[str, Any] = {"version": current.version}
                if assignee is not None:
                    change["assignee"] = assignee
                if tags is not None:
                    change["tags"] = sorted({*current.tags, *tags})
                try:
                    read = await alerts.update_alert(
                        db=db, actor=actor, alert_id=alert_id, body=AlertUpdate(**change)
                    )
                except Conflict:
                    if attempt == SAVE_ATTEMPTS:
                        raise
                    continue  # edited meanwhile: read it again
            self._bus.publish(
                "alerts.updated", {**read.model_dump(mode="json"), "automation": child.as_payload()}
            )
            return read
        raise AssertionError("unreachable")  # pragma: no cover

    async def _promote(self, event: Event, actor: str, child: Chain) -> dict[str, Any]:
        alert_id = _alert_of(event)
        async with self._db.session() as db:
            current = await alerts.get_alert(db=db, alert_id=alert_id)
            if current.case_id is not None:
                return {"type": "promote_to_case", "case_id": current.case_id, "created": False}
            promoted = await alerts.promote_alert(
                db=db, actor=actor, alert_id=alert_id, body=AlertPromote()
            )
        marked = child.as_payload()
        self._bus.publish(
            "alerts.updated", {**promoted.alert.model_dump(mode="json"), "automation": marked}
        )
        self._bus.publish(
            "cases.created", {"id": promoted.case_id, "from_alert": alert_id, "automation": marked}
        )
        return {"type": "promote_to_case", "case_id": promoted.case_id, "created": True}

    async def _record(
        self,
        rule: AutomationRule,
        event: Event,
        trigger: str,
        subject: str | None,
        outcome: str,
        depth: int,
        detail: dict[str, Any],
    ) -> None:
        """Add the firing and its count to the rule, in one transaction (a rule deleted
        meanwhile takes neither)."""
        counter = COUNTER_OF[outcome]
        values: dict[str, Any] = {counter: getattr(AutomationRule, counter) + 1}
        if outcome in {"fired", "failed"}:
            values["last_fired_at"] = utcnow()
        async with self._db.session() as db:
            counted = await db.execute(
                update(AutomationRule).where(AutomationRule.id == rule.id).values(**values)
            )
            if not getattr(counted, "rowcount", 0):
                return  # deleted since it was read
            db.add(
                AutomationFiring(
                    rule_id=rule.id,
                    topic=event.topic,
                    subject=subject,
                    outcome=outcome,
                    depth=depth,
                    detail=detail,
                )
            )
            try:
                await db.commit()
            except IntegrityError:  # deleted between the two statements
                await db.rollback()
                return
        self._counts[outcome] += 1
        if self._on_outcome is not None:
            self._on_outcome(trigger, outcome)


def _jsonable(value: Any) -> Any:
    """``value`` as JSON can hold it (what is not JSON becomes its text)."""
    return orjson.loads(orjson.dumps(value, default=str))


def _first_text(payload: Mapping[str, Any], paths: tuple[str, ...]) -> str | None:
    for path in paths:
        found = resolve(payload, path)
        if isinstance(found, str) and found:
            return found
    return None


def _subject(event: Event) -> str | None:
    found = _first_text(event.payload, SUBJECT_KEYS.get(event.topic, ("id",)))
    return found[:64] if found is not None else None


def _targets(event: Event) -> tuple[str | None, str | None]:
    """The alert and the case an event is about."""
    if event.topic in {TOPICS["alert.created"], TOPICS["alert.updated"]}:
        return _first_text(event.payload, ("id",)), _first_text(event.payload, ("case_id",))
    return _first_text(event.payload, ALERT_PATHS), _first_text(event.payload, CASE_PATHS)


def _alert_of(event: Event) -> str:
    alert_id, _case = _targets(event)
    if alert_id is None:
        raise AlertNotFound({"alert_id": None, "reason": "the event names no alert"})
    return alert_id
