"""What other gateway domains may use of detections (they never import its service)."""

from gateway.detections.service import ENTITY_FIELDS

__all__ = ["ENTITY_FIELDS"]
