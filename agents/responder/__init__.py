"""responder: a guardrail-checked response plan from other specialists' findings."""
