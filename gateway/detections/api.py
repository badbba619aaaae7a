"""What other gateway domains may use of detections (they never import its services)."""

from gateway.detections.conversion import CONVERSION_ERRORS, SigmaConverter
from gateway.detections.events import ENTITY_FIELDS
from gateway.detections.rules import EnabledRule, enabled_rules, promote_event
from gateway.detections.schemas import PromoteRequest, RuleRead

__all__ = [
    "CONVERSION_ERRORS",
    "ENTITY_FIELDS",
    "EnabledRule",
    "PromoteRequest",
    "RuleRead",
    "SigmaConverter",
    "enabled_rules",
    "promote_event",
]
