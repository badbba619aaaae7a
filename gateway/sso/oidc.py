"""An OpenID Connect relying party: the authorisation code flow with PKCE (RFC 7636), ``state``
and ``nonce``, the provider's discovery document and its signing keys (JWKS), fetched again
when a token names a key not seen yet (the provider rotated its keys).

ID tokens are verified with joserfc (the JOSE library of the authlib project): the signature
with the provider's published key for the token's ``kid``, an algorithm from the provider's list
that is a public-key one (``none`` and HMAC are refused before any key is looked at), then the
claims: ``iss`` exactly the provider's, ``aud`` naming this client (and ``azp`` when there are
several), ``exp`` and ``iat`` within the allowed clock skew, ``nonce`` the one this sign-in sent,
``sub`` present. Every failure is AURORA-4012 with what failed; nothing from the token or the
provider's answer beyond that reaches the caller.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote, urlencode

from aiohttp import ClientError, ClientSession, ClientTimeout
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from core.errors import InvalidCredentials, ServiceUnavailable
from core.security.sso import SIGNING_ALGORITHMS, OidcProvider

log = logging.getLogger("aurora.sso")

MAX_DOCUMENT_BYTES: Final = 1_048_576
"""The most a provider's answer (discovery, keys, token response) may be."""
DISCOVERY_TTL_SECONDS: Final = 3600.0
TIMEOUT: Final = ClientTimeout(total=10)


