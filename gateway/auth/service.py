"""Authentication: password login with lockout, token revocation, API keys, and resolving a
presented credential into a :class:`Principal`."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from agents.acp.server import AGENT_TOKEN_TYPE
from core.db import Database, utcnow
from core.errors import (
    AuthenticationRequired,
    InvalidCredentials,
    NotFound,
    PermissionDenied,
    RateLimited,
    TokenExpired,
)
from core.security.apikeys import generate_api_key, parse_api_key, secret_matches
from core.security.passwords import PasswordHasher
from core.security.permissions import Permission, Role, permissions_for
from core.security.tokens import IssuedToken, TokenService
from gateway.auth.models import ApiKey, RevokedToken
from gateway.users.models import User

log = logging.getLogger("aurora.auth")
PURGE_INTERVAL_SECONDS = 3600.0


@functools.cache
def sorted_names(permissions: frozenset[Permission]) -> list[str]:
    return sorted(p.value for p in permissions)


@dataclass(frozen=True, slots=True)
class UserSnapshot:
    """The fields of a user that authentication and ``/users/me`` need, cached briefly."""

    id: str
    username: str
    email: str | None
    full_name: str | None
    role: str
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None

    @classmethod
    def of(cls, user: User) -> UserSnapshot:
        return cls(
            id=user.id,
            username=user.username,
            email=user.email,
            full_name=user.full_name,
            role=user.role,
            is_active=user.is_active,
            created_at=user.created_at,
            last_login_at=user.last_login_at,
        )


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of one request."""

    user: UserSnapshot
    permissions: frozenset[Permission]
    method: str  # "token" | "api_key"
    token_jti: str | None = None
    token_expires_at: datetime | None = None
    api_key_id: str | None = None

    @property
    def user_id(self) -> str:
        return self.user.id

    @property
    def username(self) -> str:
        return self.user.username

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions

    @property
    def permission_names(self) -> list[str]:
        return sorted_names(self.permissions)

    @property
    def is_admin(self) -> bool:
        return Permission.ADMIN in self.permissions


