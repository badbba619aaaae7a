"""Single sign-on routes: OpenID Connect sign-in and its callback.

After the provider's answer, a browser is sent to the ``redirect_uri`` the sign-in named (a path
of this platform, or a URL under ``AURORA_SSO_REDIRECT_URLS``) with the session in the URL's
fragment, which browsers never send to a server: ``#access_token=...&token_type=bearer&
expires_in=...``. A sign-in that named none is answered with the token as JSON, for API clients
that drive the browser themselves. The sign-in is also bound to the browser that started it: a
cookie holding its ``state``, which the callback must carry (so that nobody can make another's
browser finish a sign-in of theirs).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode

from aiohttp import ClientSession, web

from core.errors import (
    Conflict,
    InvalidCredentials,
    NotFound,
    PermissionDenied,
    ServiceUnavailable,
)
from core.security.sso import redirect_allowed
from core.security.tokens import IssuedToken
from core.validation import field_error
from gateway.auth.schemas import TokenResponse
from gateway.http import json_response, parse_json_or_form, parse_query
from gateway.keys import AUTHENTICATOR, BUS, DATABASE, SETTINGS, SSO, TOKENS
from gateway.routing import Access, Route
from gateway.sso import service
from gateway.sso.oidc import OidcClient, pkce_pair
from gateway.sso.saml import ACS, METADATA, SamlClient, issuer_of
from gateway.sso.schemas import (
    OIDC_CALLBACK,
    OIDC_LOGIN,
    SAML_LOGIN,
    OidcCallbackQuery,
    SamlAcsForm,
    SamlMetadataQuery,
    SsoLoginQuery,
)

STATE_COOKIE: Final = "aurora_sso_state"


@dataclass(slots=True)
class SsoClients:
    """The configured providers' clients, for the gateway's life."""

    oidc: dict[str, OidcClient]
    saml: dict[str, SamlClient]


@contextlib.asynccontextmanager
async def open_sso(app: web.Application) -> AsyncIterator[SsoClients]:
    settings = app[SETTINGS]
    async with ClientSession() as session:
        yield SsoClients(
            oidc={
                p.id: OidcClient(p, session=session, skew=settings.sso_clock_skew_seconds)
                for p in settings.oidc_providers
            },
            saml={
                p.id: SamlClient(
                    p, base_url=settings.base_url, skew=settings.sso_clock_skew_seconds
                )
                for p in settings.saml_providers
            },
        )


def _secure(request: web.Request) -> bool:
    return request.app[SETTINGS].base_url.startswith("https://")


def _no_store(response: web.StreamResponse) -> web.StreamResponse:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _target(request: web.Request, redirect_uri: str | None) -> str | None:
    if redirect_uri is not None and not redirect_allowed(
        redirect_uri, request.app[SETTINGS].sso_redirect_urls
    ):
        raise field_error(
            ["query", "redirect_uri"],
            "not an allowed redirect: a path of this platform, or a URL under "
            "AURORA_SSO_REDIRECT_URLS",
        )
    return redirect_uri


def signed_in(request: web.Request, issued: IssuedToken, redirect_to: str | None) -> web.Response:
    """The session, handed to the browser's redirect target or answered as JSON."""
    if redirect_to is None:
        response = json_response(
            TokenResponse(
                access_token=issued.token,
                expires_in=issued.expires_in,
                expires_at=issued.expires_at,
            )
        )
    else:
        fragment = urlencode(
            {
                "access_token": issued.token,
                "token_type": "bearer",
                "expires_in": issued.expires_in,
            }
        )
        response = web.Response(status=302, headers={"Location": f"{redirect_to}#{fragment}"})
    response.del_cookie(STATE_COOKIE, path=OIDC_CALLBACK)
    _no_store(response)
    return response


def _changed(request: web.Request, user_id: str) -> None:
    """A user's role changed, or its sessions ended: here at once, and on the other replicas
    (which hear ``users.*`` through the bridge)."""
    request.app[AUTHENTICATOR].forget_user(user_id)
    request.app[BUS].publish("users.role_changed", {"user_id": user_id})


