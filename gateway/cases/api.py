"""What other gateway domains may call in cases (they never import its service)."""

from gateway.cases.service import (
    add_comment,
    add_observable,
    attach_observables,
    create_case,
    get_case,
    list_observables,
    open_case,
    record_link,
    update_case,
)

__all__ = [
    "add_comment",
    "add_observable",
    "attach_observables",
    "create_case",
    "get_case",
    "list_observables",
    "open_case",
    "record_link",
    "update_case",
]
