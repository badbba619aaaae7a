"""The network telemetry configuration, versioned: read, change, history and rollback.

Every change stores the whole document as a new version (:class:`NetworkConfigVersion`) with
who made it, when, why, and the diff from the version before. The newest version is the one in
force; with none stored, the defaults are in force as version 0. A rollback is a new version
whose document equals an older one's.

The diff is a list of ``{path, old, new}`` over the two JSON documents: objects are compared
key by key (``thresholds.port_scan.distinct_ports``), and a list is one value, compared whole
(``allowlist``, ``home_networks``): a list's meaning is its members and their order, and
index-by-index changes of a list that had an entry inserted at its head would read as a change
of every entry after it. A change that leaves the document as it is stores nothing: the answer
is the version in force, unchanged (``changed`` is false); a rollback is always stored, even
onto an equal document (the history says it was asked for).

Two writers that both read version N cannot both win: the second one's version N+1 breaks the
unique ``version`` column and is refused with AURORA-4090, like a change that names a stale
``expected_version``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import Database
from core.db.commit import check_version
from core.db.pages import equal, fetch_page
from core.errors import Conflict, NotFound
from core.schemas import PageQuery
from core.validation import INTEGER_MAX, UtcDatetime, validate
from gateway.network.configuration import NetworkConfig
from gateway.network.models import NetworkConfigVersion

KIND: Final = "network_config"
"""What a conflict names (``network_config_id``: the version the writer wanted to replace)."""


# -- wire models -------------------------------------------------------------------------------


class ConfigChange(BaseModel):
    """One difference between two versions: ``path`` (dotted keys), its old and new value
    (None where the key did not exist)."""

    path: str
    old: Any = None
    new: Any = None


class ConfigUpdate(NetworkConfig):
    """``PUT /settings/network-telemetry``: the whole document, plus the version it was made
    against (stale: AURORA-4090; left out: last writer wins) and why."""

    expected_version: int | None = Field(default=None, ge=0, le=INTEGER_MAX)
    reason: str | None = Field(default=None, min_length=1, max_length=500)

    def document(self) -> NetworkConfig:
        """The configuration itself, without the request's own fields."""
        return NetworkConfig.model_validate(self.model_dump(exclude={"expected_version", "reason"}))


class RollbackRequest(BaseModel):
    """``POST .../history/{history_id}/rollback`` (every field optional; no body is fine)."""

    model_config = ConfigDict(extra="forbid")

    expected_version: int | None = Field(default=None, ge=0, le=INTEGER_MAX)
    reason: str | None = Field(default=None, min_length=1, max_length=500)


class ConfigRead(BaseModel):
    """The configuration in force and the version that made it (version 0: the defaults, no
    version stored yet)."""

    version: int
    history_id: int | None
    """The id of the stored version (what a rollback names); None for the defaults."""
    config: NetworkConfig
    changed_by: str | None
    changed_at: datetime | None
    reason: str | None
    rollback_of: int | None
    diff: list[ConfigChange]
    """What this version changed from the one before it."""
    changed: bool = True
    """False when a change was asked that left the document as it was (nothing stored)."""