async def oidc_login(request: web.Request) -> web.StreamResponse:
    """Send the browser to the provider's sign-in page (authorisation code flow, PKCE)."""
    query = parse_query(request, SsoLoginQuery)
    client = request.app[SSO].oidc.get(query.provider)
    if client is None:
        raise NotFound({"provider": query.provider})
    redirect_to = _target(request, query.redirect_uri)
    verifier, challenge = pkce_pair()
    nonce = secrets.token_urlsafe(32)
    async with request.app[DATABASE].session() as db:
        state = await service.begin(
            db,
            provider=client.provider.id,
            kind="oidc",
            redirect_to=redirect_to,
            nonce=nonce,
            code_verifier=verifier,
        )
    location = await client.authorization_url(
        redirect_uri=request.app[SETTINGS].base_url + OIDC_CALLBACK,
        state=state,
        nonce=nonce,
        challenge=challenge,
    )
    response = web.Response(status=302, headers={"Location": location})
    response.set_cookie(
        STATE_COOKIE,
        state,
        max_age=int(service.REQUEST_TTL.total_seconds()),
        path=OIDC_CALLBACK,
        httponly=True,
        secure=_secure(request),
        samesite="Lax",
    )
    return _no_store(response)


async def oidc_callback(request: web.Request) -> web.StreamResponse:
    """The provider's answer: the code exchanged, the ID token verified, the user signed in."""
    query = parse_query(request, OidcCallbackQuery)
    cookie = request.cookies.get(STATE_COOKIE, "")
    if not secrets.compare_digest(cookie.encode(), query.state.encode()):
        raise InvalidCredentials(
            {"reason": "the state is not the one this browser's sign-in was given"}
        )
    async with request.app[DATABASE].session() as db:
        started = await service.take(db, state=query.state, kind="oidc")
    client = request.app[SSO].oidc.get(started.provider)
    if client is None:  # the provider was removed from the configuration meanwhile
        raise InvalidCredentials({"reason": "the provider of this sign-in is not configured"})
    if query.iss is not None and query.iss.rstrip("/") != client.provider.issuer:
        raise InvalidCredentials({"reason": "the answer is from another issuer"})
    if query.error is not None or query.code is None:
        raise InvalidCredentials(
            {"reason": f"the provider did not sign you in ({(query.error or 'no code')[:100]})"}
        )
    assert started.code_verifier is not None
    assert started.nonce is not None
    token = await client.exchange(
        code=query.code,
        verifier=started.code_verifier,
        redirect_uri=request.app[SETTINGS].base_url + OIDC_CALLBACK,
    )
    claims = await client.verify(token, nonce=started.nonce)
    provider = client.provider
    name = claims.get(provider.username_claim) or claims.get("email") or claims["sub"]
    async with request.app[DATABASE].session() as db:
        issued, user_id = await service.sign_in(
            db,
            tokens=request.app[TOKENS],
            provider=provider,
            subject=str(claims["sub"]),
            username=str(name),
            email=claims.get("email") if isinstance(claims.get("email"), str) else None,
            full_name=claims.get("name") if isinstance(claims.get("name"), str) else None,
            groups=service.groups_from(claims.get(provider.groups_claim)),
            changed=lambda user_id: _changed(request, user_id),
        )
    request.app[AUTHENTICATOR].forget_user(user_id)
    return signed_in(request, issued, started.redirect_to)


async def saml_login(request: web.Request) -> web.StreamResponse:
    """Send the browser to the identity provider with an AuthnRequest (HTTP-Redirect)."""
    query = parse_query(request, SsoLoginQuery)
    client = request.app[SSO].saml.get(query.provider)
    if client is None:
        raise NotFound({"provider": query.provider})
    redirect_to = _target(request, query.redirect_uri)
    async with request.app[DATABASE].session() as db:
        state = await service.begin(
            db, provider=client.provider.id, kind="saml", redirect_to=redirect_to
        )
        location, request_id = await client.login_url(relay_state=state)
        await service.note_request(db, state=state, request_id=request_id)
    return _no_store(web.Response(status=302, headers={"Location": location}))


