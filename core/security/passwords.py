"""Password hashing with argon2id (memory-hard), tunable from settings."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Final

from argon2 import PasswordHasher as _Argon2
from argon2.exceptions import InvalidHashError, VerificationError

from core.settings import Settings

HASHING_THREADS: Final = 4
"""Hashes computed at once; each holds the configured memory (64 MiB by default) meanwhile."""


class PasswordHasher:
    """argon2id hashing; the async methods run off the event loop, on threads of the hasher's
    own (never on the loop's default executor, where other work could make a login wait)."""

    def __init__(self, *, time_cost: int, memory_kib: int, parallelism: int) -> None:
        self._argon2 = _Argon2(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
        # Threads start on first use and end when the hasher is collected.
        self._threads = ThreadPoolExecutor(HASHING_THREADS, thread_name_prefix="argon2")
        # Verified against when a username is unknown, so timing does not reveal which exist.
        self._decoy = self._argon2.hash("aurora-decoy-password")

    @classmethod
    def from_settings(cls, settings: Settings) -> PasswordHasher:
        return cls(
            time_cost=settings.argon2_time_cost,
            memory_kib=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        )

    def hash(self, password: str) -> str:
        return self._argon2.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """True when ``password`` matches; a missing or malformed hash never matches."""
        try:
            return self._argon2.verify(password_hash or self._decoy, password) and bool(
                password_hash
            )
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._argon2.check_needs_rehash(password_hash)

    async def hash_async(self, password: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(self._threads, self.hash, password)

    async def verify_async(self, password_hash: str | None, password: str) -> bool:
        return await asyncio.get_running_loop().run_in_executor(
            self._threads, self.verify, password_hash, password
        )
