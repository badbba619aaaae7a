"""The specialist catalogue: which agents exist, where their code is, and their port order."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agents.runtime.specialist import Specialist

SPECIALISTS: dict[str, str] = {
    "threat_intel": "agents.threat_intel.agent:ThreatIntel",
    "malware": "agents.malware.agent:Malware",
    "network": "agents.network.agent:Network",
    "endpoint": "agents.endpoint.agent:Endpoint",
    "responder": "agents.responder.agent:Responder",
    "hunter": "agents.hunter.agent:Hunter",
}
"""Agent name → ``module:Class``, in port order (``agent_base_port`` + position)."""


def load_specialist(name: str) -> type[Specialist]:
    """The class of specialist ``name``; KeyError for one not in the catalogue."""
    module, _, attribute = SPECIALISTS[name].partition(":")
    cls: type[Specialist] = getattr(importlib.import_module(module), attribute)
    return cls
