"""The LLM backend: an OpenAI-compatible endpoint (vLLM locally, or a hosted API), or none.

``LLMBackend.from_settings(settings)`` is None when no endpoint is configured: agents then run
their built-in analysis. Every failure to get a usable answer is an ``LLMUnavailable``
(AURORA-5031), so one ``except`` is enough to fall back.
"""

from core.llm.backend import (
    CompletionStream,
    LLMBackend,
    ToolChoice,
    response_format,
    validate_reply,
)
from core.llm.errors import LLMOutputError, StructuredOutputInvalid, ToolArgumentsInvalid
from core.llm.tool_loop import ToolExecution, ToolLoopResult, run_tool_loop
from core.llm.types import (
    Completion,
    HealthReport,
    Message,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolHandler,
    Usage,
    system_message,
    tool_message,
    user_message,
)

__all__ = [
    "Completion",
    "CompletionStream",
    "HealthReport",
    "LLMBackend",
    "LLMOutputError",
    "Message",
    "StructuredOutputInvalid",
    "Tool",
    "ToolArgumentsInvalid",
    "ToolCall",
    "ToolCallDelta",
    "ToolChoice",
    "ToolExecution",
    "ToolHandler",
    "ToolLoopResult",
    "Usage",
    "response_format",
    "run_tool_loop",
    "system_message",
    "tool_message",
    "user_message",
    "validate_reply",
]
