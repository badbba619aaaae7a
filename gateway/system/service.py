"""Runtime settings: current values in the database, every change recorded with who and when."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import utcnow
from core.errors import Conflict
from core.runtime import RuntimeConfig, SystemMode
from gateway.system.models import RuntimeSetting, RuntimeSettingChange
from gateway.system.schemas import RuntimeSettingChangeRead, RuntimeSettingsRead


@dataclass(slots=True)
class RuntimeState:
    """The process's copy of the runtime knobs, read on every response for the mode header."""

    config: RuntimeConfig = field(default_factory=RuntimeConfig)
    updated_at: datetime | None = None
    updated_by: str | None = None

    @property
    def mode(self) -> SystemMode:
        return self.config.mode

    def apply(self, other: RuntimeState) -> None:
        """Take over ``other``'s values (the app holds one instance for its lifetime)."""
        self.config, self.updated_at, self.updated_by = (
            other.config,
            other.updated_at,
            other.updated_by,
        )


async def load_runtime(*, db: AsyncSession) -> RuntimeState:
    """The stored knobs over the defaults; values that no longer validate fall back to defaults."""
    rows = list((await db.execute(select(RuntimeSetting))).scalars())
    known = set(RuntimeConfig.model_fields)
    values = {row.key: row.value for row in rows if row.key in known}
    try:
        config = RuntimeConfig.model_validate(values)
    except ValueError:
        config = RuntimeConfig()
    latest = max(rows, key=lambda row: row.updated_at, default=None)
    return RuntimeState(
        config=config,
        updated_at=latest.updated_at if latest else None,
        updated_by=latest.updated_by if latest else None,
    )


@dataclass(frozen=True, slots=True)
class RuntimeUpdate:
    """What a change of the knobs led to."""

    state: RuntimeState
    read: RuntimeSettingsRead
    """The answer: the knobs and the newest changes, this one first."""
    changes: dict[str, Any] | None
    """``{key: {"old": ..., "new": ...}}`` of what changed; None when nothing did."""


async def settings_read(*, db: AsyncSession, state: RuntimeState) -> RuntimeSettingsRead:
    """The knobs of ``state`` and the newest changes (those ``db`` sees)."""
    history = await list_changes(db=db)
    return RuntimeSettingsRead(
        settings=state.config,
        updated_at=state.updated_at,
        updated_by=state.updated_by,
        history=[RuntimeSettingChangeRead.model_validate(change) for change in history],
    )


async def update_runtime(*, db: AsyncSession, actor: str, changes: dict[str, Any]) -> RuntimeUpdate:
    """Apply ``changes`` (already validated) and record them in the history; the answer is
    built (from the flushed rows) before the commit, so nothing is committed that cannot be
    answered.

    Keys whose value does not change are left out of the history; no change records nothing.
    """
    current = await load_runtime(db=db)
    merged = RuntimeConfig.model_validate({**current.config.model_dump(), **changes})
    old, new = current.config.model_dump(mode="json"), merged.model_dump(mode="json")
    diff = {key: {"old": old[key], "new": new[key]} for key in changes if old[key] != new[key]}
    if not diff:
        return RuntimeUpdate(current, await settings_read(db=db, state=current), None)
    now = utcnow()
    for key in diff:
        row = await db.get(RuntimeSetting, key)
        if row is None:
            db.add(RuntimeSetting(key=key, value=new[key], updated_at=now, updated_by=actor))
        else:
            row.value, row.updated_at, row.updated_by = new[key], now, actor
    db.add(RuntimeSettingChange(changed_at=now, changed_by=actor, changes=diff))
    await db.flush()
    state = RuntimeState(config=merged, updated_at=now, updated_by=actor)
    read = await settings_read(db=db, state=state)
    try:
        await db.commit()
    except IntegrityError as err:  # another change stored the same new knob first
        await db.rollback()
        raise Conflict({"settings": sorted(diff), "reason": "changed concurrently"}) from err
    return RuntimeUpdate(state, read, diff)


async def list_changes(*, db: AsyncSession, limit: int = 50) -> list[RuntimeSettingChange]:
    """The newest changes first."""
    result = await db.execute(
        select(RuntimeSettingChange)
        .order_by(RuntimeSettingChange.changed_at.desc(), RuntimeSettingChange.id.desc())
        .limit(limit)
    )
    return list(result.scalars())
