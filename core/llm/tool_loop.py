"""The tool-calling loop agents run: ask the model, run the tools it calls, feed the results
back, until it answers (or its tool budget is spent), with every call paired with its result."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, overload

from pydantic import BaseModel, ValidationError
from pydantic_core import to_jsonable_python

from core.errors import AuroraError
from core.llm.backend import LLMBackend, validate_reply
from core.llm.errors import LLMOutputError, StructuredOutputInvalid, ToolArgumentsInvalid
from core.llm.fence import fence
from core.llm.types import Completion, Message, Tool, ToolCall, Usage, tool_message

DEFAULT_MAX_OUTPUT_CHARS = 16_000


@dataclass(frozen=True, slots=True)
class ToolExecution:
    """One tool call the loop handled: the tool's output (or the error reported in its place)
    as the model was shown it, fenced (:func:`core.llm.fence.fence`), and whether it worked."""

    call: ToolCall
    output: str
    ok: bool
    latency_ms: float


@dataclass(frozen=True, slots=True)
class ToolLoopResult[P]:
    """The final completion, the whole transcript (the input messages, then each assistant turn
    followed by one tool message per call it made), every tool execution in order, and the
    tokens and model calls it took."""

    final: Completion[P]
    transcript: list[Message]
    executions: tuple[ToolExecution, ...]
    usage: Usage
    model_calls: int


@overload
async def run_tool_loop(
    backend: LLMBackend,
    messages: Sequence[Message],
    tools: Sequence[Tool],
    *,
    max_steps: int = 6,
    response_model: None = None,
    max_tokens: int | None = None,
    max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
) -> ToolLoopResult[None]: ...


@overload
async def run_tool_loop[M: BaseModel](
    backend: LLMBackend,
    messages: Sequence[Message],
    tools: Sequence[Tool],
    *,
    max_steps: int = 6,
    response_model: type[M],
    max_tokens: int | None = None,
    max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
) -> ToolLoopResult[M]: ...


async def run_tool_loop(
    backend: LLMBackend,
    messages: Sequence[Message],
    tools: Sequence[Tool],
    *,
    max_steps: int = 6,
    response_model: type[BaseModel] | None = None,
    max_tokens: int | None = None,
    max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
) -> ToolLoopResult[Any]:
    """Run the model with ``tools`` for at most ``max_steps`` rounds of tool calls.

    The calls of one reply run concurrently; their results are appended in the order the model
    made them, each as a ``tool`` message with its ``tool_call_id``. What the model can correct
    is reported back to it as the tool's result, not raised: an unknown tool, arguments that are
    not a JSON object, a handler's pydantic ``ValidationError``, a handler's :class:`AuroraError`.
    Other exceptions from a handler propagate. Outputs longer than ``max_output_chars`` are cut.
    Every result goes back fenced as untrusted data (:func:`core.llm.fence.fence`): a tool's
    output is whatever its source wrote (a WHOIS record, a log line, a feed's description), so
    nothing in it can end the fence or pass for an instruction of the prompt's.

    When the model stops calling tools, that reply is final. With ``response_model`` it must be
    JSON of that model; if it is not, the answer is asked for once more with the schema enforced
    (``response_format``), and :class:`StructuredOutputInvalid` is raised when that fails too.
    When the budget is spent and the model still calls tools, one last answer is asked for with
    ``tool_choice="none"``. So the model is called at most ``max_steps + 1`` times.
    """
    if max_steps < 1:
        raise ValueError("max_steps must be at least 1")
    by_name = {tool.name: tool for tool in tools}
    if len(by_name) != len(tools):
        raise ValueError("tool names must be unique")
    if missing := sorted(tool.name for tool in tools if tool.handler is None):
        raise ValueError(f"tools without a handler: {missing}")

    transcript: list[Message] = [dict(message) for message in messages]
    executions: list[ToolExecution] = []
    usage = Usage()
    model_calls = 0

    def result(final: Completion[Any]) -> ToolLoopResult[Any]:
        transcript.append(final.as_message())
        return ToolLoopResult(final, transcript, tuple(executions), usage, model_calls)

    for _ in range(max_steps):
        reply = await backend.complete(transcript, tools=tools, max_tokens=max_tokens)
        usage += reply.usage
        model_calls += 1
        if not reply.tool_calls:
            if response_model is None:
                return result(reply)
            try:
                parsed = validate_reply(
                    response_model, reply.text, finish_reason=reply.finish_reason
                )
            except StructuredOutputInvalid:
                break  # ask again below, this time with the schema enforced
            return result(
                Completion(
                    reply.text,
                    reply.tool_calls,
                    parsed,
                    reply.usage,
                    reply.model,
                    reply.latency_ms,
                    reply.finish_reason,
                )
            )
        transcript.append(reply.as_message())
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(_execute(call, by_name, max_output_chars))
                    for call in reply.tool_calls
                ]
        except ExceptionGroup as failed:
            # A handler bug: surface it as itself (the group has cancelled its siblings).
            raise failed.exceptions[0] from None
        for call, task in zip(reply.tool_calls, tasks, strict=True):
            execution = task.result()
            executions.append(execution)
            transcript.append(
                tool_message(call.id, fence(execution.output, source=f"tool {call.name}"))
            )

    final: Completion[Any]
    if response_model is None:
        final = await backend.complete(
            transcript, tools=tools, tool_choice="none", max_tokens=max_tokens
        )
    else:
        final = await backend.complete(
            transcript,
            tools=tools,
            tool_choice="none",
            response_model=response_model,
            max_tokens=max_tokens,
        )
    usage += final.usage
    model_calls += 1
    if final.tool_calls:
        raise LLMOutputError("the model kept calling tools after its tool budget was spent")
    return result(final)


async def _execute(call: ToolCall, tools: dict[str, Tool], max_output_chars: int) -> ToolExecution:
    started = time.perf_counter()
    ok = False
    tool = tools.get(call.name)
    if tool is None or tool.handler is None:
        output = _error(f"unknown tool {call.name!r}; available: {sorted(tools)}")
    else:
        try:
            value = await tool.handler(call.arguments)
        except ToolArgumentsInvalid as err:
            output = _error(f"invalid arguments: {err.reason}")
        except ValidationError as err:
            problems = [
                {"loc": list(error["loc"]), "msg": error["msg"]}
                for error in err.errors(include_url=False, include_input=False)
            ]
            output = _error("invalid arguments", details=problems)
        except AuroraError as err:
            output = _error(err.message, code=err.code, detail=err.detail)
        else:
            output = value if isinstance(value, str) else _dumps(value)
            ok = True
    if len(output) > max_output_chars:
        output = output[:max_output_chars] + f"\n[... cut: {len(output)} characters in all]"
    return ToolExecution(call, output, ok, (time.perf_counter() - started) * 1000)


def _error(message: str, **extra: Any) -> str:
    return _dumps({"error": {"message": message, **extra}})


def _dumps(value: object) -> str:
    return json.dumps(to_jsonable_python(value, fallback=str), ensure_ascii=False)
