"""One chat turn, from the user's message to the stored answer, as a stream of events.

The layers of defence, in the order a turn meets them (each one testable on its own):

1. **Neutralised input** (:func:`core.llm.guard.neutralise`): control characters, chat-template
   role markers and fence look-alikes are defused in what the user types.
2. **Fenced data** (:func:`core.llm.fence.fence`): pasted data, earlier answers and every tool
   result reach the model between fences that nothing inside can close.
3. **Injection detector** (:mod:`tools.injection`): its verdict on the message, the pasted data
   and the tool results is recorded on the stored turn. It never blocks.
4. **Confirmation of calls the data asked for**: a tool call whose arguments come from pasted
   data or a tool's result rather than from what the user typed (``provenance`` ``data``) waits
   for the user's confirmation when it would change something, when the data came from a
   paste, or when the conversation's data was flagged by the detector; a call that changes
   something waits unless the user named its target.
5. **Scrubbed output** (:class:`core.llm.guard.Scrubber`): secrets (key and token formats,
   private keys, passwords, the platform's own secrets) and system-prompt text are redacted
   from the answer before any of it is sent, streamed or stored.

Without an LLM (or with one that is down) the assistant serves the commands of
:mod:`gateway.chat.commands` deterministically and says plainly that free-form questions need a
model.

The stream's events: ``session``, ``token``, ``tool_call``, ``tool_result``,
``confirmation_required``, ``report_generated`` / ``report_error``, then ``message`` (the stored
answer with usage) or ``error``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import ValidationError
from sqlalchemy import select

from core.db import Database
from core.db.base import utcnow
from core.db.sequences import next_id
from core.errors import AuroraError, LLMUnavailable
from core.llm import LLMBackend
from core.llm.fence import FENCE_RULES, fence
from core.llm.guard import Scrubber, neutralise
from core.llm.types import Message, Usage, system_message, tool_message
from core.security.permissions import Permission
from core.validation import field_error
from gateway.auth.service import Principal
from gateway.chat import commands, service
from gateway.chat.models import ChatMessage, ChatReport, ChatSession
from gateway.chat.report import ReportSubjects, build_report
from gateway.chat.schemas import (
    ChatAnswer,
    ChatRequest,
    Citation,
    MessageRead,
    ReportLink,
    ToolCallRecord,
)
from gateway.chat.schemas import Usage as UsageRead
from gateway.chat.tools import BY_NAME, TOOLS, ChatTool, ToolEnv, ToolOutput, failure_text
from prompts.loader import Prompt, load_prompt
from tools.injection import detect
from tools.ioc import extract_iocs

log = logging.getLogger("aurora.chat")

REPORT_MARKER: Final = "%%REPORT_REQUEST%%"
PROMPT_NAME: Final = "chat_assistant"
MAX_STEPS: Final = 4
"""Rounds of tool calls a turn may take before the model must answer."""
HISTORY_MESSAGES: Final = 20
HISTORY_CHARS: Final = 120_000
"""The most of earlier turns (and their pasted data) shown to the model again: the newest
first, whole turns only."""
TOOL_OUTPUT_CHARS: Final = 12_000
MAX_TOKENS: Final = 2048
REPORT_SUBJECTS_MAX: Final = 20
_ID: Final = re.compile(r"\b(?:ALRT|CASE|INV|RPT|NATK|EVD)-\d{4}-\d{3,}\b")
_REPORT_KEYS: Final = ("alert_ids", "case_ids", "investigation_ids")
_READ_FOR: Final = {
    "alert_ids": Permission.ALERTS_READ,
    "case_ids": Permission.CASES_READ,
    "investigation_ids": Permission.INVESTIGATIONS_READ,
}


@dataclass(frozen=True, slots=True)
class Event:
    """One event of a turn's stream."""

    name: str
    data: dict[str, Any]


@dataclass(slots=True)
class _Call:
    """One tool call of the turn and what became of it."""

    id: str
    tool: str
    arguments: dict[str, Any]
    provenance: str
    status: str
    reason: str | None = None
    output: ToolOutput | None = None

    def record(self) -> dict[str, Any]:
        return ToolCallRecord(
            id=self.id,
            name=self.tool,
            arguments=self.arguments,
            provenance=self.provenance,
            status=self.status,
            reason=self.reason,
            summary=None if self.output is None else self.output.summary[:2000],
        ).model_dump()


