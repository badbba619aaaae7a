"""Shapes every domain shares: the severity scale, tags, pages and the page query.

One definition each, so an API field, a finding, a feed entry and a stored row all mean the
same thing by ``"high"`` or by a page of ``limit`` items from ``offset``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Annotated, Any, Final

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from core.validation import INTEGER_MAX


class Severity(StrEnum):
    """The platform's severity scale. Members compare by rank (``LOW < HIGH``), not by
    spelling; they are plain strings on the wire and in the database."""

    INFORMATIONAL = "informational"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """Position on the scale: 0 for informational up to 4 for critical."""
        return SEVERITY_RANK[self]

    @classmethod
    def highest(cls, values: Iterable[str], default: Severity | None = None) -> Severity:
        """The highest of ``values`` (strings of the scale); ``default`` (else informational)
        when there are none."""
        found = [cls(value) for value in values]
        return max(found) if found else (default or cls.INFORMATIONAL)

    def and_above(self) -> list[str]:
        """This severity and every one above it (a filter for "at least this severe")."""
        return [member.value for member in Severity if member >= self]

    def _other_rank(self, other: object) -> int:
        if isinstance(other, Severity):
            return SEVERITY_RANK[other]
        if isinstance(other, str):
            return SEVERITY_RANK[Severity(other)]
        raise TypeError(f"cannot order Severity against {type(other).__name__}")

    def __lt__(self, other: object) -> bool:
        return SEVERITY_RANK[self] < self._other_rank(other)

    def __le__(self, other: object) -> bool:
        return SEVERITY_RANK[self] <= self._other_rank(other)

    def __gt__(self, other: object) -> bool:
        return SEVERITY_RANK[self] > self._other_rank(other)

    def __ge__(self, other: object) -> bool:
        return SEVERITY_RANK[self] >= self._other_rank(other)


SEVERITY_RANK: Final[dict[str, int]] = {member.value: rank for rank, member in enumerate(Severity)}
"""``{"informational": 0, ..., "critical": 4}``: for sorting rows and SQL ``CASE`` orders."""


TAG: Final = re.compile(r"^[a-z0-9][a-z0-9._:/@+-]{0,63}$")
MAX_TAGS: Final = 50


def clean_tags(tags: Iterable[str]) -> list[str]:
    """Lower-cased, deduplicated, sorted; letters, digits and ``._:/@+-`` only (1-64 each)."""
    cleaned = sorted({t.strip().lower() for t in tags})
    bad = [t for t in cleaned if not TAG.match(t)]
    if bad:
        raise ValueError(f"invalid tag(s) {bad[:3]}: use 1-64 of a-z 0-9 . _ : / @ + -")
    return cleaned


Tags = Annotated[list[str], Field(max_length=MAX_TAGS), AfterValidator(clean_tags)]
"""A field of tags (at most 50), cleaned by :func:`clean_tags`."""

Version = Annotated[int, Field(ge=1, le=INTEGER_MAX)]
"""The version a change was made against; a stale one is AURORA-4090."""

Offset = Annotated[int, Field(ge=0, le=INTEGER_MAX)]
Limit = Annotated[int, Field(ge=1, le=500)]


class PageQuery(BaseModel):
    """``?limit=&offset=``: what every list route takes, and what a domain's list query
    extends with its filters."""

    model_config = ConfigDict(extra="forbid")

    limit: Limit = 50
    offset: Offset = 0


class Page[T](BaseModel):
    """One page of a list: its items, how many match in all, and the page asked for."""

    items: list[T]
    total: int
    limit: int
    offset: int

    @classmethod
    def of(
        cls,
        rows: Iterable[Any],
        total: int,
        query: PageQuery,
        read: Callable[[Any], T] | None = None,
    ) -> Page[T]:
        """The page of ``rows`` (``read`` turns each into an item; by default the item model
        validates it, from attributes where it allows)."""
        if read is None:
            return cls.model_validate(
                {"items": list(rows), "total": total, "limit": query.limit, "offset": query.offset}
            )
        return cls(
            items=[read(row) for row in rows], total=total, limit=query.limit, offset=query.offset
        )
