"""Sigma rules → ClickHouse SQL over AuroraSOC's log table, with pySigma.

``convert(text)`` parses and validates a rule (AURORA-4222 with pySigma's messages when it is
invalid), maps its fields onto the table (:mod:`tools.sigma.pipeline`) and returns the boolean
condition the store puts in ``WHERE``, with the rule's metadata; correlation rules come with a
``GROUP BY``/``HAVING`` aggregation. Every condition is scoped to the rule's logsource
(:mod:`tools.sigma.logsource`). Every value is written as an escaped literal
(:mod:`tools.sigma.sql`).
"""

from tools.sigma.backend import AuroraClickhouseBackend, Target, resolve_field
from tools.sigma.convert import (
    Conversion,
    Correlation,
    RuleMeta,
    check_logsource,
    convert,
    convert_all,
    logsource_refused,
    parse_rule,
)
from tools.sigma.logsource import LOGSOURCES, Branch, Scope, scope_of, unmapped_reason
from tools.sigma.pipeline import aurora_pipeline, field_mapping

__all__ = [
    "LOGSOURCES",
    "AuroraClickhouseBackend",
    "Branch",
    "Conversion",
    "Correlation",
    "RuleMeta",
    "Scope",
    "Target",
    "aurora_pipeline",
    "check_logsource",
    "convert",
    "convert_all",
    "field_mapping",
    "logsource_refused",
    "parse_rule",
    "resolve_field",
    "scope_of",
    "unmapped_reason",
]