@dataclass(slots=True)
class _Turn:
    """What a turn gathers while it runs."""

    principal: Principal
    session: ChatSession
    user_text: str
    """Everything the user typed in this session, lower-cased: the source of trust."""
    pasted: str
    """The pasted data of the session, lower-cased."""
    fetched: list[str] = field(default_factory=list)
    """Tool results of this turn, lower-cased."""
    pending: list[dict[str, Any]] = field(default_factory=list)
    """The calls that waited for confirmation when the turn began."""
    hits: list[dict[str, str]] = field(default_factory=list)
    calls: list[_Call] = field(default_factory=list)
    citations: list[tuple[str, str]] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)

    @property
    def flagged(self) -> bool:
        return bool(self.hits)

    def cite(self, cited: Iterable[tuple[str, str]]) -> None:
        for item in cited:
            if item not in self.citations:
                self.citations.append(item)

    def scan(self, text: str, where: str) -> None:
        for hit in detect(text):
            self.hits.append({"where": where, "family": hit.family, "excerpt": hit.excerpt})


@dataclass(frozen=True, slots=True)
class Opened:
    """A turn whose user message is stored, ready to run."""

    turn: _Turn
    message: ChatMessage
    body: ChatRequest


class ChatEngine:
    """Runs turns for the gateway: one per request, many at once."""

    def __init__(
        self,
        *,
        database: Database,
        llm: LLMBackend | None,
        tool_env: Callable[[Principal], ToolEnv],
        platform_secrets: Sequence[str],
        prompt: Prompt | None = None,
    ) -> None:
        self.database = database
        self.llm = llm
        self._tool_env = tool_env
        self.prompt = prompt or load_prompt(PROMPT_NAME)
        self.system_prompt = f"{self.prompt.text}\n\n{FENCE_RULES}"
        self.scrubber = Scrubber(secrets=platform_secrets, system_prompt=self.system_prompt)
        self._running: set[asyncio.Task[None]] = set()

    # -- the turn ---------------------------------------------------------------------------

    async def start(self, principal: Principal, body: ChatRequest) -> Opened:
        """Check the request against its session and store the user's message: AURORA-4040
        for a session that is not the caller's, AURORA-4220 for a confirmation of no pending
        call. Nothing is stored when it fails."""
        turn, message = await self._open(principal, body)
        return Opened(turn, message, body)

    async def run(self, opened: Opened) -> AsyncIterator[Event]:
        """The events of a started turn; the last is ``message`` (the stored answer)."""
        turn, user_message, body = opened.turn, opened.message, opened.body
        yield Event("session", {"session_id": turn.session.id, "seq": user_message.seq})
        scrubbed = self.scrubber.stream()
        visible: list[str] = []
        markers = _MarkerFilter()
        backend, model = "builtin", None

        def emit_text(text: str) -> Event | None:
            safe = scrubbed.feed(markers.feed(text))
            if not safe:
                return None
            visible.append(safe)
            return Event("token", {"text": safe})

        confirmed = [p for p in turn.pending if p["id"] in body.confirm_tool_calls]
        outputs: list[_Call] = []
        for pending in confirmed:
            call = _Call(pending["id"], pending["name"], pending["arguments"], "user", "confirmed")
            async for event in self._execute(turn, call):
                yield event
            outputs.append(call)
        declined = [p for p in turn.pending if p["id"] not in body.confirm_tool_calls]
        for pending in declined:
            turn.calls.append(
                _Call(
                    pending["id"],
                    pending["name"],
                    pending["arguments"],
                    pending.get("provenance", "data"),
                    "declined",
                    "not confirmed before the next message",
                )
            )

        command = commands.parse(user_message.content)
        use_llm = self.llm is not None and command is None
        if use_llm:
            assert self.llm is not None
            try:
                async for piece in self._with_llm(turn, user_message, outputs):
                    if isinstance(piece, Event):
                        yield piece
                    elif (token := emit_text(piece)) is not None:
                        yield token
                backend, model = "llm", self.llm.model
            except LLMUnavailable as err:
                use_llm = False
                note = (
                    f"The language model is unavailable ({err.detail}); only the built-in "
                    "commands work until it is back.\n\n"
                )
                if (token := emit_text(note)) is not None:
                    yield token
        if not use_llm:
            async for piece in self._builtin(turn, user_message.content, command, outputs):
                if isinstance(piece, Event):
                    yield piece
                elif (token := emit_text(piece)) is not None:
                    yield token
        tail = scrubbed.feed(markers.finish()) + scrubbed.finish()
        if tail:
            visible.append(tail)
            yield Event("token", {"text": tail})

        report: ChatReport | None = None
        report_error: str | None = None
        requests = markers.requests
        if command is not None and command.name == "report":
            requests = [json.dumps({"title": command.argument})] if command.argument else [""]
        if requests:
            report, report_error = await self._report(turn, requests[0])
            if report is not None:
                turn.cite([("report", report.id)])
                yield Event(
                    "report_generated",
                    {
                        "report_id": report.id,
                        "title": report.title,
                        "sha256": report.sha256,
                        "subjects": report.subjects,
                    },
                )
            else:
                yield Event("report_error", {"reason": report_error})

        answer = await self._close(
            turn,
            content="".join(visible).strip(),
            redactions=[{"kind": r.kind, "length": r.length} for r in scrubbed.redactions],
            backend=backend,
            model=model,
            report=report,
            report_error=report_error,
        )
        yield Event("message", answer.model_dump(mode="json"))

    def detach(self, opened: Opened) -> asyncio.Queue[Event | BaseException | None]:
        """Run a started turn in a task of its own, so that it ends and its answer is stored
        even when the client goes away: the queue gets each event, an exception that ended
        the turn early, then None."""
        queue: asyncio.Queue[Event | BaseException | None] = asyncio.Queue()

        async def turn() -> None:
            try:
                async for event in self.run(opened):
                    queue.put_nowait(event)
            except AuroraError as err:
                queue.put_nowait(err)
            except Exception as err:
                log.exception("chat turn failed in session %s", opened.turn.session.id)
                queue.put_nowait(err)
            finally:
                queue.put_nowait(None)

        task = asyncio.create_task(turn(), name=f"chat-turn-{opened.turn.session.id}")
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return queue

    async def close(self) -> None:
        """Stop the turns still running (at shutdown)."""
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)

    async def answer(self, principal: Principal, body: ChatRequest) -> ChatAnswer:
        """The turn run to its end: the stored answer."""
        final: dict[str, Any] | None = None
        async for event in self.run(await self.start(principal, body)):
            if event.name == "message":
                final = event.data
        assert final is not None
        return ChatAnswer.model_validate(final)

    # -- opening and closing ----------------------------------------------------------------

    async def _open(self, principal: Principal, body: ChatRequest) -> tuple[_Turn, ChatMessage]:
        """Validate against the session, store the user's message, and gather what the turn
        trusts and what it does not."""
        text = neutralise(body.message)
        context = [
            {"name": neutralise(item.name).text, "content": item.content} for item in body.context
        ]
        async with self.database.session() as db:
            if body.session_id is None:
                session = await service.create_session(
                    db, owner=principal.username, title=service.title_from(text.text), commit=False
                )
            else:
                session = await service.owned_session(
                    db, session_id=body.session_id, owner=principal.username
                )
            known = {p["id"] for p in session.pending}
            if unknown := [i for i in body.confirm_tool_calls if i not in known]:
                raise field_error(
                    ["confirm_tool_calls"],
                    f"no tool call of this session waits for confirmation: {unknown[0]}",
                    "unknown_tool_call",
                )
            earlier = (
                await db.scalars(
                    _select_messages(session.id, role="user"),
                )
            ).all()
            user_text = "\n".join([*(m.content for m in earlier), text.text]).lower()
            pasted = "\n".join(
                item["content"] for m in earlier for item in (m.context or [])
            ) + "\n".join(item["content"] for item in context)
            turn = _Turn(
                principal, session, user_text, pasted.lower(), pending=list(session.pending)
            )
            turn.scan(text.text, "message")
            for index, item in enumerate(context):
                turn.scan(item["content"], f"context[{index}]")
            message = ChatMessage(
                session_id=session.id,
                seq=session.message_count + 1,
                role="user",
                content=text.text,
                context=context,
                created_at=utcnow(),
                neutralised=list(text.changes),
                injection={"flagged": turn.flagged, "hits": list(turn.hits)},
                tool_calls=[],
                citations=[],
                redactions=[],
                usage={},
            )
            db.add(message)
            session.message_count += 1
            session.updated_at = utcnow()
            session.pending = []
            await db.commit()
            await db.refresh(session)
            turn.session = session
            db.expunge(session)
            db.expunge(message)
        return turn, message

    async def _close(
        self,
        turn: _Turn,
        *,
        content: str,
        redactions: list[dict[str, Any]],
        backend: str,
        model: str | None,
        report: ChatReport | None,
        report_error: str | None,
    ) -> ChatAnswer:
        citations = [{"kind": kind, "id": ident} for kind, ident in turn.citations]
        pending = [
            {
                "id": c.id,
                "name": c.tool,
                "arguments": c.arguments,
                "provenance": c.provenance,
                "reason": c.reason,
            }
            for c in turn.calls
            if c.status == "confirmation_required"
        ]
        usage = {
            "prompt_tokens": turn.usage.prompt_tokens,
            "completion_tokens": turn.usage.completion_tokens,
            "total_tokens": turn.usage.total_tokens,
        }
        async with self.database.session() as db:
            session = await service.owned_session(
                db, session_id=turn.session.id, owner=turn.principal.username
            )
            message = ChatMessage(
                session_id=session.id,
                seq=session.message_count + 1,
                role="assistant",
                content=content or "(no answer)",
                context=[],
                created_at=utcnow(),
                neutralised=[],
                injection={"flagged": turn.flagged, "hits": list(turn.hits)},
                tool_calls=[c.record() for c in turn.calls],
                citations=citations,
                redactions=redactions,
                usage=usage,
                backend=backend,
                model=model,
                report_id=None if report is None else report.id,
            )
            db.add(message)
            session.message_count += 1
            session.updated_at = utcnow()
            session.pending = pending
            session.subjects = service.merge_subjects(session.subjects or {}, citations)
            await db.commit()
            read = MessageRead.model_validate(message)
        return ChatAnswer(
            session_id=turn.session.id,
            message=read,
            backend=backend,
            model=model,
            usage=UsageRead(**usage),
            citations=[Citation(kind=c["kind"], id=c["id"]) for c in citations],
            tool_calls=[ToolCallRecord(**c.record()) for c in turn.calls],
            pending_confirmation=[
                ToolCallRecord(**c.record())
                for c in turn.calls
                if c.status == "confirmation_required"
            ],
            report=None
            if report is None
            else ReportLink(
                id=report.id, title=report.title, sha256=report.sha256, subjects=report.subjects
            ),
            report_error=report_error,
            injection={"flagged": turn.flagged, "hits": list(turn.hits)},
        )

    # -- tools ------------------------------------------------------------------------------

    def provenance(self, turn: _Turn, arguments: dict[str, Any]) -> tuple[str, bool]:
        """Where a call's arguments come from: ``user`` when everything it names is in what
        the user typed, ``data`` when something is only in pasted data or a tool's result,
        else ``model``; and whether that data was pasted."""
        names = list(_named(arguments))
        if not names:
            return "user", False
        fetched = "\n".join(turn.fetched)
        from_data = False
        pasted = False
        unexplained = False
        for name in names:
            if name in turn.user_text:
                continue
            if name in turn.pasted:
                from_data = pasted = True
            elif name in fetched:
                from_data = True
            else:
                unexplained = True
        if from_data:
            return "data", pasted
        return ("model" if unexplained else "user"), False

    def gate(self, turn: _Turn, tool: ChatTool, arguments: dict[str, Any]) -> _Call:
        """The call as it will be handled: run, or held for the user's confirmation."""
        provenance, pasted = self.provenance(turn, arguments)
        call = _Call(f"tc_{secrets.token_hex(6)}", tool.name, arguments, provenance, "pending")
        if tool.effectful and provenance != "user":
            call.status = "confirmation_required"
            call.reason = (
                "it changes the platform and its target comes from data, not from your message"
            )
        elif provenance == "data" and (pasted or turn.flagged):
            call.status = "confirmation_required"
            call.reason = (
                "its arguments come from pasted data"
                if pasted
                else "its arguments come from data that tried to instruct the assistant"
            )
        return call

    async def _execute(self, turn: _Turn, call: _Call) -> AsyncIterator[Event]:
        """Run ``call`` as the user; its events, and its output on ``call``."""
        tool = BY_NAME[call.tool]
        yield Event("tool_call", _call_event(call))
        try:
            output = await tool.call(self._tool_env(turn.principal), call.arguments)
        except (AuroraError, ValidationError) as err:
            call.status = (
                "denied" if isinstance(err, AuroraError) and err.status == 403 else "failed"
            )
            call.reason = failure_text(err)
            yield Event(
                "tool_result", {"id": call.id, "name": call.tool, "ok": False, "error": call.reason}
            )
        else:
            call.status = "executed"
            call.output = output
            turn.cite(output.citations)
            rendered = _dumps(output.data)
            turn.fetched.append(rendered.lower())
            turn.scan(rendered, f"tool:{call.tool}")
            yield Event(
                "tool_result",
                {
                    "id": call.id,
                    "name": call.tool,
                    "ok": True,
                    "summary": self.scrubber.scrub(output.summary).text,
                    "citations": [{"kind": k, "id": i} for k, i in output.citations],
                },
            )
        turn.calls.append(call)

    # -- with a model -----------------------------------------------------------------------

    async def _with_llm(
        self, turn: _Turn, user_message: ChatMessage, confirmed: list[_Call]
    ) -> AsyncIterator[Event | str]:
        assert self.llm is not None
        messages = await self._transcript(turn, user_message, confirmed)
        specs = [tool.spec for tool in TOOLS]
        for step in range(MAX_STEPS + 1):
            last = step == MAX_STEPS
            stream = self.llm.stream(
                messages,
                tools=specs,
                tool_choice="none" if last else None,
                max_tokens=MAX_TOKENS,
            )
            async with stream:
                async for piece in stream:
                    if isinstance(piece, str):
                        yield piece
            if stream.usage is not None:
                turn.usage += stream.usage
            if not stream.tool_calls or last:
                return
            messages.append(
                {
                    "role": "assistant",
                    "content": stream.text,
                    "tool_calls": [call.to_openai() for call in stream.tool_calls],
                }
            )
            for requested in stream.tool_calls:
                tool = BY_NAME.get(requested.name)
                if tool is None or requested.arguments_error is not None:
                    reason = (
                        f"unknown tool {requested.name!r}"
                        if tool is None
                        else f"invalid arguments: {requested.arguments_error}"
                    )
                    messages.append(tool_message(requested.id, _dumps({"error": reason})))
                    continue
                call = self.gate(turn, tool, requested.arguments)
                if call.status == "confirmation_required":
                    turn.calls.append(call)
                    yield Event("confirmation_required", _call_event(call))
                    messages.append(
                        tool_message(
                            requested.id,
                            _dumps(
                                {
                                    "status": "waiting for the user's confirmation",
                                    "reason": call.reason,
                                    "note": "it has not run; tell the user what it would do",
                                }
                            ),
                        )
                    )
                    continue
                async for event in self._execute(turn, call):
                    yield event
                messages.append(tool_message(requested.id, _tool_content(call)))

    async def _transcript(
        self, turn: _Turn, user_message: ChatMessage, confirmed: list[_Call]
    ) -> list[Message]:
        async with self.database.session() as db:
            earlier = (
                await db.scalars(
                    _select_messages(turn.session.id, before=user_message.seq, newest=True)
                )
            ).all()
        content = _with_context(user_message)
        history: list[Message] = []
        budget = HISTORY_CHARS - len(content)
        for message in earlier:  # newest first, until the budget is spent
            if message.role == "user":
                entry = {"role": "user", "content": _with_context(message)}
            else:
                # An earlier answer may quote data it read: fenced like the data.
                entry = {"role": "assistant", "content": fence(message.content, source="answer")}
            budget -= len(entry["content"])
            if budget < 0:
                break
            history.append(entry)
        if history and history[-1]["role"] == "assistant":
            history.pop()  # the transcript goes on from a user turn
        messages: list[Message] = [system_message(self.system_prompt), *reversed(history)]
        if confirmed:
            results = "\n\n".join(
                f"{call.tool} {_dumps(call.arguments)}:\n{_tool_content(call)}"
                for call in confirmed
            )
            content += f"\n\nResults of the tool calls I confirmed:\n{results}"
        messages.append({"role": "user", "content": content})
        return messages

    # -- without a model --------------------------------------------------------------------

    async def _builtin(
        self,
        turn: _Turn,
        text: str,
        command: commands.Command | None,
        confirmed: list[_Call],
    ) -> AsyncIterator[Event | str]:
        for call in confirmed:
            yield (call.output.summary if call.output else f"{call.tool}: {call.reason}") + "\n\n"
        if command is None:
            if confirmed:
                return
            yield commands.needs_model(self.llm is not None)
            return
        if command.name == "help":
            yield commands.HELP
            return
        if command.name == "report":
            yield "Building the incident report of this conversation."
            return
        if command.tool is None:
            yield command.problem or commands.HELP
            return
        tool = BY_NAME[command.tool]
        call = self.gate(turn, tool, command.arguments)
        if call.status == "confirmation_required":
            turn.calls.append(call)
            yield Event("confirmation_required", _call_event(call))
            yield f"`{tool.name}` needs your confirmation: {call.reason}."
            return
        async for event in self._execute(turn, call):
            yield event
        if call.output is not None:
            yield call.output.summary
        else:
            yield f"`{tool.name}` did not run: {call.reason}."

    # -- reports ----------------------------------------------------------------------------

    async def _report(self, turn: _Turn, request: str) -> tuple[ChatReport | None, str | None]:
        """Build and store the report a marker asked for: ``(report, None)``, or ``(None,
        reason)`` for a malformed request or one that cannot be met."""
        try:
            title, wanted = _report_request(request)
        except ValueError as err:
            return None, f"malformed report request: {err}"
        if not any(wanted.values()):
            subjects = service.merge_subjects(
                turn.session.subjects or {},
                [{"kind": k, "id": i} for k, i in turn.citations],
            )
            wanted = {key: list(subjects.get(key, []))[:REPORT_SUBJECTS_MAX] for key in wanted}
        if not any(wanted.values()):
            return None, "this conversation names no alert, case or investigation to report on"
        for key, values in wanted.items():
            permission = _READ_FOR[key]
            if values and permission not in turn.principal.permissions:
                return None, f"reading {key.removesuffix('_ids')}s needs {permission.value}"
        async with self.database.session() as db:
            try:
                built = await build_report(
                    db=db,
                    subjects=ReportSubjects(
                        alert_ids=tuple(wanted["alert_ids"]),
                        case_ids=tuple(wanted["case_ids"]),
                        investigation_ids=tuple(wanted["investigation_ids"]),
                    ),
                    title=title,
                    requested_by=turn.principal.username,
                )
            except AuroraError as err:
                return None, failure_text(err)
            report = ChatReport(
                id=await next_id(db, "RPT"),
                session_id=turn.session.id,
                created_by=turn.principal.username,
                created_at=utcnow(),
                title=built.title[:300],
                subjects={
                    "alert_ids": list(built.subjects.alert_ids),
                    "case_ids": list(built.subjects.case_ids),
                    "investigation_ids": list(built.subjects.investigation_ids),
                },
                markdown=built.markdown,
                html=built.html,
                sha256=built.sha256,
            )
            db.add(report)
            await db.commit()
            db.expunge(report)
        return report, None


