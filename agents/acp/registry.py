"""Where agents are: name → one or more WebSocket URLs, from settings."""

from __future__ import annotations

from dataclasses import dataclass

from agents.catalog import SPECIALISTS
from core.errors import AgentNotFound
from core.settings import Settings


@dataclass(frozen=True, slots=True)
class AgentRegistry:
    """Agent name → WebSocket URLs (several for replicas, called round-robin)."""

    endpoints: dict[str, tuple[str, ...]]

    @classmethod
    def from_settings(cls, settings: Settings) -> AgentRegistry:
        """Every specialist at ``agent_host:agent_base_port+i``, then ``agent_urls`` on top."""
        host = f"[{settings.agent_host}]" if ":" in settings.agent_host else settings.agent_host
        endpoints: dict[str, tuple[str, ...]] = {
            name: (f"ws://{host}:{settings.agent_base_port + index}",)
            for index, name in enumerate(SPECIALISTS)
        }
        for name, urls in settings.agent_urls.items():
            endpoints[name] = tuple(urls)
        return cls(endpoints)

    def names(self) -> list[str]:
        return list(self.endpoints)

    def urls(self, name: str) -> tuple[str, ...]:
        """The URLs of ``name``; AURORA-4043 for an agent nobody configured."""
        urls = self.endpoints.get(name)
        if not urls:
            raise AgentNotFound({"agent": name})
        return urls

    def port_of(self, name: str) -> int:
        """The port ``name``'s first URL names (where ``aurora agent run`` listens)."""
        url = self.urls(name)[0]
        return int(url.rsplit(":", 1)[1].split("/", 1)[0])