def pkce_pair() -> tuple[str, str]:
    """A PKCE code verifier and its S256 challenge (RFC 7636)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def refused(reason: str) -> InvalidCredentials:
    return InvalidCredentials({"reason": reason})


@dataclass(slots=True)
class _Keys:
    keys: KeySet | None = None
    fetched_at: float = float("-inf")
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class OidcClient:
    """One provider, as this platform's client of it (one per provider, for the gateway's
    life: the discovery document and the keys are cached)."""

    def __init__(self, provider: OidcProvider, *, session: ClientSession, skew: int) -> None:
        self.provider = provider
        self._session = session
        self._skew = skew
        self._discovery: dict[str, Any] | None = None
        self._discovered_at = float("-inf")
        self._keys = _Keys()

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with self._session.get(url, timeout=TIMEOUT, allow_redirects=False) as response:
                body = await response.content.read(MAX_DOCUMENT_BYTES + 1)
                if response.status != 200 or len(body) > MAX_DOCUMENT_BYTES:
                    raise ServiceUnavailable(
                        {"provider": self.provider.id, "reason": f"HTTP {response.status}"}
                    )
        except (ClientError, TimeoutError) as err:
            raise ServiceUnavailable(
                {"provider": self.provider.id, "reason": type(err).__name__}
            ) from err
        try:
            document = json.loads(body)
        except ValueError as err:
            raise ServiceUnavailable({"provider": self.provider.id, "reason": "not JSON"}) from err
        if not isinstance(document, dict):
            raise ServiceUnavailable({"provider": self.provider.id, "reason": "not an object"})
        return document

    async def discovery(self) -> dict[str, Any]:
        """The provider's discovery document (cached an hour); its ``issuer`` must be exactly
        the configured one (a document naming another issuer is not this provider's)."""
        if (
            self._discovery is None
            or time.monotonic() - self._discovered_at > DISCOVERY_TTL_SECONDS
        ):
            document = await self._get_json(
                f"{self.provider.issuer}/.well-known/openid-configuration"
            )
            if str(document.get("issuer", "")).rstrip("/") != self.provider.issuer:
                raise ServiceUnavailable(
                    {"provider": self.provider.id, "reason": "the discovery document's issuer"}
                )
            for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(document.get(name), str):
                    raise ServiceUnavailable({"provider": self.provider.id, "reason": f"no {name}"})
            self._discovery, self._discovered_at = document, time.monotonic()
        return self._discovery

    async def authorization_url(
        self, *, redirect_uri: str, state: str, nonce: str, challenge: str
    ) -> str:
        document = await self.discovery()
        query = {
            "response_type": "code",
            "client_id": self.provider.client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(self.provider.scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        endpoint = str(document["authorization_endpoint"])
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(query)}"

    async def exchange(self, *, code: str, verifier: str, redirect_uri: str) -> str:
        """The ID token the provider gives for ``code`` (the token endpoint, with the PKCE
        verifier and this client's credentials)."""
        document = await self.discovery()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        secret = self.provider.secret()
        headers = {"Accept": "application/json"}
        if secret:
            # RFC 6749 2.3.1: each part form-encoded, then HTTP Basic.
            pair = f"{quote(self.provider.client_id, safe='')}:{quote(secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form["client_id"] = self.provider.client_id
        try:
            async with self._session.post(
                str(document["token_endpoint"]),
                data=form,
                timeout=TIMEOUT,
                allow_redirects=False,
                headers=headers,
            ) as response:
                body = await response.content.read(MAX_DOCUMENT_BYTES + 1)
                status = response.status
        except (ClientError, TimeoutError) as err:
            raise ServiceUnavailable(
                {"provider": self.provider.id, "reason": type(err).__name__}
            ) from err
        try:
            answer = json.loads(body) if len(body) <= MAX_DOCUMENT_BYTES else {}
        except ValueError:
            answer = {}
        if status != 200:
            # invalid_grant: a code used twice, expired, or not this client's.
            error = answer.get("error") if isinstance(answer, dict) else None
            raise refused(f"the provider refused the code ({error or f'HTTP {status}'})")
        token = answer.get("id_token") if isinstance(answer, dict) else None
        if not isinstance(token, str):
            raise refused("the provider's answer has no ID token")
        return token

    async def _key_set(self, kid: str | None) -> KeySet:
        """The provider's keys, fetched again when ``kid`` is not among them and the last
        fetch is older than the provider's ``jwks_refresh_seconds``."""
        keys = self._keys
        async with keys.lock:
            known = keys.keys is not None and (
                kid is None or any(k.kid == kid for k in keys.keys.keys)
            )
            stale = time.monotonic() - keys.fetched_at >= self.provider.jwks_refresh_seconds
            if keys.keys is None or (not known and stale):
                document = await self.discovery()
                raw = await self._get_json(str(document["jwks_uri"]))
                try:
                    keys.keys = KeySet.import_key_set(raw)  # type: ignore[arg-type]
                except (JoseError, ValueError, TypeError, KeyError) as err:
                    raise ServiceUnavailable(
                        {"provider": self.provider.id, "reason": "unreadable keys"}
                    ) from err
                keys.fetched_at = time.monotonic()
            assert keys.keys is not None
            return keys.keys

    async def verify(self, token: str, *, nonce: str) -> dict[str, Any]:
        """The claims of ``token`` once it is proven to be this provider's ID token for this
        sign-in (see the module docstring); AURORA-4012 otherwise."""
        try:
            header = jws.extract_compact(token.encode("ascii")).headers()
        except (JoseError, ValueError, UnicodeError) as err:
            raise refused("the ID token is not a signed JWT") from err
        alg = header.get("alg")
        document = await self.discovery()
        offered = document.get("id_token_signing_alg_values_supported") or ["RS256"]
        allowed = SIGNING_ALGORITHMS & {str(a) for a in offered}
        if alg not in allowed:
            raise refused(f"the ID token's algorithm {str(alg)[:20]!r} is not accepted")
        kid = header.get("kid")
        keys = await self._key_set(kid if isinstance(kid, str) else None)
        if isinstance(kid, str) and not any(k.kid == kid for k in keys.keys):
            raise refused("the ID token is signed with a key the provider does not publish")
        try:
            decoded = jwt.decode(token, keys, algorithms=[str(alg)])
        except (JoseError, ValueError) as err:
            raise refused("the ID token's signature does not verify") from err
        claims = dict(decoded.claims)
        self._check(claims, nonce=nonce)
        return claims

    def _check(self, claims: dict[str, Any], *, nonce: str) -> None:
        now = time.time()
        if claims.get("iss") != self.provider.issuer:
            raise refused("the ID token is from another issuer")
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.provider.client_id not in audiences:
            raise refused("the ID token is for another client")
        if len(audiences) > 1 and claims.get("azp") != self.provider.client_id:
            raise refused("the ID token's authorised party is another client")
        expires, issued = claims.get("exp"), claims.get("iat")
        if not isinstance(expires, int | float) or expires + self._skew < now:
            raise refused("the ID token has expired")
        if not isinstance(issued, int | float) or issued - self._skew > now:
            raise refused("the ID token was issued in the future")
        if not isinstance(claims.get("nonce"), str) or not secrets.compare_digest(
            str(claims["nonce"]), nonce
        ):
            raise refused("the ID token's nonce is not this sign-in's")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not 0 < len(subject) <= 255:
            raise refused("the ID token has no subject")
