"""EDR: the endpoint inventory (logs and connectors) and containment through the connectors."""