# -- helpers ------------------------------------------------------------------------------------


class _MarkerFilter:
    """Takes the model's text as it streams, passes on what the user sees, and takes out each
    ``%%REPORT_REQUEST%%`` line (the marker and what follows it on its line)."""

    def __init__(self) -> None:
        self._buffer = ""
        self._in_request = False
        self.requests: list[str] = []

    def feed(self, text: str) -> str:
        self._buffer += text
        out: list[str] = []
        while self._buffer:
            if self._in_request:
                end = self._buffer.find("\n")
                if end < 0:
                    return "".join(out)
                self.requests[-1] += self._buffer[:end]
                self._buffer = self._buffer[end + 1 :]
                self._in_request = False
                continue
            start = self._buffer.find(REPORT_MARKER)
            if start >= 0:
                out.append(self._buffer[:start])
                self._buffer = self._buffer[start + len(REPORT_MARKER) :]
                self.requests.append("")
                self._in_request = True
                continue
            keep = _partial_suffix(self._buffer, REPORT_MARKER)
            out.append(self._buffer[: len(self._buffer) - keep])
            self._buffer = self._buffer[len(self._buffer) - keep :]
            break
        return "".join(out)

    def finish(self) -> str:
        rest, self._buffer = self._buffer, ""
        if self._in_request:
            self.requests[-1] += rest
            self._in_request = False
            return ""
        return rest


