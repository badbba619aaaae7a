"""Wire and storage models of the threat-intel store: indicators, matches and import reports."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.schemas import Severity

_TECHNIQUE = re.compile(r"T\d{4}(?:\.\d{3})?")


class IndicatorType(StrEnum):
    """Indicator types, the same names as ``tools.ioc.Ioc.type``."""

    IP = "ip"
    DOMAIN = "domain"
    URL = "url"
    EMAIL = "email"
    HASH = "hash"
    CVE = "cve"
    REGISTRY_KEY = "registry_key"
    ATTACK_TECHNIQUE = "attack_technique"


Confidence = Annotated[int, Field(ge=0, le=100)]


class Indicator(BaseModel):
    """One indicator as a feed states it, ready for :meth:`IntelStore.upsert`.

    ``value`` is normalised by the store; ``first_seen``/``last_seen`` default to the time of
    the upsert. An ``ip`` value may be a network (``10.0.0.0/8``), which then matches every
    address inside it.
    """

    model_config = ConfigDict(frozen=True)

    type: IndicatorType
    value: Annotated[str, Field(min_length=1, max_length=8192)]
    source: Annotated[str, Field(min_length=1, max_length=200)]
    confidence: Confidence = 50
    severity: Severity | None = None
    tags: frozenset[str] = frozenset()
    description: str | None = None
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    valid_until: datetime | None = None
    techniques: frozenset[str] = frozenset()
    """ATT&CK technique ids (``T1566``, ``T1566.001``)."""
    threat_actors: frozenset[str] = frozenset()
    malware_families: frozenset[str] = frozenset()
    reference: str | None = None
    """The feed's id of the object: STIX indicator id, MISP event uuid, CSV row reference."""

    @field_validator("techniques")
    @classmethod
    def _technique_ids(cls, values: frozenset[str]) -> frozenset[str]:
        ids = frozenset(value.strip().upper() for value in values)
        if bad := sorted(i for i in ids if not _TECHNIQUE.fullmatch(i)):
            raise ValueError(f"not ATT&CK technique ids: {', '.join(bad)[:200]}")
        return ids

    @field_validator("tags", "threat_actors", "malware_families")
    @classmethod
    def _names(cls, values: frozenset[str]) -> frozenset[str]:
        return frozenset(value.strip() for value in values if value.strip())


class IntelRecord(BaseModel):
    """One stored indicator: what one source says about one value, merged over imports."""

    model_config = ConfigDict(frozen=True)

    id: int
    type: IndicatorType
    value: str
    subtype: str | None
    """``ipv4``/``ipv6`` (``-network`` appended for a range) or the hash algorithm."""
    source: str
    confidence: Confidence
    severity: Severity | None
    tags: tuple[str, ...]
    description: str | None
    first_seen: datetime
    last_seen: datetime
    valid_until: datetime | None
    techniques: tuple[str, ...]
    threat_actors: tuple[str, ...]
    malware_families: tuple[str, ...]
    reference: str | None


class MatchKind(StrEnum):
    """How a stored record matched a looked-up value."""

    EXACT = "exact"
    CIDR = "cidr"
    """The record is a network that contains the looked-up address (or smaller network)."""
    PARENT_DOMAIN = "parent_domain"
    """The record is a parent domain of the looked-up domain."""


class IntelMatch(BaseModel):
    """A stored record that matched a lookup, and how."""

    model_config = ConfigDict(frozen=True)

    match: MatchKind
    expired: bool
    """True when the record's ``valid_until`` has passed: reported, never dropped."""
    record: IntelRecord


class LookupResult(BaseModel):
    """The answer for one value of :meth:`IntelStore.lookup_many`."""

    model_config = ConfigDict(frozen=True)

    type: str
    value: str
    """As the caller gave it."""
    normalised: str | None
    """The normalised value that was looked up; None when the value is invalid."""
    matches: tuple[IntelMatch, ...] = ()
    error: str | None = None
    """Why the value could not be looked up (invalid type or value)."""


class SkippedItem(BaseModel):
    """One part of a feed that was not imported, and why."""

    model_config = ConfigDict(frozen=True)

    where: str
    """``line 7``, ``indicator--…``, ``Attribute[3] 5f1c…``: enough to find it in the feed."""
    reason: str


class ImportReport(BaseModel):
    """What one feed import did to the store."""

    source: str
    imported: int = 0
    """Indicators new to the store for this source."""
    updated: int = 0
    """Indicators this source already had, merged."""
    skipped: list[SkippedItem] = Field(default_factory=list)

    def skip(self, where: str, reason: str) -> None:
        """Record a part of the feed that was not imported."""
        self.skipped.append(SkippedItem(where=where, reason=reason))


class IntelStats(BaseModel):
    """Counts of stored indicators."""

    total: int
    expired: int
    by_source: dict[str, int]
    by_type: dict[str, int]
    by_source_and_type: dict[str, dict[str, int]]
