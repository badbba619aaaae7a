"""Users routes: the caller's profile, and user management for admins."""

from __future__ import annotations

from aiohttp import web

from core.security.permissions import Permission
from gateway.http import json_response, no_content, parse_json, parse_query, principal
from gateway.keys import AUTHENTICATOR, BUS, DATABASE, HASHER
from gateway.routing import Access, Route
from gateway.users import service
from gateway.users.schemas import UserCreate, UserListQuery, UserMe, UserPage, UserRead


async def get_me(request: web.Request) -> web.Response:
    caller = principal(request)
    profile = {field: getattr(caller.user, field) for field in UserRead.model_fields}
    me = UserMe(**profile, permissions=caller.permission_names, auth_method=caller.method)
    return json_response(me)


async def list_users(request: web.Request) -> web.Response:
    query = parse_query(request, UserListQuery)
    async with request.app[DATABASE].session() as db:
        users, total = await service.list_users(
            db=db, limit=query.limit, offset=query.offset, role=query.role
        )
    page = UserPage(
        items=[UserRead.model_validate(u) for u in users],
        total=total,
        limit=query.limit,
        offset=query.offset,
    )
    return json_response(page)


async def create_user(request: web.Request) -> web.Response:
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
    caller = principal(request)
    async with request.app[DATABASE].session() as db:
        user = await service.delete_user(
            db=db, actor_id=caller.user_id, username=request.match_info["username"]
        )
    await request.app[AUTHENTICATOR].account_changed(user.id)
    request.app[BUS].publish("users.deleted", {"username": user.username, "by": caller.username})
    return no_content()


ROUTES = [
    Route("GET", "/api/v1/users/me", get_me, Access.AUTHENTICATED),
    Route("GET", "/api/v1/users", list_users, Permission.ADMIN),
    Route("POST", "/api/v1/users", create_user, Permission.ADMIN),
    Route("DELETE", "/api/v1/users/{username}", delete_user, Permission.ADMIN),
]
