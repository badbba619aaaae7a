"""Auth routes: providers, password login, logout, API keys."""

from __future__ import annotations

from aiohttp import web

from core.db.base import utcnow
from core.errors import ValidationFailed
from gateway.auth import service
from gateway.auth.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPage,
    ApiKeyRead,
    AuthProvider,
    AuthProviders,
    TokenRequest,
    TokenResponse,
)
from gateway.http import json_response, no_content, parse_json, parse_json_or_form, principal
from gateway.keys import AUTHENTICATOR, BUS, DATABASE, HASHER, SETTINGS, TOKENS
from gateway.routing import Access, Route

TOKEN_PATH = "/api/v1/auth/token"


async def list_providers(request: web.Request) -> web.Response:
    providers = [
        AuthProvider(
            id="local", type="password", name="Username and password", login_url=TOKEN_PATH
        )
    ]
    return json_response(AuthProviders(providers=providers))


async def create_token(request: web.Request) -> web.Response:
    body = await parse_json_or_form(request, TokenRequest)
    settings = request.app[SETTINGS]
    async with request.app[DATABASE].session() as db:
        issued, user_id = await service.login(
            db=db,
            hasher=request.app[HASHER],
            tokens=request.app[TOKENS],
            username=body.username,
            password=body.password,
            max_failures=settings.login_max_failures,
            lockout_seconds=settings.login_lockout_seconds,
        )
    request.app[AUTHENTICATOR].forget_user(user_id)
    response = json_response(
        TokenResponse(
            access_token=issued.token, expires_in=issued.expires_in, expires_at=issued.expires_at
        )
    )
    response.headers["Cache-Control"] = "no-store"
    return response


async def logout(request: web.Request) -> web.Response:
    caller = principal(request)
    if caller.token_jti is None or caller.token_expires_at is None:
        raise ValidationFailed(
            [
                {
                    "loc": ["header", "Authorization"],
                    "msg": "logout ends a bearer-token session; "
                    "revoke an API key with DELETE /api/v1/auth/api-keys/{key_id}",
                    "type": "value_error",
                }
            ]
        )
    async with request.app[DATABASE].session() as db:
        await service.revoke_token(
            db=db,
            jti=caller.token_jti,
            user_id=caller.account_id,
            expires_at=caller.token_expires_at,
        )
    request.app[AUTHENTICATOR].note_revoked(caller.token_jti, caller.token_expires_at)
    request.app[BUS].publish("auth.token.revoked", {"user_id": caller.user_id})
    return no_content()


async def list_api_keys(request: web.Request) -> web.Response:
    async with request.app[DATABASE].session() as db:
        keys = await service.list_api_keys(db=db, user_id=principal(request).user_id)
    items = [ApiKeyRead.model_validate(key) for key in keys]
    return json_response(ApiKeyPage(items=items, total=len(items)))


async def create_api_key(request: web.Request) -> web.Response:
    service.check_key_owner(principal(request))
    body = await parse_json(request, ApiKeyCreate)
    if body.expires_at is not None and body.expires_at <= utcnow():
        raise ValidationFailed(
            [{"loc": ["body", "expires_at"], "msg": "must be in the future", "type": "value_error"}]
        )
    async with request.app[DATABASE].session() as db:
        key, plaintext = await service.create_api_key(
            db=db,
            owner=principal(request),
            name=body.name,
            permissions=body.permissions,
            expires_at=body.expires_at,
        )
    created = ApiKeyCreated.model_validate(
        {**ApiKeyRead.model_validate(key).model_dump(), "key": plaintext}
    )
    response = json_response(created, status=201)
    response.headers["Cache-Control"] = "no-store"
    return response


async def delete_api_key(request: web.Request) -> web.Response:
    async with request.app[DATABASE].session() as db:
        key = await service.revoke_api_key(
            db=db, actor=principal(request), key_id=request.match_info["key_id"]
        )
    request.app[AUTHENTICATOR].note_key_revoked(key.id)
    return no_content()


ROUTES = [
    Route("GET", "/api/v1/auth/providers", list_providers, Access.PUBLIC),
    Route("POST", TOKEN_PATH, create_token, Access.PUBLIC),
    Route("POST", "/api/v1/auth/logout", logout, Access.AUTHENTICATED),
    Route("GET", "/api/v1/auth/api-keys", list_api_keys, Access.AUTHENTICATED),
    Route("POST", "/api/v1/auth/api-keys", create_api_key, Access.AUTHENTICATED),
    Route("DELETE", "/api/v1/auth/api-keys/{key_id}", delete_api_key, Access.AUTHENTICATED),
]
