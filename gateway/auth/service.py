"""Authentication: password login with lockout, token revocation, API keys, resolving a
presented credential into a :class:`Principal`, and ending the streams of credentials that no
longer hold."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from pydantic import ConfigDict
from sqlalchemy import Select, case, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from agents.acp.server import AGENT_TOKEN_TYPE
from core.db import Database, utcnow
from core.db.engine import upsert_into
from core.db.lookup import get_or_404
from core.db.pages import fetch_rows
from core.errors import (
    AuroraError,
    AuthenticationRequired,
    InvalidCredentials,
    NotFound,
    PermissionDenied,
    RateLimited,
    TokenExpired,
)
from core.loops import Periodic
from core.schemas import PageQuery
from core.security.apikeys import generate_api_key, parse_api_key, secret_matches
from core.security.passwords import PasswordHasher
from core.security.permissions import Permission, Role, permissions_for
from core.security.tokens import IssuedToken, TokenService
from core.validation import field_error
from gateway.auth.models import ApiKey, LoginThrottle, RevokedToken
from gateway.users.models import User
from gateway.users.schemas import UserRead

log = logging.getLogger("aurora.auth")
PURGE_INTERVAL_SECONDS = 3600.0
IN_CHUNK = 500
"""Ids per ``IN (...)`` when many sessions are checked at once (SQLite bounds parameters)."""
PRINCIPALS_KEPT = 4096
"""How many access tokens' callers are kept built (the oldest goes first)."""


@functools.cache
def sorted_names(permissions: frozenset[Permission]) -> list[str]:
    return sorted(p.value for p in permissions)


class UserSnapshot(UserRead):
    """The fields of a user that authentication and ``/users/me`` need, cached briefly."""

    model_config = ConfigDict(frozen=True)

    tokens_valid_after: datetime | None = None
    """Access tokens issued before this second are refused (see :func:`_issued_after_reset`)."""

    @classmethod
    def of(cls, user: User) -> UserSnapshot:
        return cls.model_validate(user)


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of one request."""

    user: UserSnapshot
    permissions: frozenset[Permission]
    method: str  # "token" | "api_key" | "agent_token"
    token_jti: str | None = None
    token_expires_at: datetime | None = None
    token_issued_at: datetime | None = None
    api_key_id: str | None = None
    api_key_expires_at: datetime | None = None

    @property
    def user_id(self) -> str:
        return self.user.id

    @property
    def account_id(self) -> str | None:
        """The id of the user account behind the credential; None for an agent token (a
        service identity with no account)."""
        return None if self.method == "agent_token" else self.user.id

    @property
    def username(self) -> str:
        return self.user.username

    @property
    def expires_at(self) -> datetime | None:
        """When the credential lapses by itself (a token's ``exp``, a key's expiry)."""
        return self.token_expires_at or self.api_key_expires_at

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions

    @property
    def permission_names(self) -> list[str]:
        return sorted_names(self.permissions)

    @property
    def is_admin(self) -> bool:
        return Permission.ADMIN in self.permissions


def _expired(caller: Principal) -> TokenExpired:
    what = "API key" if caller.method == "api_key" else "access token"
    return TokenExpired(f"the {what} has expired")


def _account(user: UserSnapshot | None, whose: str) -> UserSnapshot:
    if user is None or not user.is_active:
        raise InvalidCredentials(f"{whose} no longer exists or is disabled")
    return user


def _issued_after_reset(user: UserSnapshot, issued_at: datetime | None) -> None:
    """Refuse a token issued before its account's sessions were ended (a password reset)."""
    if user.tokens_valid_after is not None and (
        issued_at is None or issued_at < user.tokens_valid_after
    ):
        raise InvalidCredentials("the access token has been revoked")