class PhantomLockout:
    """Failed logins for usernames that have no account, counted and locked like real ones so
    that the lockout does not reveal which usernames exist. Kept in memory, bounded."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._entries: dict[str, tuple[int, datetime | None]] = {}

    def locked_until(self, username: str, now: datetime) -> datetime | None:
        until = self._entries.get(username, (0, None))[1]
        return until if until is not None and until > now else None

    def fail(self, username: str, now: datetime, max_failures: int, lockout_seconds: int) -> None:
        failures, until = self._entries.pop(username, (0, None))
        if until is not None and until <= now:
            failures = 0
        failures += 1
        if failures >= max_failures:
            self._entries[username] = (0, now + timedelta(seconds=lockout_seconds))
        else:
            self._entries[username] = (failures, None)
        while len(self._entries) > self.max_entries:
            self._entries.pop(next(iter(self._entries)))


class Authenticator:
    """Resolves bearer tokens and API keys; caches users briefly and revoked ``jti``s in memory.

    The revocation set is loaded at start and refreshed from the database periodically, so a
    logout on another replica takes effect here within ``refresh_interval`` seconds.
    """

    def __init__(
        self,
        *,
        database: Database,
        tokens: TokenService,
        user_cache_ttl: float,
        refresh_interval: float = 5.0,
    ) -> None:
        self._db = database
        self._tokens = tokens
        self._user_ttl = user_cache_ttl
        self._users: dict[str, tuple[UserSnapshot, float]] = {}
        self._revoked: dict[str, datetime] = {}
        self._refreshed_at: datetime | None = None
        self.refresh_interval = refresh_interval
        self.phantom_logins = PhantomLockout()

    async def load_revocations(self) -> None:
        """Read revoked, unexpired ``jti``s (all at first, then those revoked since last time)."""
        now = utcnow()
        query = select(RevokedToken.jti, RevokedToken.expires_at).where(
            RevokedToken.expires_at > now
        )
        if self._refreshed_at is not None:
            query = query.where(
                RevokedToken.revoked_at >= self._refreshed_at - timedelta(seconds=5)
            )
        async with self._db.session() as session:
            rows = (await session.execute(query)).all()
        for jti, expires_at in rows:
            self._revoked[jti] = expires_at
        self._refreshed_at = now
        for jti in [j for j, exp in self._revoked.items() if exp <= now]:
            del self._revoked[jti]

    async def run_refresh(self) -> None:
        """Keep the revocation set current, and the table pruned (first soon after start, as
        housekeeping that never holds up start-up), until cancelled."""
        last_purge = float("-inf")
        while True:
            await asyncio.sleep(self.refresh_interval)
            try:
                await self.load_revocations()
                if time.monotonic() - last_purge > PURGE_INTERVAL_SECONDS:
                    async with self._db.session() as session:
                        await purge_expired_revocations(db=session)
                    last_purge = time.monotonic()
            except Exception:  # a database hiccup must not end the loop
                log.exception("refreshing revoked tokens failed; retrying")

    def forget_user(self, user_id: str) -> None:
        """Drop a user from the cache after it changed or was deleted."""
        self._users.pop(user_id, None)

    def note_revoked(self, jti: str, expires_at: datetime) -> None:
        self._revoked[jti] = expires_at

    async def _user(self, user_id: str) -> UserSnapshot | None:
        cached = self._users.get(user_id)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        async with self._db.session() as session:
            user = await session.get(User, user_id)
        if user is None:
            self._users.pop(user_id, None)
            return None
        entry = UserSnapshot.of(user)
        if self._user_ttl > 0:
            self._users[user_id] = (entry, now + self._user_ttl)
        return entry

    async def from_bearer(self, token: str) -> Principal:
        try:
            claims = self._tokens.verify(token)
        except InvalidCredentials:
            return self._agent(token)
        if claims.jti in self._revoked:
            raise InvalidCredentials("the access token has been revoked")
        user = await self._user(claims.subject)
        if user is None or not user.is_active:
            raise InvalidCredentials("the account no longer exists or is disabled")
        return Principal(
            user=user,
            permissions=permissions_for(user.role),
            method="token",
            token_jti=claims.jti,
            token_expires_at=claims.expires_at,
        )

    def _agent(self, token: str) -> Principal:
        """A platform-signed agent token (how specialists reach the API, e.g. the hunter
        searching the logs) as the ``service_agent`` identity: least-privilege reads, no
        account in the database. Anything else stays AURORA-4012."""
        claims = self._tokens.verify(token, token_type=AGENT_TOKEN_TYPE)
        if claims.jti in self._revoked:
            raise InvalidCredentials("the token has been revoked")
        name = f"agent:{claims.subject}"[:64]
        identity = UserSnapshot(
            id=name,
            username=name,
            email=None,
            full_name=None,
            role=Role.SERVICE_AGENT.value,
            is_active=True,
            created_at=claims.issued_at,
            last_login_at=None,
        )
        return Principal(
            user=identity,
            permissions=permissions_for(Role.SERVICE_AGENT.value),
            method="agent_token",
            token_jti=claims.jti,
            token_expires_at=claims.expires_at,
        )

    async def from_api_key(self, presented: str) -> Principal:
        parsed = parse_api_key(presented)
        if parsed is None:
            raise InvalidCredentials("the API key is not valid")
        prefix, secret = parsed
        now = utcnow()
        async with self._db.session() as session:
            key = (
                await session.execute(select(ApiKey).where(ApiKey.prefix == prefix))
            ).scalar_one_or_none()
            if key is None or not secret_matches(secret, key.secret_hash):
                raise InvalidCredentials("the API key is not valid")
            if key.revoked_at is not None:
                raise InvalidCredentials("the API key has been revoked")
            if key.expires_at is not None and key.expires_at <= now:
                raise TokenExpired("the API key has expired")
            if key.last_used_at is None or now - key.last_used_at > timedelta(minutes=1):
                key.last_used_at = now
                await session.commit()
            key_id, user_id, granted = key.id, key.user_id, frozenset(key.permissions)
        user = await self._user(user_id)
        if user is None or not user.is_active:
            raise InvalidCredentials("the API key's owner no longer exists or is disabled")
        role_permissions = permissions_for(user.role)
        return Principal(
            user=user,
            permissions=frozenset(p for p in role_permissions if p.value in granted),
            method="api_key",
            api_key_id=key_id,
        )

    async def authenticate(self, *, bearer: str | None, api_key: str | None) -> Principal:
        """Resolve the presented credential; AURORA-4010 when there is none."""
        if bearer:
            return await self.from_bearer(bearer)
        if api_key:
            return await self.from_api_key(api_key)
        raise AuthenticationRequired("send 'Authorization: Bearer <token>' or 'X-API-Key'")


async def login(
    *,
    db: AsyncSession,
    hasher: PasswordHasher,
    tokens: TokenService,
    username: str,
    password: str,
    max_failures: int,
    lockout_seconds: int,
    phantoms: PhantomLockout,
    ttl_seconds: int | None = None,
) -> tuple[IssuedToken, str]:
    """Check a password and issue an access token; returns it with the user's id.

    Wrong credentials are AURORA-4012; after ``max_failures`` in a row the account is locked for
    ``lockout_seconds`` and every attempt meanwhile is AURORA-4290 with ``Retry-After``.
    """
    user = (await db.execute(select(User).where(User.username == username))).scalar_one_or_none()
    now = utcnow()
    locked_until = user.locked_until if user is not None else phantoms.locked_until(username, now)
    if locked_until is not None and locked_until > now:
        remaining = int((locked_until - now).total_seconds()) + 1
        raise RateLimited(
            {"reason": "account temporarily locked after repeated failed logins"},
            retry_after=remaining,
        )
    ok = await hasher.verify_async(user.password_hash if user else None, password)
    if user is None or not ok or not user.is_active:
        if user is None:
            phantoms.fail(username, now, max_failures, lockout_seconds)
        elif not ok:
            failures = (
                await db.execute(
                    update(User)
                    .where(User.id == user.id)
                    .values(failed_logins=User.failed_logins + 1)
                    .returning(User.failed_logins)
                )
            ).scalar_one()
            if failures >= max_failures:
                await db.execute(
                    update(User)
                    .where(User.id == user.id)
                    .values(failed_logins=0, locked_until=now + timedelta(seconds=lockout_seconds))
                )
            await db.commit()
        raise InvalidCredentials("wrong username or password")
    if user.password_hash and hasher.needs_rehash(user.password_hash):
        user.password_hash = await hasher.hash_async(password)
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    await db.commit()
    issued = tokens.issue(user.id, ttl_seconds=ttl_seconds, claims={"username": user.username})
    return issued, user.id


async def revoke_token(*, db: AsyncSession, jti: str, user_id: str, expires_at: datetime) -> None:
    """Refuse the token with this ``jti`` from now until it would have expired."""
    if await db.get(RevokedToken, jti) is None:
        db.add(RevokedToken(jti=jti, user_id=user_id, expires_at=expires_at))
        await db.commit()


async def purge_expired_revocations(*, db: AsyncSession) -> int:
    """Forget revocations of tokens that have expired anyway; returns how many."""
    result = await db.execute(delete(RevokedToken).where(RevokedToken.expires_at <= utcnow()))
    await db.commit()
    return int(getattr(result, "rowcount", 0) or 0)


async def create_api_key(
    *,
    db: AsyncSession,
    owner: Principal,
    name: str,
    permissions: list[Permission] | None,
    expires_at: datetime | None,
) -> tuple[ApiKey, str]:
    """Create a key limited to ``permissions`` (default: all the caller's); return it with its
    plaintext, which is never stored and never shown again."""
    wanted = frozenset(permissions) if permissions is not None else owner.permissions
    beyond = sorted(p.value for p in wanted - owner.permissions)
    if beyond:
        raise PermissionDenied({"permissions_not_held": beyond})
    generated = generate_api_key()
    key = ApiKey(
        user_id=owner.user_id,
        name=name,
        prefix=generated.prefix,
        secret_hash=generated.secret_hash,
        permissions=sorted(p.value for p in wanted),
        expires_at=expires_at,
    )
    db.add(key)
    await db.commit()
    return key, generated.plaintext


async def list_api_keys(*, db: AsyncSession, user_id: str) -> list[ApiKey]:
    result = await db.execute(
        select(ApiKey).where(ApiKey.user_id == user_id).order_by(ApiKey.created_at, ApiKey.id)
    )
    return list(result.scalars())


async def revoke_api_key(*, db: AsyncSession, actor: Principal, key_id: str) -> ApiKey:
    """Revoke a key of the caller's (an admin may revoke anyone's); AURORA-4040 otherwise."""
    key = await db.get(ApiKey, key_id)
    if key is None or (key.user_id != actor.user_id and not actor.is_admin):
        raise NotFound({"api_key": key_id})
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        await db.commit()
    return key
