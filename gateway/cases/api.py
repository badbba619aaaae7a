"""What other gateway domains may call in cases (they never import its service)."""

from gateway.cases.service import (
    attach_observables,
    get_case,
    list_observables,
    open_case,
    record_link,
)

__all__ = ["attach_observables", "get_case", "list_observables", "open_case", "record_link"]