def _key_principal(key: ApiKey | None, owner: UserSnapshot | None, now: datetime) -> Principal:
    """The caller an API key stands for now: its grant within its owner's current role."""
    if key is None:
        raise InvalidCredentials("the API key is not valid")
    if key.revoked_at is not None:
        raise InvalidCredentials("the API key has been revoked")
    if key.expires_at is not None and key.expires_at <= now:
        raise TokenExpired("the API key has expired")
    user = _account(owner, "the API key's owner")
    granted = frozenset(key.permissions)
    return Principal(
        user=user,
        permissions=frozenset(p for p in permissions_for(user.role) if p.value in granted),
        method="api_key",
        api_key_id=key.id,
        api_key_expires_at=key.expires_at,
    )


class LiveSession:
    """An open stream's hold on its caller's credential.

    ``ended`` resolves with the reason (an AURORA error) once the credential no longer holds or
    no longer grants ``permission``: when it expires; at once when it is revoked, or its account
    deleted, through this gateway; at the next refresh when that happened on another replica.
    """

    def __init__(self, caller: Principal, permission: Permission | None) -> None:
        self.caller = caller
        self.permission = permission
        self.ended: asyncio.Future[AuroraError] = asyncio.get_running_loop().create_future()

    def end(self, reason: AuroraError) -> None:
        if not self.ended.done():
            self.ended.set_result(reason)

    def settle(self, current: Principal | AuroraError) -> Principal:
        """Take the caller as it stands now; end the session (and raise) when it may no longer
        read the stream."""
        if isinstance(current, AuroraError):
            self.end(current)
            raise current
        if self.permission is not None and not current.can(self.permission):
            denied = PermissionDenied({"required": self.permission.value})
            self.end(denied)
            raise denied
        self.caller = current
        return current


