"""What other gateway domains may call in alerts (they never import its service)."""

from gateway.alerts.service import (
    create_alert,
    get_alert,
    normalise_entities,
    promote_alert,
    update_alert,
)

__all__ = ["create_alert", "get_alert", "normalise_entities", "promote_alert", "update_alert"]