def _partial_suffix(text: str, marker: str) -> int:
    """The length of the longest end of ``text`` that begins ``marker``."""
    for size in range(min(len(text), len(marker) - 1), 0, -1):
        if marker.startswith(text[-size:]):
            return size
    return 0


def _report_request(text: str) -> tuple[str | None, dict[str, list[str]]]:
    """The title and subjects a marker's line names; ValueError saying why it is malformed."""
    body = text.strip()
    wanted: dict[str, list[str]] = {key: [] for key in _REPORT_KEYS}
    if not body:
        return None, wanted
    if len(body) > 20_000:
        raise ValueError("the request is too long")
    try:
        value = json.loads(body)
    except json.JSONDecodeError as err:
        raise ValueError(f"not a JSON object ({err.msg} at char {err.pos})") from err
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    if extra := sorted(set(value) - {"title", *_REPORT_KEYS}):
        raise ValueError(f"unknown field {extra[0]!r}")
    title = value.get("title")
    if title is not None and (not isinstance(title, str) or len(title) > 300):
        raise ValueError("title must be a string of at most 300 characters")
    for key in _REPORT_KEYS:
        ids = value.get(key, [])
        if not isinstance(ids, list) or not all(
            isinstance(i, str) and _ID.fullmatch(i) for i in ids
        ):
            raise ValueError(f"{key} must be a list of platform ids")
        wanted[key] = list(dict.fromkeys(ids))
    if sum(len(ids) for ids in wanted.values()) > REPORT_SUBJECTS_MAX:
        raise ValueError(f"at most {REPORT_SUBJECTS_MAX} subjects")
    return title or None, wanted


