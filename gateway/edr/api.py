"""What other gateway domains may call in EDR (they never import its service)."""

from gateway.edr.service import TOPIC, EdrService, find_endpoint, host_key, open_edr
from tools.edr.base import EdrAction

__all__ = ["TOPIC", "EdrAction", "EdrService", "find_endpoint", "host_key", "open_edr"]
