"""Auth routes: providers, password login, logout, API keys."""

from __future__ import annotations

from aiohttp import web

from core.db.base import utcnow
from core.errors import (
    InvalidCredentials,
    NotFound,
    PermissionDenied,
    RateLimited,
    ValidationFailed,
)
from core.validation import field_error
from gateway.auth import service
from gateway.auth.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyListQuery,
    ApiKeyRead,
    AuthProvider,
    AuthProviders,
    TokenRequest,
    TokenResponse,
)
from gateway.http import json_response, no_content, parse_json, parse_json_or_form, principal
from gateway.kernel import list_route
from gateway.keys import AUTHENTICATOR, BUS, DATABASE, HASHER, SETTINGS, TOKENS
from gateway.routing import Access, Route
from gateway.sso.schemas import OIDC_LOGIN, SAML_LOGIN

TOKEN_PATH = "/api/v1/auth/token"


async def list_providers(request: web.Request) -> web.Response:
    """The ways to sign in: the password (unless the deployment turned it off), then each
    configured identity provider."""
    settings = request.app[SETTINGS]
    providers = [
        AuthProvider(
            id="local", type="password", name="Username and password", login_url=TOKEN_PATH
        )
        for _ in range(settings.password_login)
    ]
    providers += [
        AuthProvider(id=p.id, type="oidc", name=p.name, login_url=f"{OIDC_LOGIN}?provider={p.id}")
        for p in settings.oidc_providers
    ]
    providers += [
        AuthProvider(id=p.id, type="saml", name=p.name, login_url=f"{SAML_LOGIN}?provider={p.id}")
        for p in settings.saml_providers
    ]
    return json_response(AuthProviders(providers=providers))


async def create_token(request: web.Request) -> web.Response:
    """Sign in with a password (JSON or an OAuth2 password-grant form): an access token."""
    body = await parse_json_or_form(request, TokenRequest)
    settings = request.app[SETTINGS]
    if not settings.password_login:
        raise PermissionDenied(
            {"reason": "password sign-in is turned off here: sign in with an identity provider"}
        )
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
    """End the bearer-token session: the token is refused from now on."""
    caller = principal(request)
    if caller.token_jti is None or caller.token_expires_at is None:
        raise field_error(
            ["header", "Authorization"],
            "logout ends a bearer-token session; "
            "revoke an API key with DELETE /api/v1/auth/api-keys/{key_id}",
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


async def create_api_key(request: web.Request) -> web.Response:
    """Create an API key for the signed-in account; its secret is shown this once."""
    service.check_key_owner(principal(request))
    body = await parse_json(request, ApiKeyCreate)
    if body.expires_at is not None and body.expires_at <= utcnow():
        raise field_error(["body", "expires_at"], "must be in the future")
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
    """Revoke an API key of the caller's (an admin: anyone's)."""
    async with request.app[DATABASE].session() as db:
        key = await service.revoke_api_key(
            db=db, actor=principal(request), key_id=request.match_info["key_id"]
        )
    request.app[AUTHENTICATOR].note_key_revoked(key.id)
    return no_content()


API_KEYS = "/api/v1/auth/api-keys"
ROUTES = [
    Route("GET", "/api/v1/auth/providers", list_providers, Access.PUBLIC, response=AuthProviders),
    Route(
        "POST",
        TOKEN_PATH,
        create_token,
        Access.PUBLIC,
        body=TokenRequest,
        body_media="application/x-www-form-urlencoded",
        response=TokenResponse,
        errors=(InvalidCredentials, PermissionDenied, RateLimited),
    ),
    Route(
        "POST",
        "/api/v1/auth/logout",
        logout,
        Access.AUTHENTICATED,
        status=204,
        errors=(ValidationFailed,),
    ),
    list_route(
        API_KEYS,
        service.list_own_api_keys,
        ApiKeyRead,
        Access.AUTHENTICATED,
        query=ApiKeyListQuery,
        by_caller=True,
        summary="A page of the caller's API keys",
    ),
    Route(
        "POST",
        API_KEYS,
        create_api_key,
        Access.AUTHENTICATED,
        body=ApiKeyCreate,
        response=ApiKeyCreated,
        status=201,
        errors=(PermissionDenied,),
    ),
    Route(
        "DELETE",
        API_KEYS + "/{key_id}",
        delete_api_key,
        Access.AUTHENTICATED,
        status=204,
        errors=(NotFound,),
    ),
]
