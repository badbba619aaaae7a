"""What other gateway domains may call in investigations (they never import its service)."""

from gateway.investigations.service import detected, enqueue

__all__ = ["detected", "enqueue"]
