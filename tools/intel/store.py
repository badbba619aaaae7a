"""The threat-intel store: indicators from feeds, merged per source, in one SQLite file.

:class:`IntelStore` is synchronous (stdlib ``sqlite3``): an agent runs it off its event loop,
through :class:`AsyncIntelStore`, which wraps every method in ``asyncio.to_thread``. One
connection serves every thread, behind a lock, so ``:memory:`` stores work too.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from core.errors import ValidationFailed
from core.schemas import Severity
from tools.intel.models import (
    Indicator,
    IndicatorType,
    IntelMatch,
    IntelRecord,
    IntelStats,
    LookupResult,
    MatchKind,
)
from tools.intel.normalise import Normalised, containing_networks, normalise, parent_domains

Clock = Callable[[], datetime]
UpsertOutcome = Literal["inserted", "updated"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS indicators (
    id INTEGER PRIMARY KEY,
    type TEXT NOT NULL,
    value TEXT NOT NULL,
    subtype TEXT,
    source TEXT NOT NULL,
    confidence INTEGER NOT NULL,
    severity TEXT,
    tags TEXT NOT NULL,
    description TEXT,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    valid_until TEXT,
    techniques TEXT NOT NULL,
    threat_actors TEXT NOT NULL,
    malware_families TEXT NOT NULL,
    reference TEXT,
    UNIQUE (type, value, source)
);
CREATE INDEX IF NOT EXISTS ix_indicators_source ON indicators (source);
"""
# UNIQUE (type, value, source) is also the lookup index: lookups filter on (type, value).

