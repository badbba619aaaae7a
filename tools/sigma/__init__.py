"""Sigma rules → ClickHouse SQL over AuroraSOC's log table, with pySigma.

``convert(text)`` parses and validates a rule (AURORA-4222 with pySigma's messages when it is
invalid), maps its fields onto the table (:mod:`tools.sigma.pipeline`) and returns the boolean
condition the store puts in ``WHERE``, with the rule's metadata; correlation rules come with a
``GROUP BY``/``HAVING`` aggregation. Every value is written as an escaped literal
(:mod:`tools.sigma.sql`).
"""

from tools.sigma.backend import AuroraClickhouseBackend, Target, resolve_field
from tools.sigma.convert import (
    Conversion,
    Correlation,
    RuleMeta,
    convert,
    convert_all,
    parse_rule,
)
from tools.sigma.pipeline import aurora_pipeline, field_mapping

__all__ = [
    "AuroraClickhouseBackend",
    "Conversion",
    "Correlation",
    "RuleMeta",
    "Target",
    "aurora_pipeline",
    "convert",
    "convert_all",
    "field_mapping",
    "parse_rule",
    "resolve_field",
]
