"""HandoffTool: an agent method as a langchain-core tool, its argument schema from the card."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from langchain_core.tools import BaseTool

from agents.acp.client import CallOptions, HandoffClient

BUILTIN_METHODS = frozenset({"agent.card", "agent.health"})


def tool_name(agent: str, method: str) -> str:
    """A tool name LLM APIs accept (``^[a-zA-Z0-9_-]{1,64}$``)."""
    return re.sub(r"[^a-zA-Z0-9_-]", "_", f"{agent}__{method}")[:64]


class HandoffTool(BaseTool):
    """Calls one method of one specialist through the :class:`HandoffClient`."""

    client: Any
    agent: str
    method: str
    options: CallOptions = CallOptions()

    async def _arun(self, **kwargs: Any) -> Any:
        handoff: HandoffClient = self.client
        return await handoff.call(self.agent, self.method, kwargs, self.options)

    def _run(self, **kwargs: Any) -> Any:
        """Synchronous use, from code that has no event loop running."""
        return asyncio.run(self._arun(**kwargs))

    def with_options(self, options: CallOptions) -> HandoffTool:
        """The same tool carrying an investigation's routing metadata."""
        return self.model_copy(update={"options": options})


async def handoff_tools(client: HandoffClient, agent: str) -> list[HandoffTool]:
    """One tool per method of ``agent``, described and typed from its ``agent.card``."""
    card = await client.call(agent, "agent.card")
    tools = []
    for method in card["methods"]:
        if method["name"] in BUILTIN_METHODS:
            continue
        schema = method.get("params_schema") or {"type": "object", "properties": {}}
        tools.append(
            HandoffTool(
                name=tool_name(agent, method["name"]),
                description=f"{card['description']} — {method['description']}".strip(" —"),
                args_schema=schema,
                client=client,
                agent=agent,
                method=method["name"],
            )
        )
    return tools