_SELECT_ONE = (
    "SELECT id, type, value, subtype, source, confidence, severity, tags, description,"
    " first_seen, last_seen, valid_until, techniques, threat_actors, malware_families, reference"
    " FROM indicators WHERE type = ? AND value = ? AND source = ?"
)
# One JSON array parameter for any number of candidate values (json_each: SQLite >= 3.38,
# or any build with JSON1), so the statement text never varies.
_SELECT_ANY = (
    "SELECT id, type, value, subtype, source, confidence, severity, tags, description,"
    " first_seen, last_seen, valid_until, techniques, threat_actors, malware_families, reference"
    " FROM indicators WHERE type = ? AND value IN (SELECT value FROM json_each(?))"
)
_INSERT = (
    "INSERT INTO indicators (type, value, subtype, source, confidence, severity, tags,"
    " description, first_seen, last_seen, valid_until, techniques, threat_actors,"
    " malware_families, reference) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _utc(moment: datetime) -> datetime:
    # A naive timestamp from a feed is taken as UTC, the convention of every feed format here.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _text(moment: datetime) -> str:
    # One fixed-width UTC form, so that text order in SQL is time order.
    return _utc(moment).isoformat(timespec="microseconds")


def _json(values: Iterable[str]) -> str:
    return json.dumps(sorted(set(values)))


def _record(row: sqlite3.Row) -> IntelRecord:
    return IntelRecord(
        id=row["id"],
        type=IndicatorType(row["type"]),
        value=row["value"],
        subtype=row["subtype"],
        source=row["source"],
        confidence=row["confidence"],
        severity=Severity(row["severity"]) if row["severity"] else None,
        tags=tuple(json.loads(row["tags"])),
        description=row["description"],
        first_seen=datetime.fromisoformat(row["first_seen"]),
        last_seen=datetime.fromisoformat(row["last_seen"]),
        valid_until=datetime.fromisoformat(row["valid_until"]) if row["valid_until"] else None,
        techniques=tuple(json.loads(row["techniques"])),
        threat_actors=tuple(json.loads(row["threat_actors"])),
        malware_families=tuple(json.loads(row["malware_families"])),
        reference=row["reference"],
    )


def _merged_severity(old: str | None, new: Severity | None) -> str | None:
    if new is None:
        return old
    if old is None or new > old:
        return new.value
    return old


def _merged_valid_until(old: str | None, new: datetime | None) -> str | None:
    # No expiry (None) is the longest validity: a merge never shortens what a source said.
    if old is None or new is None:
        return None
    return max(old, _text(new))


class IntelStore:
    """Indicators keyed by (type, normalised value, source), in SQLite at ``path``.

    Upsert merges what one source says again about one value: ``first_seen`` keeps the
    earliest, ``last_seen`` advances, tags, techniques, actors and families are unioned,
    confidence and severity keep the highest, validity the longest, and a new description or
    reference replaces the old one. Different sources never merge: a lookup returns one record
    per source. Thread-safe; blocking (see :class:`AsyncIntelStore`).
    """

    def __init__(self, path: Path | str = ":memory:", *, clock: Clock | None = None) -> None:
        self._clock: Clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        # check_same_thread=False: asyncio.to_thread runs calls on pool threads; the lock
        # serialises them.
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        with self._lock:
            if str(path) != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the database; the store is unusable afterwards."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- writes ------------------------------------------------------------------------------

    def upsert(self, indicator: Indicator) -> UpsertOutcome:
        """Add or merge one indicator; ValidationFailed (nothing written) for an invalid value."""
        return self.upsert_many([indicator])[0]

    def upsert_many(self, indicators: Sequence[Indicator]) -> list[UpsertOutcome]:
        """Add or merge indicators in one transaction: all are written, or none.

        Raises ValidationFailed, writing nothing, when any value is invalid for its type.
        """
        normalised = [self._normalised(indicator) for indicator in indicators]
        now = self._clock()
        outcomes: list[UpsertOutcome] = []
        with self._transaction() as db:
            for indicator, canonical in zip(indicators, normalised, strict=True):
                outcomes.append(self._upsert_one(db, indicator, canonical, now))
        return outcomes

    @staticmethod
    def _normalised(indicator: Indicator) -> Normalised:
        try:
            return normalise(indicator.type, indicator.value)
        except ValueError as err:
            raise ValidationFailed(
                {"type": indicator.type.value, "value": indicator.value[:200], "reason": str(err)}
            ) from err

    def _upsert_one(
        self, db: sqlite3.Connection, new: Indicator, canonical: Normalised, now: datetime
    ) -> UpsertOutcome:
        first_seen = _text(new.first_seen or new.last_seen or now)
        last_seen = _text(new.last_seen or new.first_seen or now)
        first_seen, last_seen = min(first_seen, last_seen), max(first_seen, last_seen)
        key = (canonical.type.value, canonical.value, new.source)
        old = db.execute(_SELECT_ONE, key).fetchone()
        if old is None:
            db.execute(
                _INSERT,
                (
                    *key[:2],
                    canonical.subtype,
                    new.source,
                    new.confidence,
                    new.severity.value if new.severity else None,
                    _json(new.tags),
                    new.description,
                    first_seen,
                    last_seen,
                    _text(new.valid_until) if new.valid_until else None,
                    _json(new.techniques),
                    _json(new.threat_actors),
                    _json(new.malware_families),
                    new.reference,
                ),
            )
            return "inserted"
        db.execute(
            "UPDATE indicators SET confidence = ?, severity = ?, tags = ?, description = ?,"
            " first_seen = ?, last_seen = ?, valid_until = ?, techniques = ?, threat_actors = ?,"
            " malware_families = ?, reference = ? WHERE id = ?",
            (
                max(old["confidence"], new.confidence),
                _merged_severity(old["severity"], new.severity),
                _json([*json.loads(old["tags"]), *new.tags]),
                new.description or old["description"],
                min(old["first_seen"], first_seen),
                max(old["last_seen"], last_seen),
                _merged_valid_until(old["valid_until"], new.valid_until),
                _json([*json.loads(old["techniques"]), *new.techniques]),
                _json([*json.loads(old["threat_actors"]), *new.threat_actors]),
                _json([*json.loads(old["malware_families"]), *new.malware_families]),
                new.reference or old["reference"],
                old["id"],
            ),
        )
        return "updated"

    def delete_source(self, source: str) -> int:
        """Remove every indicator of ``source`` (before a full re-import); returns how many."""
        with self._transaction() as db:
            return db.execute("DELETE FROM indicators WHERE source = ?", (source,)).rowcount

    # -- reads -------------------------------------------------------------------------------

    def lookup(self, type_: IndicatorType | str, value: str) -> list[IntelMatch]:
        """Every record matching ``value``, across sources; ValidationFailed if it is invalid.

        An ip matches itself and every stored network containing it (``cidr``); a domain
        matches itself and its listed parent domains (``parent_domain``); other types match
        exactly. Expired records are returned with ``expired=True``. Order: exact first, then
        the most specific network or nearest parent, then highest confidence.
        """
        try:
            canonical = normalise(type_, value)
        except ValueError as err:
            raise ValidationFailed(
                {"type": str(type_), "value": value[:200], "reason": str(err)}
            ) from err
        with self._lock:
            return self._matches(canonical)

    def lookup_many(self, items: Iterable[tuple[IndicatorType | str, str]]) -> list[LookupResult]:
        """:meth:`lookup` for many (type, value) pairs, in order; an invalid one gets ``error``."""
        results: list[LookupResult] = []
        with self._lock:
            for type_, value in items:
                try:
                    canonical = normalise(type_, value)
                except ValueError as err:
                    results.append(
                        LookupResult(type=str(type_), value=value, normalised=None, error=str(err))
                    )
                    continue
                results.append(
                    LookupResult(
                        type=canonical.type.value,
                        value=value,
                        normalised=canonical.value,
                        matches=tuple(self._matches(canonical)),
                    )
                )
        return results

    def _matches(self, canonical: Normalised) -> list[IntelMatch]:
        # Candidates are the value itself plus the stored forms of everything that would
        # contain it, so every match is an indexed equality lookup.
        candidates: list[tuple[str, MatchKind]] = [(canonical.value, MatchKind.EXACT)]
        if canonical.type is IndicatorType.IP:
            kind = MatchKind.CIDR
            candidates += [(net, kind) for net in containing_networks(canonical.value)]
        elif canonical.type is IndicatorType.DOMAIN:
            kind = MatchKind.PARENT_DOMAIN
            candidates += [(parent, kind) for parent in parent_domains(canonical.value)]
        rank = {value: (position, kind) for position, (value, kind) in enumerate(candidates)}
        rows = self._db.execute(
            _SELECT_ANY, (canonical.type.value, json.dumps([value for value, _ in candidates]))
        ).fetchall()
        now = _text(self._clock())
        rows.sort(key=lambda row: (rank[row["value"]][0], -row["confidence"], row["source"]))
        return [
            IntelMatch(
                match=rank[row["value"]][1],
                expired=row["valid_until"] is not None and row["valid_until"] < now,
                record=_record(row),
            )
            for row in rows
        ]

    def get(self, type_: IndicatorType | str, value: str, source: str) -> IntelRecord | None:
        """The record of ``source`` for exactly this value, or None."""
        try:
            canonical = normalise(type_, value)
        except ValueError:
            return None
        with self._lock:
            row = self._db.execute(
                _SELECT_ONE, (canonical.type.value, canonical.value, source)
            ).fetchone()
        return _record(row) if row else None

    def stats(self) -> IntelStats:
        """Counts per source, per type and per both, plus the expired total."""
        now = _text(self._clock())
        with self._lock:
            rows = self._db.execute(
                "SELECT source, type, COUNT(*) AS n FROM indicators GROUP BY source, type"
            ).fetchall()
            expired = self._db.execute(
                "SELECT COUNT(*) FROM indicators WHERE valid_until IS NOT NULL AND valid_until < ?",
                (now,),
            ).fetchone()[0]
        by_source: dict[str, int] = {}
        by_type: dict[str, int] = {}
        both: dict[str, dict[str, int]] = {}
        for row in rows:
            by_source[row["source"]] = by_source.get(row["source"], 0) + row["n"]
            by_type[row["type"]] = by_type.get(row["type"], 0) + row["n"]
            both.setdefault(row["source"], {})[row["type"]] = row["n"]
        return IntelStats(
            total=sum(by_source.values()),
            expired=expired,
            by_source=by_source,
            by_type=by_type,
            by_source_and_type=both,
        )


class AsyncIntelStore:
    """The same store for coroutines: each call runs on a worker thread (``asyncio.to_thread``)."""

    def __init__(self, store: IntelStore) -> None:
        self.sync = store

    @classmethod
    def open(cls, path: Path | str = ":memory:", *, clock: Clock | None = None) -> Self:
        """Open (creating if needed) the store at ``path``."""
        return cls(IntelStore(path, clock=clock))

    async def close(self) -> None:
        """Close the underlying store."""
        await asyncio.to_thread(self.sync.close)

    async def upsert(self, indicator: Indicator) -> UpsertOutcome:
        """See :meth:`IntelStore.upsert`."""
        return await asyncio.to_thread(self.sync.upsert, indicator)

    async def upsert_many(self, indicators: Sequence[Indicator]) -> list[UpsertOutcome]:
        """See :meth:`IntelStore.upsert_many`."""
        return await asyncio.to_thread(self.sync.upsert_many, indicators)

    async def lookup(self, type_: IndicatorType | str, value: str) -> list[IntelMatch]:
        """See :meth:`IntelStore.lookup`."""
        return await asyncio.to_thread(self.sync.lookup, type_, value)

    async def lookup_many(
        self, items: Iterable[tuple[IndicatorType | str, str]]
    ) -> list[LookupResult]:
        """See :meth:`IntelStore.lookup_many`."""
        return await asyncio.to_thread(self.sync.lookup_many, list(items))

    async def stats(self) -> IntelStats:
        """See :meth:`IntelStore.stats`."""
        return await asyncio.to_thread(self.sync.stats)

    async def run[T](self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run any blocking function of this package (an importer) off the event loop."""
        return await asyncio.to_thread(function, *args, **kwargs)