class Authenticator:
    """Resolves bearer tokens and API keys; caches users briefly and revoked ``jti``s in memory.

    The revocation set is loaded at start and refreshed from the database periodically, so a
    logout on another replica takes effect here within ``refresh_interval`` seconds. Open
    streams are watched (:meth:`watch`) and checked against the database at each refresh.
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
        self._principals: dict[str, Principal] = {}
        """The caller last built for each access token's ``jti``, reused while its account's
        snapshot is the same object (nothing else it holds can change)."""
        self._revoked: dict[str, datetime] = {}
        self._refreshed_at: datetime | None = None
        self._sessions: set[LiveSession] = set()
        self._purged_at = float("-inf")
        self.refresh_interval = refresh_interval

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

    async def refresh(self) -> None:
        """One refresh: the revocation set, then every open stream against the database."""
        await self.load_revocations()
        await self._recheck(list(self._sessions))

    async def refresh_step(self) -> None:
        """One turn of the refresh loop: :meth:`refresh`, and prune the revocation and login
        tables when the last pruning is :data:`PURGE_INTERVAL_SECONDS` old."""
        await self.refresh()
        if time.monotonic() - self._purged_at > PURGE_INTERVAL_SECONDS:
            async with self._db.session() as session:
                await purge_expired_revocations(db=session)
                await purge_login_throttles(db=session)
            self._purged_at = time.monotonic()

    def refresh_loop(self) -> Periodic:
        """:meth:`refresh_step` every ``refresh_interval`` seconds, the first one interval
        after start (housekeeping never holds up start-up); a failed turn is logged and the
        loop goes on."""
        return Periodic(
            "revocation-refresh",
            self.refresh_step,
            self.refresh_interval,
            log=log,
            first_wait=True,
        )

    def forget_user(self, user_id: str) -> None:
        """Drop a user from the cache after it changed (its next request reads it afresh)."""
        self._users.pop(user_id, None)

    async def account_changed(self, user_id: str) -> None:
        """A user was deleted, disabled or given another role here: forget the cached copy and
        check its open streams now."""
        self.forget_user(user_id)
        await self._recheck([s for s in self._sessions if s.caller.account_id == user_id])

    def note_revoked(self, jti: str, expires_at: datetime) -> None:
        """Refuse the token with this ``jti`` from now on, and end its open streams."""
        self._revoked[jti] = expires_at
        for session in list(self._sessions):
            if session.caller.token_jti == jti:
                session.end(InvalidCredentials("the access token has been revoked"))

    def note_key_revoked(self, key_id: str) -> None:
        """End the open streams of an API key revoked here (requests re-read it anyway)."""
        for session in list(self._sessions):
            if session.caller.api_key_id == key_id:
                session.end(InvalidCredentials("the API key has been revoked"))

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
        if cached is not None and cached[0] == entry:
            entry = cached[0]  # unchanged: the same object, so what was built on it is reused
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
        user = _account(await self._user(claims.subject), "the account")
        known = self._principals.get(claims.jti)
        if known is not None and known.user is user:
            return known
        _issued_after_reset(user, claims.issued_at)
        caller = Principal(
            user=user,
            permissions=permissions_for(user.role),
            method="token",
            token_jti=claims.jti,
            token_expires_at=claims.expires_at,
            token_issued_at=claims.issued_at,
        )
        if len(self._principals) >= PRINCIPALS_KEPT:
            del self._principals[next(iter(self._principals))]
        self._principals[claims.jti] = caller
        return caller

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
        caller = _key_principal(key, await self._user(key.user_id), now)
        if key.last_used_at is None or now - key.last_used_at > timedelta(minutes=1):
            async with self._db.session() as session:
                await session.execute(
                    update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now)
                )
                await session.commit()
        return caller

    async def authenticate(self, *, bearer: str | None, api_key: str | None) -> Principal:
        """Resolve the presented credential; AURORA-4010 when there is none."""
        if bearer:
            return await self.from_bearer(bearer)
        if api_key:
            return await self.from_api_key(api_key)
        raise AuthenticationRequired("send 'Authorization: Bearer <token>' or 'X-API-Key'")

    @contextlib.contextmanager
    def watch(self, caller: Principal, permission: Permission | None) -> Iterator[LiveSession]:
        """Watch ``caller``'s credential for as long as a stream is open (see
        :class:`LiveSession`); ended already when it has lapsed."""
        session = LiveSession(caller, permission)
        timer: asyncio.TimerHandle | None = None
        if caller.expires_at is not None:
            left = (caller.expires_at - utcnow()).total_seconds()
            if left <= 0:
                session.end(_expired(caller))
            else:
                timer = asyncio.get_running_loop().call_later(left, session.end, _expired(caller))
        self._sessions.add(session)
        try:
            yield session
        finally:
            self._sessions.discard(session)
            if timer is not None:
                timer.cancel()

    async def recheck(self, session: LiveSession) -> Principal:
        """The session's caller as the database has it at this moment (revocation, account,
        role, key), for an action sent over the stream; ends the session and raises when the
        credential no longer holds or no longer grants the stream's permission."""
        [current] = await self._current([session.caller])
        return session.settle(current)

    async def _recheck(self, sessions: Sequence[LiveSession]) -> None:
        if not sessions:
            return
        for session, current in zip(
            sessions, await self._current([s.caller for s in sessions]), strict=True
        ):
            with contextlib.suppress(AuroraError):
                session.settle(current)

    async def _current(self, callers: Sequence[Principal]) -> list[Principal | AuroraError]:
        """Each caller as the database has it now (never the cache), or why it no longer holds."""
        now = utcnow()
        user_ids = {c.account_id for c in callers if c.account_id is not None}
        key_ids = {c.api_key_id for c in callers if c.api_key_id is not None}
        jtis = {c.token_jti for c in callers if c.token_jti is not None}
        users: dict[str, UserSnapshot] = {}
        keys: dict[str, ApiKey] = {}
        revoked = jtis & self._revoked.keys()
        async with self._db.session() as db:
            for chunk in _chunks(user_ids):
                users.update(
                    (u.id, UserSnapshot.of(u))
                    for u in await db.scalars(select(User).where(User.id.in_(chunk)))
                )
            for chunk in _chunks(key_ids):
                keys.update(
                    (k.id, k) for k in await db.scalars(select(ApiKey).where(ApiKey.id.in_(chunk)))
                )
            for chunk in _chunks(jtis - revoked):
                revoked.update(
                    await db.scalars(select(RevokedToken.jti).where(RevokedToken.jti.in_(chunk)))
                )
        verdicts: list[Principal | AuroraError] = []
        for caller in callers:
            try:
                verdicts.append(_as_now(caller, users, keys, revoked, now))
            except AuroraError as err:
                verdicts.append(err)
        return verdicts


