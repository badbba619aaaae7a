"""What other gateway domains may call in alerts (they never import its service)."""

from gateway.alerts.service import (
    acknowledge_alert,
    create_alert,
    get_alert,
    link_alert,
    list_alerts,
    normalise_entities,
    promote_alert,
    stage_alerts,
    update_alert,
)

__all__ = [
    "acknowledge_alert",
    "create_alert",
    "get_alert",
    "link_alert",
    "list_alerts",
    "normalise_entities",
    "promote_alert",
    "stage_alerts",
    "update_alert",
]
