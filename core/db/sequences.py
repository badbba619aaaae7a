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
    .values(value=_SEQUENCES.c.value + bindparam("count"))
    .returning(_SEQUENCES.c.value)
)


async def next_numbers(db: AsyncSession, name: str, count: int) -> range:
    """The next ``count`` numbers of counter ``name``, taken in one step inside the caller's
    transaction.

    The counter row stays locked (PostgreSQL row lock, SQLite write lock) until the caller
    commits, so this also serialises concurrent writers that need to check-then-insert.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, not {count}")
    for _ in range(3):
        bumped = await db.execute(_BUMP, {"counter": name, "count": count})
        last = bumped.scalar_one_or_none()
        if last is not None:
            return range(int(last) - count + 1, int(last) + 1)
        try:
            async with db.begin_nested():
                await db.execute(insert(IdSequence).values(name=name, value=count))
            return range(1, count + 1)
        except IntegrityError:
            continue  # another writer created the row first: bump it
    raise RuntimeError(f"could not allocate a number from sequence {name!r}")


async def next_number(db: AsyncSession, name: str) -> int:
    """The next number of counter ``name`` (see :func:`next_numbers`)."""
    return (await next_numbers(db, name, 1))[0]


async def next_ids(db: AsyncSession, prefix: str, count: int) -> list[str]:
    """``count`` identifiers ``PREFIX-YYYY-NNNNN`` in order, taken in one step."""
    year = utcnow().year
    return [f"{prefix}-{year}-{n:05d}" for n in await next_numbers(db, f"{prefix}-{year}", count)]


async def next_id(db: AsyncSession, prefix: str) -> str:
    """``PREFIX-YYYY-NNNNN``: numbered per year."""
    return (await next_ids(db, prefix, 1))[0]
