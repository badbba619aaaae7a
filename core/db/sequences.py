"""Human-readable, gap-tolerant identifiers (``ALRT-2026-00042``) from a counter table."""

from __future__ import annotations

from sqlalchemy import String, bindparam, insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, table_of, utcnow


class IdSequence(Base):
    """One counter per name (``ALRT-2026``): the last number handed out."""

    __tablename__ = "id_sequences"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int]


_SEQUENCES = table_of(IdSequence)
_BUMP = (
    update(_SEQUENCES)
    .where(_SEQUENCES.c.name == bindparam("counter"))
    .values(value=_SEQUENCES.c.value + 1)
    .returning(_SEQUENCES.c.value)
)


async def next_number(db: AsyncSession, name: str) -> int:
    """The next number of counter ``name``, inside the caller's transaction.

    The counter row stays locked (PostgreSQL row lock, SQLite write lock) until the caller
    commits, so this also serialises concurrent writers that need to check-then-insert.
    """
    for _ in range(3):
        bumped = await db.execute(_BUMP, {"counter": name})
        value = bumped.scalar_one_or_none()
        if value is not None:
            return int(value)
        try:
            async with db.begin_nested():
                await db.execute(insert(IdSequence).values(name=name, value=1))
            return 1
        except IntegrityError:
            continue  # another writer created the row first: bump it
    raise RuntimeError(f"could not allocate a number from sequence {name!r}")


async def next_id(db: AsyncSession, prefix: str) -> str:
    """``PREFIX-YYYY-NNNNN``: numbered per year."""
    year = utcnow().year
    number = await next_number(db, f"{prefix}-{year}")
    return f"{prefix}-{year}-{number:05d}"
