"""An OpenID Connect provider on a loopback port, for tests that run the platform's real relying
party: discovery, JWKS, the authorisation endpoint (which signs in whoever the test says, as a
provider does once its user has typed a password) and the token endpoint, with ID tokens signed
by joserfc (the JOSE library of the authlib project).

It checks what a real provider checks: the client id and its secret (HTTP Basic), the
registered redirect URI, ``response_type=code``, a PKCE S256 challenge at the authorisation and
its verifier at the token exchange, codes used once. Tests make it misbehave, as an attacker or
a broken provider would, with :attr:`OidcProvider.forge`: a function that gets the ID token's
claims and header and returns the token to send instead.

    async with OidcProvider(client_id="aurora", client_secret="s3cret") as idp:
        idp.user = {"sub": "u-1", "preferred_username": "alice", "groups": ["soc"]}
        idp.redirect_uris.add(f"{gateway}/api/v1/auth/oidc/callback")
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlencode

from aiohttp import web
from joserfc import jwt
from joserfc.jwk import RSAKey

from core.loopback import LoopbackServer

Forge = Callable[[dict[str, Any], dict[str, Any]], str]


@dataclass(slots=True)
class _Code:
    redirect_uri: str
    challenge: str
    nonce: str | None
    user: dict[str, Any]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class OidcProvider(LoopbackServer):
    def __init__(self, *, client_id: str, client_secret: str) -> None:
        super().__init__()
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uris: set[str] = set()
        self.user: dict[str, Any] = {}
        """The claims of who signs in next (``sub`` and the rest)."""
        self.forge: Forge | None = None
        self.key = self.new_key()
        self.published: list[RSAKey] = [self.key]
        self._codes: dict[str, _Code] = {}
        self.token_requests: list[dict[str, str]] = []
        self.authorize_requests: list[dict[str, str]] = []

    @staticmethod
    def new_key() -> RSAKey:
        return RSAKey.generate_key(2048, parameters={"kid": secrets.token_hex(8), "use": "sig"})

    def rotate(self) -> None:
        """Sign with a new key from now on, and publish only it (the old one is retired)."""
        self.key = self.new_key()
        self.published = [self.key]

    @property
    def issuer(self) -> str:
        return self.origin

    def sign(self, claims: dict[str, Any], key: RSAKey | None = None) -> str:
        used = key or self.key
        return jwt.encode({"alg": "RS256", "kid": used.kid}, claims, used)

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/jwks", self._jwks)
        app.router.add_get("/authorize", self._authorize)
        app.router.add_post("/token", self._token)
        return app

    async def _discovery(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
            }
        )

    async def _jwks(self, _request: web.Request) -> web.Response:
        return web.json_response({"keys": [k.as_dict(private=False) for k in self.published]})

    async def _authorize(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        self.authorize_requests.append(query)
        redirect = query.get("redirect_uri", "")
        if query.get("client_id") != self.client_id or redirect not in self.redirect_uris:
            return web.Response(status=400, text="unknown client or redirect_uri")
        if (
            query.get("response_type") != "code"
            or "openid" not in query.get("scope", "").split()
            or query.get("code_challenge_method") != "S256"
            or not query.get("code_challenge")
        ):
            return web.Response(status=400, text="invalid_request")
        code = secrets.token_urlsafe(24)
        self._codes[code] = _Code(
            redirect, query["code_challenge"], query.get("nonce"), dict(self.user)
        )
        answer = urlencode({"code": code, "state": query.get("state", ""), "iss": self.issuer})
        raise web.HTTPFound(f"{redirect}?{answer}")

    async def _token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.token_requests.append(form)
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        try:
            login, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except ValueError:
            login = password = ""
        if scheme != "Basic" or (unquote(login), unquote(password)) != (
            self.client_id,
            self.client_secret,
        ):
            return web.json_response({"error": "invalid_client"}, status=401)
        issued = self._codes.pop(form.get("code", ""), None)
        verifier = form.get("code_verifier", "")
        if (
            issued is None
            or form.get("grant_type") != "authorization_code"
            or form.get("redirect_uri") != issued.redirect_uri
            or b64(hashlib.sha256(verifier.encode()).digest()) != issued.challenge
        ):
            return web.json_response({"error": "invalid_grant"}, status=400)
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            "auth_time": now,
            **({"nonce": issued.nonce} if issued.nonce is not None else {}),
            **issued.user,
        }
        header = {"alg": "RS256", "kid": self.key.kid}
        token = self.forge(claims, header) if self.forge else self.sign(claims)
        return web.json_response(
            {
                "access_token": secrets.token_urlsafe(24),
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": token,
            }
        )


def unsigned(claims: dict[str, Any]) -> str:
    """An ID token with ``alg: none``: no signature at all."""
    head = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{head}.{b64(json.dumps(claims).encode())}."
