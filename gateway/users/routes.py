"""Users routes: the caller's profile, and user management for admins."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import Conflict, NotFound
from core.security.permissions import Permission
from gateway.http import JSON_TYPE, json_response, no_content, parse_json, principal
from gateway.kernel import list_route
from gateway.keys import AUTHENTICATOR, BUS, DATABASE, HASHER
from gateway.routing import Access, Route
from gateway.users import service
from gateway.users.models import User
from gateway.users.schemas import UserCreate, UserListQuery, UserMe, UserRead

ME_BODIES_KEPT = 1024
"""How many callers' ``/users/me`` bodies are kept (the oldest goes first)."""
_me_bodies: dict[tuple[int, str, frozenset[Permission]], tuple[UserRead, bytes]] = {}
"""By the caller's account snapshot (its identity: the entry holds it, so no other object takes
its id while the entry lives), how it signed in, and what it may do (an API key may grant
less than its owner's role)."""


async def get_me(request: web.Request) -> web.Response:
    """The caller's profile, permissions and how it signed in."""
    caller = principal(request)
    # The body is the same for one snapshot (frozen: a change to the account is a new one, and
    # the authenticator keeps the old one while nothing changed) signed in with the same
    # grant: built once, not validated and serialised on every call.
    key = (id(caller.user), caller.method, caller.permissions)
    known = _me_bodies.get(key)
    if known is not None:
        body = known[1]
    else:
        me = UserMe(
            **caller.user.model_dump(),
            permissions=caller.permission_names,
            auth_method=caller.method,
        )
        body = me.model_dump_json().encode()
        if len(_me_bodies) >= ME_BODIES_KEPT:
            del _me_bodies[next(iter(_me_bodies))]
        _me_bodies[key] = (caller.user, body)
    return web.Response(body=body, content_type=JSON_TYPE)


async def _page(*, db: AsyncSession, query: UserListQuery) -> tuple[list[User], int]:
    return await service.list_users(db=db, limit=query.limit, offset=query.offset, role=query.role)


async def create_user(request: web.Request) -> web.Response:
    """Create a user (a taken username is AURORA-4090)."""
    body = await parse_json(request, UserCreate)
    async with request.app[DATABASE].session() as db:
        user = await service.create_user(
            db=db,
            hasher=request.app[HASHER],
            username=body.username,
            password=body.password.get_secret_value(),
            role=body.role,
            email=body.email,
            full_name=body.full_name,
        )
    request.app[BUS].publish(
        "users.created", {"username": user.username, "by": principal(request).username}
    )
    return json_response(UserRead.model_validate(user), status=201)


async def delete_user(request: web.Request) -> web.Response:
    """Delete a user and its API keys (never yourself, never the last admin)."""
    caller = principal(request)
    async with request.app[DATABASE].session() as db:
        user = await service.delete_user(
            db=db, actor_id=caller.user_id, username=request.match_info["username"]
        )
    await request.app[AUTHENTICATOR].account_changed(user.id)
    request.app[BUS].publish("users.deleted", {"username": user.username, "by": caller.username})
    return no_content()


ROUTES = [
    Route("GET", "/api/v1/users/me", get_me, Access.AUTHENTICATED, response=UserMe),
    list_route(
        "/api/v1/users",
        _page,
        UserRead,
        Permission.ADMIN,
        query=UserListQuery,
        summary="List users, by username",
    ),
    Route(
        "POST",
        "/api/v1/users",
        create_user,
        Permission.ADMIN,
        body=UserCreate,
        response=UserRead,
        status=201,
        errors=(Conflict,),
    ),
    Route(
        "DELETE",
        "/api/v1/users/{username}",
        delete_user,
        Permission.ADMIN,
        status=204,
        errors=(NotFound, Conflict),
    ),
]