async def saml_acs(request: web.Request) -> web.StreamResponse:
    """The identity provider's response: checked, used once, the user signed in."""
    form = await parse_json_or_form(request, SamlAcsForm)
    clients = request.app[SSO].saml
    started = None
    if form.RelayState:
        async with request.app[DATABASE].session() as db:
            started = await service.take(db, state=form.RelayState, kind="saml")
        client = clients.get(started.provider)
        if client is None:
            raise InvalidCredentials({"reason": "the provider of this sign-in is not configured"})
    else:
        # Started at the provider: the provider it claims to be must allow that, and its keys
        # then check the claim.
        issuer = issuer_of(form.SAMLResponse)
        client = next((c for c in clients.values() if c.idp_entity_id == issuer), None)
        if client is None or not client.provider.allow_idp_initiated:
            raise InvalidCredentials(
                {
                    "reason": "a sign-in that this platform did not start, from no provider "
                    "allowed to start one"
                }
            )
    signed = await client.accept(
        form.SAMLResponse, request_id=started.request_id if started else None
    )
    provider = client.provider
    attributes = signed.attributes

    def first(name: str | None) -> str | None:
        values = attributes.get(name) if name else None
        return values[0] if values else None

    async with request.app[DATABASE].session() as db:
        await service.first_use(
            db,
            provider=provider.id,
            assertion_id=signed.assertion_id,
            expires_at=signed.expires_at,
        )
        issued, user_id = await service.sign_in(
            db,
            tokens=request.app[TOKENS],
            provider=provider,
            subject=signed.subject,
            username=first(provider.username_attribute) or signed.subject,
            email=first(provider.email_attribute),
            full_name=first(provider.name_attribute),
            groups=attributes.get(provider.groups_attribute, []),
            changed=lambda user_id: _changed(request, user_id),
        )
    request.app[AUTHENTICATOR].forget_user(user_id)
    return signed_in(request, issued, started.redirect_to if started else None)


async def saml_metadata(request: web.Request) -> web.Response:
    """The platform's service-provider metadata for one identity provider's administrator."""
    query = parse_query(request, SamlMetadataQuery)
    client = request.app[SSO].saml.get(query.provider)
    if client is None:
        raise NotFound({"provider": query.provider})
    return web.Response(text=await client.metadata(), content_type="application/samlmetadata+xml")


ERRORS = (InvalidCredentials, PermissionDenied, Conflict, ServiceUnavailable)

ROUTES = [
    Route(
        "GET",
        OIDC_LOGIN,
        oidc_login,
        Access.PUBLIC,
        query=SsoLoginQuery,
        status=302,
        errors=(NotFound, ServiceUnavailable),
        summary="Initiate OIDC login flow",
    ),
    Route(
        "GET",
        OIDC_CALLBACK,
        oidc_callback,
        Access.PUBLIC,
        query=OidcCallbackQuery,
        response=TokenResponse,
        also=(302,),
        errors=ERRORS,
        summary="OIDC callback handler",
    ),
    Route(
        "GET",
        SAML_LOGIN,
        saml_login,
        Access.PUBLIC,
        query=SsoLoginQuery,
        status=302,
        errors=(NotFound, ServiceUnavailable),
        summary="Initiate SAML login",
    ),
    Route(
        "POST",
        ACS,
        saml_acs,
        Access.PUBLIC,
        body=SamlAcsForm,
        body_media="application/x-www-form-urlencoded",
        response=TokenResponse,
        also=(302,),
        errors=ERRORS,
        summary="SAML assertion consumer",
    ),
]

METADATA_ROUTES = (
    Route(
        "GET",
        METADATA,
        saml_metadata,
        Access.PUBLIC,
        query=SamlMetadataQuery,
        response_media="application/samlmetadata+xml",
        errors=(NotFound, ServiceUnavailable),
        summary="The platform's SAML service-provider metadata",
    ),
)
"""Outside the contract's table (which names the SAML sign-in and ACS, not the metadata an
identity provider's administrator needs): registered beside it, like the index."""