def _named(arguments: dict[str, Any]) -> Iterable[str]:
    """What a call's arguments name, lower-cased: platform ids, indicators, and any other
    string value of at least four characters."""
    for value in _leaves(arguments):
        text = value.strip().lower()
        if len(text) < 4:
            continue
        found = [m.group(0).lower() for m in _ID.finditer(value)]
        if len(text) <= 200 or not found:
            found += [ioc.value.lower() for ioc in extract_iocs(value)[:20]]
        yield from found or [text]


def _leaves(value: object) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)


def _select_messages(
    session_id: str, *, role: str | None = None, before: int | None = None, newest: bool = False
) -> Any:
    query = select(ChatMessage).where(ChatMessage.session_id == session_id)
    if role is not None:
        query = query.where(ChatMessage.role == role)
    if before is not None:
        query = query.where(ChatMessage.seq < before)
    if newest:
        return query.order_by(ChatMessage.seq.desc()).limit(HISTORY_MESSAGES)
    return query.order_by(ChatMessage.seq)


def _with_context(message: ChatMessage) -> str:
    parts = [message.content]
    for item in message.context or []:
        parts.append(fence(item["content"], source=f"pasted {item['name']}"))
    return "\n\n".join(parts)


def _tool_content(call: _Call) -> str:
    if call.output is None:
        return _dumps({"error": call.reason or "the tool did not run"})
    rendered = _dumps(call.output.data)
    if len(rendered) > TOOL_OUTPUT_CHARS:
        rendered = rendered[:TOOL_OUTPUT_CHARS] + f"\n[... cut: {len(rendered)} characters]"
    return fence(rendered, source=f"tool {call.tool}")


def _call_event(call: _Call) -> dict[str, Any]:
    return {
        "id": call.id,
        "name": call.tool,
        "arguments": call.arguments,
        "provenance": call.provenance,
        "status": call.status,
        "reason": call.reason,
    }


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
