"""Wire models of the fleet routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.schemas import PageQuery
from gateway.streams import StreamQuery


class AgentTool(BaseModel):
    name: str
    description: str
    params_schema: dict[str, Any] | None
    result_schema: dict[str, Any] | None


class AgentTools(BaseModel):
    agent: str
    urls: list[str]
    version: str
    description: str
    backend: dict[str, Any]
    prompt_versions: dict[str, str]
    tools: list[AgentTool]


class ToolCallRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    agent: str
    request_id: str | None
    investigation_id: str | None
    tool: str
    arguments: dict[str, Any]
    result_summary: str
    duration_ms: float
    created_at: datetime


class ToolCallQuery(PageQuery):
    investigation_id: str | None = Field(default=None, max_length=128)
    tool: str | None = Field(default=None, max_length=128)


class ToolCallStreamQuery(StreamQuery):
    investigation_id: str | None = None
    """Only the tool calls made for this investigation."""


class InferenceStatus(BaseModel):
    backend: Literal["none", "openai-compatible"]
    """``none`` (built-in analysis only) or ``openai-compatible`` (vLLM or a hosted API)."""
    base_url: str | None
    model: str | None
    reachable: bool
    latency_ms: float | None
    models: list[str]
    model_served: bool
    detail: str | None = None


class McpHealth(BaseModel):
    status: Literal["ok", "down"]
    """``ok`` when the MCP server answered a tool listing, else ``down``."""
    url: str
    server_name: str | None = None
    server_version: str | None = None
    tools: list[str] = Field(default_factory=list)
    latency_ms: float | None = None
    detail: str | None = None