def _as_now(
    caller: Principal,
    users: dict[str, UserSnapshot],
    keys: dict[str, ApiKey],
    revoked: set[str],
    now: datetime,
) -> Principal:
    if caller.api_key_id is not None:
        key = keys.get(caller.api_key_id)
        if key is None:  # deleted, with its owner
            _account(users.get(caller.user_id), "the API key's owner")
            raise InvalidCredentials("the API key no longer exists")
        return _key_principal(key, users.get(caller.user_id), now)
    if caller.expires_at is not None and caller.expires_at <= now:
        raise _expired(caller)
    if caller.token_jti in revoked:
        raise InvalidCredentials("the access token has been revoked")
    if caller.account_id is None:
        return caller
    user = _account(users.get(caller.account_id), "the account")
    _issued_after_reset(user, caller.token_issued_at)
    return replace(caller, user=user, permissions=permissions_for(user.role))


def _chunks(ids: Iterable[str]) -> Iterator[list[str]]:
    pending = sorted(ids)
    for start in range(0, len(pending), IN_CHUNK):
        yield pending[start : start + IN_CHUNK]


async def _charge_check(
    db: AsyncSession, *, username: str, now: datetime, max_checks: int, window_seconds: int
) -> tuple[int, datetime] | None:
    """Charge one password check to ``username`` in one statement (atomic across replicas):
    the count within the window and its new end, or None when the name is locked."""
    ends = now + timedelta(seconds=window_seconds)
    over = LoginThrottle.window_ends_at <= now
    insert = upsert_into(db, LoginThrottle)
    charged = (
        insert.values(username=username, checks=1, window_ends_at=ends)
        .on_conflict_do_update(
            index_elements=[LoginThrottle.username],
            set_={
                "checks": case((over, 1), else_=LoginThrottle.checks + 1),
                "window_ends_at": ends,
            },
            where=or_(over, LoginThrottle.checks < max_checks),
        )
        .returning(LoginThrottle.checks, LoginThrottle.window_ends_at)
    )
    row = (await db.execute(charged)).one_or_none()
    return None if row is None else (row[0], row[1])


async def login(
    *,
    db: AsyncSession,
    hasher: PasswordHasher,
    tokens: TokenService,
    username: str,
    password: str,
    max_failures: int,
    lockout_seconds: int,
    ttl_seconds: int | None = None,
) -> tuple[IssuedToken, str]:
    """Check a password and issue an access token; returns it with the user's id.

    Wrong credentials are AURORA-4012. Each check is charged to the username before the hash
    is computed, whether or not an account has that name: at ``max_failures`` charged checks
    (failures within ``lockout_seconds`` of each other, or checks running at once) the name is
    locked for ``lockout_seconds`` and every attempt meanwhile is AURORA-4290 with
    ``Retry-After``. A correct password clears the count only when no other check was charged
    after its own, so it never lifts a lock that a parallel burst of guesses set.
    """
    now = utcnow()
    charged = await _charge_check(
        db, username=username, now=now, max_checks=max_failures, window_seconds=lockout_seconds
    )
    await db.commit()
    if charged is None:
        ends = await db.scalar(
            select(LoginThrottle.window_ends_at).where(LoginThrottle.username == username)
        )
        await db.commit()
        remaining = int((ends - now).total_seconds()) + 1 if ends is not None else 1
        raise RateLimited(
            {"reason": "account temporarily locked after repeated failed logins"},
            retry_after=max(remaining, 1),
        )
    checks, window_ends_at = charged
    user = (
        await db.execute(
            select(User.id, User.username, User.password_hash, User.is_active).where(
                User.username == username
            )
        )
    ).one_or_none()
    await db.commit()  # no connection held while the hash is computed
    ok = await hasher.verify_async(user.password_hash if user else None, password)
    if user is None or not ok or not user.is_active:
        raise InvalidCredentials("wrong username or password")  # the charge stands
    changes: dict[str, object] = {"last_login_at": now}
    if user.password_hash and hasher.needs_rehash(user.password_hash):
        changes["password_hash"] = await hasher.hash_async(password)
    await db.execute(update(User).where(User.id == user.id).values(changes))
    await db.execute(
        delete(LoginThrottle).where(
            LoginThrottle.username == username,
            LoginThrottle.checks == checks,
            LoginThrottle.window_ends_at == window_ends_at,
        )
    )
    await db.commit()
    issued = tokens.issue(user.id, ttl_seconds=ttl_seconds, claims={"username": user.username})
    return issued, user.id