class ConfigVersionRead(BaseModel):
    """One stored version, as the history lists it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    version: int
    config: dict[str, Any]
    diff: list[ConfigChange]
    changed_by: str
    changed_at: datetime
    reason: str | None
    rollback_of: int | None


class HistoryQuery(PageQuery):
    """``GET .../history``: newest first; by author and time of change."""

    changed_by: str | None = Field(default=None, min_length=1, max_length=64)
    since: UtcDatetime | None = None
    """Changed at or after."""
    until: UtcDatetime | None = None
    """Changed before."""


# -- diff --------------------------------------------------------------------------------------


def diff_documents(old: Any, new: Any, path: str = "") -> list[dict[str, Any]]:
    """``[{path, old, new}]`` between two JSON documents (see the module docstring): objects
    key by key, in the new document's key order then keys only the old one had; anything else
    (lists included) compared whole."""
    if isinstance(old, dict) and isinstance(new, dict):
        changes: list[dict[str, Any]] = []
        for key in [*new, *(k for k in old if k not in new)]:
            below = f"{path}.{key}" if path else str(key)
            changes += diff_documents(old.get(key), new.get(key), below)
        return changes
    if old == new and type(old) is type(new):
        return []
    return [{"path": path, "old": old, "new": new}]


def _as_json(config: NetworkConfig) -> dict[str, Any]:
    return config.model_dump(mode="json")


def _defaults() -> NetworkConfig:
    return NetworkConfig()


# -- reads -------------------------------------------------------------------------------------


async def _newest(db: AsyncSession) -> NetworkConfigVersion | None:
    return await db.scalar(
        select(NetworkConfigVersion).order_by(NetworkConfigVersion.version.desc()).limit(1)
    )


def _read(row: NetworkConfigVersion | None, *, changed: bool = True) -> ConfigRead:
    if row is None:
        return ConfigRead(
            version=0,
            history_id=None,
            config=_defaults(),
            changed_by=None,
            changed_at=None,
            reason=None,
            rollback_of=None,
            diff=[],
            changed=changed,
        )
    return ConfigRead(
        version=row.version,
        history_id=row.id,
        config=NetworkConfig.model_validate(row.config),
        changed_by=row.changed_by,
        changed_at=row.changed_at,
        reason=row.reason,
        rollback_of=row.rollback_of,
        diff=[ConfigChange.model_validate(change) for change in row.diff],
        changed=changed,
    )


async def current_config(db: AsyncSession) -> ConfigRead:
    """The configuration in force: the newest version, or the defaults as version 0."""
    return _read(await _newest(db))


async def load_config(database: Database) -> NetworkConfig:
    """The configuration in force, for the scheduler, ingest and the other readers (one
    ``SELECT`` of the newest version's document)."""
    async with database.session() as db:
        document = await db.scalar(
            select(NetworkConfigVersion.config)
            .order_by(NetworkConfigVersion.version.desc())
            .limit(1)
        )
    return _defaults() if document is None else NetworkConfig.model_validate(document)


class ConfigCache:
    """The configuration in force, re-read only when a new version has been stored: each
    :meth:`get` costs one indexed ``SELECT`` of the newest version's number (a reader that runs
    every few seconds does not parse the document each time). One per process, passed down."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._version = -1
        self._config = _defaults()

    async def get(self) -> NetworkConfig:
        async with self._database.session() as db:
            newest = await db.scalar(select(func.max(NetworkConfigVersion.version)))
            version = int(newest or 0)
            if version != self._version:
                document = await db.scalar(
                    select(NetworkConfigVersion.config).where(
                        NetworkConfigVersion.version == version
                    )
                )
                self._config = (
                    _defaults() if document is None else NetworkConfig.model_validate(document)
                )
                self._version = version
        return self._config


async def history(
    *, db: AsyncSession, query: HistoryQuery
) -> tuple[list[NetworkConfigVersion], int]:
    """A page of the stored versions, newest first (rows for :class:`ConfigVersionRead`)."""
    where = equal((NetworkConfigVersion.changed_by, query.changed_by))
    if query.since is not None:
        where.append(NetworkConfigVersion.changed_at >= query.since)
    if query.until is not None:
        where.append(NetworkConfigVersion.changed_at < query.until)
    return await fetch_page(
        db,
        NetworkConfigVersion,
        where=where,
        sort="-version",
        limit=query.limit,
        offset=query.offset,
    )


# -- changes -----------------------------------------------------------------------------------


async def _store(
    db: AsyncSession,
    *,
    actor: str,
    config: NetworkConfig,
    expected_version: int | None,
    reason: str | None,
    rollback_of: int | None,
) -> ConfigRead:
    """Store ``config`` as the version after the one in force (nothing when it equals it)."""
    current = await _newest(db)
    version = current.version if current is not None else 0
    check_version(kind=KIND, ident=str(version), current=version, wanted=expected_version)
    before = current.config if current is not None else _as_json(_defaults())
    after = _as_json(config)
    changes = diff_documents(before, after)
    if not changes and rollback_of is None:
        return _read(current, changed=False)
    row = NetworkConfigVersion(
        version=version + 1,
        config=after,
        diff=changes,
        changed_by=actor,
        reason=reason,
        rollback_of=rollback_of,
    )
    db.add(row)
    try:
        await db.commit()
    except IntegrityError as err:  # another writer stored version + 1 first
        await db.rollback()
        raise Conflict(
            {
                f"{KIND}_id": str(version),
                "current_version": version + 1,
                "reason": "the configuration changed concurrently",
            }
        ) from err
    await db.refresh(row)
    return _read(row)


async def put_config(db: AsyncSession, *, actor: str, body: ConfigUpdate) -> ConfigRead:
    """Make ``body``'s document the configuration in force, as a new version with ``actor``,
    the time, ``body.reason`` and the diff from the version before. AURORA-4090 when
    ``body.expected_version`` is not the version in force, or another writer stored a version
    first. A document equal to the one in force stores nothing and answers that version
    (``changed`` false). ``body`` is validated already (the route parses it with
    :func:`core.validation.validate`: AURORA-4220 with ``loc`` at the field at fault)."""
    return await _store(
        db,
        actor=actor,
        config=body.document(),
        expected_version=body.expected_version,
        reason=body.reason,
        rollback_of=None,
    )


async def rollback(
    db: AsyncSession, *, actor: str, history_id: int | str, body: RollbackRequest | None = None
) -> ConfigRead:
    """A new version whose document equals stored version ``history_id``'s (``rollback_of``
    names it; its diff is against the version in force, empty when they are equal).
    ``history_id`` may be the path's text. AURORA-4040 naming ``history_id`` when no such
    version is stored; AURORA-4090 as for :func:`put_config`;
    AURORA-4220 when the stored document no longer validates (``loc`` under ``history``)."""
    request = body or RollbackRequest()
    text = str(history_id)
    # the path's parameter arrives as text: anything but a stored id is not found
    ident = int(text) if text.isascii() and text.isdigit() and len(text) <= 10 else None
    if ident is not None and ident > INTEGER_MAX:
        ident = None
    target = await db.get(NetworkConfigVersion, ident) if ident is not None else None
    if target is None:
        raise NotFound({"history_id": history_id})
    config = validate(NetworkConfig, target.config, where="history")
    return await _store(
        db,
        actor=actor,
        config=config,
        expected_version=request.expected_version,
        reason=request.reason or f"rollback to version {target.version}",
        rollback_of=target.id,
    )
