"""User management: create, list, delete (never yourself, never the last admin), reset a
password, bootstrap."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from pydantic import ValidationError
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import utcnow
from core.db.lookup import get_or_404
from core.db.pages import fetch_rows
from core.errors import Conflict, NotFound
from core.security.passwords import PasswordHasher
from core.security.permissions import Role
from core.validation import field_errors, validate
from gateway.auth.models import LoginThrottle
from gateway.users.models import User
from gateway.users.schemas import UserCreate

SERVICE_ROLES = frozenset({Role.SERVICE_AGENT, Role.SERVICE_RESPONDER})


async def get_user_by_username(*, db: AsyncSession, username: str) -> User:
    user = (await db.execute(select(User).where(User.username == username))).scalar_one_or_none()
    if user is None:
        raise NotFound({"username": username})
    return user


async def get_user(*, db: AsyncSession, user_id: str) -> User:
    return await get_or_404(db, User, user_id, name="user_id")


async def list_users(
    *, db: AsyncSession, limit: int, offset: int, role: str | None = None
) -> tuple[list[User], int]:
    """One page of the users (of ``role``, when given), by username."""
    query = select(User).order_by(User.username)
    if role is not None:
        query = query.where(User.role == role)
    return await fetch_rows(db, query, limit=limit, offset=offset)


async def create_user(
    *,
    db: AsyncSession,
    hasher: PasswordHasher,
    username: str,
    password: str | None,
    role: Role,
    email: str | None = None,
    full_name: str | None = None,
) -> User:
    """Create a user; ``password`` None makes a service identity that cannot log in.

    A taken username is AURORA-4090.
    """
    user = User(
        username=username,
        role=role.value,
        password_hash=await hasher.hash_async(password) if password is not None else None,
        email=email,
        full_name=full_name,
    )
    db.add(user)
    try:
        await db.commit()
    except IntegrityError as err:
        await db.rollback()
        raise Conflict({"username": username, "reason": "username already exists"}) from err
    return user


async def delete_user(*, db: AsyncSession, actor_id: str, username: str) -> User:
    """Delete a user and its API keys. Deleting yourself or the last admin is AURORA-4090."""
    user = await get_user_by_username(db=db, username=username)
    if user.id == actor_id:
        raise Conflict({"username": username, "reason": "you cannot delete yourself"})
    if user.role == Role.ADMIN:
        # Lock the admin rows so two admins deleting each other cannot both succeed.
        admins = (
            await db.execute(
                select(User.id).where(User.role == Role.ADMIN, User.is_active).with_for_update()
            )
        ).all()
        if len(admins) <= 1:
            raise Conflict({"username": username, "reason": "the last admin cannot be deleted"})
    await db.delete(user)
    await db.commit()
    return user


async def reset_password(
    *, db: AsyncSession, hasher: PasswordHasher, username: str, password: str
) -> User:
    """Give ``username`` a new password (held to the rules of :func:`create_user`'s callers,
    AURORA-4220 otherwise), lift its login lockout, and end its sessions: every access token
    issued to it before this second is refused from now on (by a running gateway within its
    user cache's lifetime). A service identity has no password to reset: AURORA-4090."""
    user = await get_user_by_username(db=db, username=username)
    if user.role in SERVICE_ROLES:
        raise Conflict(
            {"username": username, "reason": "a service identity has no password; it uses tokens"}
        )
    validate(UserCreate, {"username": user.username, "password": password, "role": user.role})
    user.password_hash = await hasher.hash_async(password)
    user.tokens_valid_after = utcnow().replace(microsecond=0)
    user.failed_logins, user.locked_until = 0, None
    await db.execute(delete(LoginThrottle).where(LoginThrottle.username == user.username))
    await db.commit()
    return user


@dataclass(frozen=True, slots=True)
class Bootstrap:
    username: str
    created: bool
    generated_password: str | None


async def bootstrap_admin(
    *, db: AsyncSession, hasher: PasswordHasher, username: str, password: str | None
) -> Bootstrap:
    """Create the first admin unless that user exists; generate a password when none is given.

    An existing user is left untouched (its password is never reset from the environment).
    """
    existing = (
        await db.execute(select(User).where(User.username == username))
    ).scalar_one_or_none()
    if existing is not None:
        return Bootstrap(username, created=False, generated_password=None)
    generated = None if password else secrets.token_urlsafe(18)
    try:
        UserCreate(username=username, password=password or generated, role=Role.ADMIN)
    except ValidationError as err:
        raise field_errors(
            (["AURORA_ADMIN_" + str(e["loc"][0]).upper()], e["msg"], e["type"])
            for e in err.errors(include_url=False, include_input=False)
        ) from err
    await create_user(
        db=db, hasher=hasher, username=username, password=password or generated, role=Role.ADMIN
    )
    return Bootstrap(username, created=True, generated_password=generated)
