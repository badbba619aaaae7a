"""Single sign-on, the platform's side of it: sign-ins under way (stored, so that the provider's
answer may reach any replica, and used once), and the user a provider's account signs in as.

Users are provisioned just in time: the first sign-in of a provider's account (its ``sub`` or
NameID) makes an AuroraSOC user, linked to it, with the role the provider's groups map to
(:meth:`core.security.sso.OidcProvider.role_for`). The role is evaluated again at every sign-in:
a changed role is written, and every session of the user has the new role's permissions from
its next request (a session carries no role of its own); an account whose groups no longer map
to any role is refused, and its sessions end. A provider's account never takes
over a user it did not make: a username already taken (a local user, another provider's) is
refused, for an administrator to sort out.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.base import utcnow
from core.errors import Conflict, InvalidCredentials, PermissionDenied
from core.security.sso import IdentityProvider
from core.security.tokens import IssuedToken, TokenService
from gateway.sso.models import SeenAssertion, SsoRequest, UserIdentity
from gateway.users.models import User
from gateway.users.schemas import RESERVED_USERNAMES, USERNAME_PATTERN

REQUEST_TTL: Final = timedelta(minutes=10)
"""How long a user has at the provider before the sign-in must start again."""
MAX_GROUPS: Final = 1000
_NOT_NAME: Final = re.compile(r"[^a-z0-9._-]+")

Kind = Literal["oidc", "saml"]


async def begin(
    db: AsyncSession,
    *,
    provider: str,
    kind: Kind,
    redirect_to: str | None,
    nonce: str | None = None,
    code_verifier: str | None = None,
    request_id: str | None = None,
) -> str:
    """Record a sign-in sent to ``provider``; its ``state`` (RelayState), for the answer."""
    now = utcnow()
    await db.execute(delete(SsoRequest).where(SsoRequest.expires_at < now))
    state = secrets.token_urlsafe(32)
    db.add(
        SsoRequest(
            state=state,
            provider=provider,
            kind=kind,
            nonce=nonce,
            code_verifier=code_verifier,
            request_id=request_id,
            redirect_to=redirect_to,
            created_at=now,
            expires_at=now + REQUEST_TTL,
        )
    )
    await db.commit()
    return state


async def note_request(db: AsyncSession, *, state: str, request_id: str) -> None:
    """Record the id of the SAML request sent for sign-in ``state`` (its answer's
    ``InResponseTo``)."""
    row = await db.get(SsoRequest, state)
    if row is not None:
        row.request_id = request_id
        await db.commit()


async def take(db: AsyncSession, *, state: str, kind: Kind) -> SsoRequest:
    """The sign-in ``state`` names, deleted as it is read (an answer used twice finds
    nothing); AURORA-4012 when there is none or it expired."""
    row: SsoRequest | None = await db.scalar(
        delete(SsoRequest)
        .where(SsoRequest.state == state, SsoRequest.kind == kind)
        .returning(SsoRequest)
    )
    await db.commit()
    if row is None:
        raise InvalidCredentials({"reason": "this sign-in is unknown or was already used"})
    if row.expires_at < utcnow():
        raise InvalidCredentials({"reason": "this sign-in took too long: start again"})
    return row


def username_from(value: str) -> str:
    """A platform username from a provider's (``Alice.Smith@corp.example`` becomes
    ``alice.smith.corp.example``); AURORA-4012 when nothing usable is left."""
    name = _NOT_NAME.sub("-", value.strip().lower().replace("@", ".")).strip("-._")[:64]
    if not re.fullmatch(USERNAME_PATTERN, name) or name in RESERVED_USERNAMES:
        raise InvalidCredentials({"reason": "the provider gave no usable username"})
    return name


def groups_from(value: object) -> list[str]:
    """The groups of a claim or attribute: a list of strings, or one string."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [str(g) for g in value[:MAX_GROUPS] if isinstance(g, str | int)]
    return []


async def sign_in(
    db: AsyncSession,
    *,
    tokens: TokenService,
    provider: IdentityProvider,
    subject: str,
    username: str,
    email: str | None,
    full_name: str | None,
    groups: Iterable[str],
    changed: Callable[[str], None],
) -> tuple[IssuedToken, str]:
    """The session of the user ``provider``'s account ``subject`` signs in as (made or updated
    as the module docstring says), with the user's id; ``changed(user_id)`` when an existing
    user's role changed or its sessions ended (for the caches of who may do what)."""
    held = sorted(set(groups))
    role = provider.role_for(held)
    now = utcnow()
    identity = await db.get(UserIdentity, (provider.id, subject))
    if identity is None:
        if role is None:
            raise PermissionDenied({"reason": "none of your groups is given a role here"})
        name = username_from(username)
        if await db.scalar(select(User.id).where(User.username == name)) is not None:
            raise Conflict(
                {
                    "reason": f"the username {name!r} belongs to another account: an "
                    "administrator must remove or rename it first"
                }
            )
        user = User(
            username=name,
            email=email,
            full_name=full_name,
            role=role.value,
            password_hash=None,
            last_login_at=now,
        )
        db.add(user)
        await db.flush()
        db.add(
            UserIdentity(
                provider=provider.id,
                subject=subject,
                user_id=user.id,
                groups=held,
                created_at=now,
                last_login_at=now,
            )
        )
    else:
        found = await db.get(User, identity.user_id)
        if found is None or not found.is_active:
            raise InvalidCredentials({"reason": "this account is disabled"})
        user = found
        identity.groups = held
        identity.last_login_at = now
        if role is None:
            # The groups that gave a role are gone: so are the sessions they gave (every
            # token issued up to this moment: they carry whole seconds).
            user.tokens_valid_after = now.replace(microsecond=0) + timedelta(seconds=1)
            await db.commit()
            changed(user.id)
            raise PermissionDenied({"reason": "none of your groups is given a role here"})
        if user.role != role.value:
            user.role = role.value
            await db.flush()
            changed(user.id)
        user.email = email or user.email
        user.full_name = full_name or user.full_name
        user.last_login_at = now
    await db.commit()
    issued = tokens.issue(user.id, claims={"username": user.username, "idp": provider.id})
    return issued, user.id


async def first_use(
    db: AsyncSession, *, provider: str, assertion_id: str, expires_at: float
) -> None:
    """Note a SAML assertion as used; AURORA-4012 when it was used before (a replay). It is
    kept until it would have expired anyway (then its own validity refuses it)."""
    now = utcnow()
    await db.execute(delete(SeenAssertion).where(SeenAssertion.expires_at < now))
    until = max(
        datetime.fromtimestamp(expires_at, UTC) if expires_at > 0 else now,
        now,
    ) + timedelta(minutes=10)
    db.add(SeenAssertion(id=f"{provider}:{assertion_id}"[:300], expires_at=until))
    try:
        await db.commit()
    except IntegrityError as err:
        await db.rollback()
        raise InvalidCredentials({"reason": "this SAML assertion was already used"}) from err
