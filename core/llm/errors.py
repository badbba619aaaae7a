"""Errors of the LLM backend: a reply the model gave that the caller cannot use.

Every one is an :class:`~core.errors.LLMUnavailable` (AURORA-5031), so a specialist that falls
back to its built-in analysis when the LLM is down catches a useless reply with the same
``except``; a caller that wants to tell them apart catches the subclass. ``detail`` is safe to
show (it never quotes the model's text, which may echo prompts or pasted data); the raw text is
kept on the exception for logs.
"""

from __future__ import annotations

from typing import Any, Literal

from core.errors import LLMUnavailable

StructuredFailure = Literal["empty", "refused", "truncated", "invalid_json", "schema_violation"]


class LLMOutputError(LLMUnavailable):
    """The endpoint answered, but the reply is unusable (malformed, truncated, off-schema)."""

    message = "LLM returned an unusable reply"


class ToolArgumentsInvalid(LLMOutputError):
    """A tool call whose ``arguments`` are not a JSON object (raised when they are read)."""

    message = "LLM produced invalid tool-call arguments"

    def __init__(
        self, *, tool_call_id: str, tool_name: str, raw_arguments: str, reason: str
    ) -> None:
        self.tool_call_id = tool_call_id
        self.tool_name = tool_name
        self.raw_arguments = raw_arguments
        self.reason = reason
        super().__init__(f"arguments of tool call {tool_call_id!r} to {tool_name!r}: {reason}")


class StructuredOutputInvalid(LLMOutputError):
    """A reply that should match a pydantic model does not: see ``failure`` and ``errors``."""

    message = "LLM reply does not match the expected schema"

    def __init__(
        self,
        *,
        schema_name: str,
        failure: StructuredFailure,
        reason: str,
        raw: str | None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        self.schema_name = schema_name
        self.failure: StructuredFailure = failure
        self.raw = raw
        self.errors = list(errors or [])
        super().__init__(f"reply for {schema_name}: {reason}")
