"""Leases: a scheduled job that must run once across gateway replicas runs where its lease is.

A lease is one row per job name: who holds it and until when. :func:`hold` takes it when it is
free or expired, or renews it for its holder, in one statement (atomic across replicas, which
share the database); :func:`release` gives it up. A replica that dies stops renewing, and the
lease passes to another once it expires: that is the takeover. A holder that was a process of
this host and is gone (:func:`owner_gone`) loses its lease at once.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import String, delete, or_, select, update
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, utcnow
from core.db.engine import Database, upsert_into

MIN_TTL_SECONDS: Final = 30.0


class JobLease(Base):
    """Who runs job ``name`` now, and until when unless renewed."""

    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime]
    acquired_at: Mapped[datetime]


def owner_gone(owner: str | None) -> bool:
    """Whether ``owner`` is a process of this host that no longer runs (or names none). An
    owner on another host cannot be seen from here: only its heartbeat tells."""
    if not owner:
        return True
    host, _, rest = owner.partition(":")
    pid, _, _tag = rest.partition(":")
    if host != socket.gethostname()[:64] or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return False  # this process: its own work is never an orphan
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def process_identity() -> str:
    """This process, as lease holders are named: host, pid and a random tag (a pid is reused
    after a restart)."""
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{secrets.token_hex(4)}"


async def hold(
    database: Database, name: str, holder: str, ttl_seconds: float, *, now: datetime | None = None
) -> bool:
    """Take or renew lease ``name`` for ``holder`` for ``ttl_seconds``; whether it holds it."""
    moment = now or utcnow()
    ends = moment + timedelta(seconds=ttl_seconds)
    async with database.session() as db:
        insert = upsert_into(db, JobLease)
        mine = JobLease.holder == holder
        taken = (
            insert.values(name=name, holder=holder, expires_at=ends, acquired_at=moment)
            .on_conflict_do_update(
                index_elements=[JobLease.name],
                set_={
                    "holder": holder,
                    "expires_at": ends,
                    # A renewal keeps when it was first taken; a takeover starts anew.
                    "acquired_at": insert.excluded.acquired_at,
                },
                where=or_(mine, JobLease.expires_at <= moment),
            )
            .returning(JobLease.holder)
        )
        row = (await db.execute(taken)).one_or_none()
        if row is None:
            # Held by a process of this host that is gone (a gateway killed and restarted):
            # taken over now rather than when the dead holder's lease runs out.
            current = await db.scalar(select(JobLease.holder).where(JobLease.name == name))
            if current is not None and current != holder and owner_gone(current):
                row = (
                    await db.execute(
                        update(JobLease)
                        .where(JobLease.name == name, JobLease.holder == current)
                        .values(holder=holder, expires_at=ends, acquired_at=moment)
                        .returning(JobLease.holder)
                    )
                ).one_or_none()
        await db.commit()
    return row is not None


async def release(database: Database, name: str, holder: str) -> None:
    """Give up lease ``name`` if ``holder`` has it (another replica may take it at once)."""
    async with database.session() as db:
        await db.execute(delete(JobLease).where(JobLease.name == name, JobLease.holder == holder))
        await db.commit()


@dataclass(slots=True)
class Lease:
    """What a :class:`~core.loops.Periodic` needs to run its step only where its lease is:
    the shared database and this process's name. ``ttl_seconds`` is how long a lease outlives
    its last renewal (the loop renews it before each step and while one runs)."""

    database: Database
    holder: str = field(default_factory=process_identity)
    ttl_seconds: float = 120.0
    retry_seconds: float | None = None
    """How often a replica without the lease tries to take it; by default a quarter of the
    lease's life (a held lease is renewed at half of it)."""

    def ttl(self, interval: float) -> float:
        """The lease's lifetime for a loop of ``interval`` seconds: two intervals and a margin,
        at least :data:`MIN_TTL_SECONDS`."""
        return max(MIN_TTL_SECONDS, self.ttl_seconds, 2 * interval + 10)

    def retry(self, interval: float) -> float:
        """Seconds between a waiting replica's tries to take the lease."""
        return self.retry_seconds if self.retry_seconds is not None else self.ttl(interval) / 4