async def revoke_token(
    *, db: AsyncSession, jti: str, user_id: str | None, expires_at: datetime
) -> None:
    """Refuse the token with this ``jti`` from now until it would have expired."""
    if await db.get(RevokedToken, jti) is None:
        db.add(RevokedToken(jti=jti, user_id=user_id, expires_at=expires_at))
        await db.commit()


async def purge_expired_revocations(*, db: AsyncSession) -> int:
    """Forget revocations of tokens that have expired anyway; returns how many."""
    result = await db.execute(delete(RevokedToken).where(RevokedToken.expires_at <= utcnow()))
    await db.commit()
    return int(getattr(result, "rowcount", 0) or 0)


async def purge_login_throttles(*, db: AsyncSession) -> int:
    """Forget the password checks of windows that have ended; returns how many names."""
    result = await db.execute(delete(LoginThrottle).where(LoginThrottle.window_ends_at <= utcnow()))
    await db.commit()
    return int(getattr(result, "rowcount", 0) or 0)


def check_key_owner(owner: Principal) -> None:
    """Only a signed-in account creates API keys. A key cannot create keys: one it made could
    outlive it or survive its revocation. An agent token has no account to own one."""
    if owner.account_id is None:
        raise field_error(["header", "Authorization"], "service identities cannot own API keys")
    if owner.method == "api_key":
        raise PermissionDenied(
            {
                "reason": "an API key cannot create API keys; sign in "
                "(POST /api/v1/auth/token) and create it with the access token"
            }
        )


async def create_api_key(
    *,
    db: AsyncSession,
    owner: Principal,
    name: str,
    permissions: list[Permission] | None,
    expires_at: datetime | None,
) -> tuple[ApiKey, str]:
    """Create a key limited to ``permissions`` (default: all the caller's); return it with its
    plaintext, which is never stored and never shown again. See :func:`check_key_owner`."""
    check_key_owner(owner)
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


def _keys_of(user_id: str) -> Select[ApiKey]:
    return select(ApiKey).where(ApiKey.user_id == user_id).order_by(ApiKey.created_at, ApiKey.id)


async def list_api_keys(*, db: AsyncSession, user_id: str) -> list[ApiKey]:
    """Every API key of the user, oldest first."""
    return list(await db.scalars(_keys_of(user_id)))


async def list_own_api_keys(
    *, db: AsyncSession, caller: Principal, query: PageQuery
) -> tuple[list[ApiKey], int]:
    """One page of the caller's API keys, oldest first."""
    return await fetch_rows(db, _keys_of(caller.user_id), limit=query.limit, offset=query.offset)


async def revoke_api_key(*, db: AsyncSession, actor: Principal, key_id: str) -> ApiKey:
    """Revoke a key of the caller's (an admin may revoke anyone's); AURORA-4040 otherwise."""
    key = await get_or_404(db, ApiKey, key_id, name="api_key")
    if key.user_id != actor.user_id and not actor.is_admin:
        raise NotFound({"api_key": key_id})
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        await db.commit()
    return key
