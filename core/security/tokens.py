"""JWT access tokens: ``exp``, ``iat``, ``iss``, ``aud``, ``jti`` always; HS256 by default.

RS256 and EdDSA take PEM keys from settings. Verification pins the configured algorithm, so
``alg: none`` and algorithm-confusion tokens are refused.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from core.errors import InvalidCredentials, TokenExpired
from core.settings import JwtAlgorithm, Settings, jwt_hmac_secret

REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "jti", "sub"]
LEEWAY_SECONDS = 5


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """The verified claims of an access token."""

    subject: str
    jti: str
    issued_at: datetime
    expires_at: datetime
    token_type: str
    extra: dict[str, Any]


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    jti: str
    expires_at: datetime
    expires_in: int


class TokenService:
    """Issues and verifies the platform's JWTs."""

    def __init__(
        self,
        *,
        algorithm: JwtAlgorithm,
        signing_key: Any,
        verifying_key: Any,
        issuer: str,
        audience: str,
        default_ttl: int,
    ) -> None:
        self.algorithm = algorithm
        self._signing_key = signing_key
        self._verifying_key = verifying_key
        self.issuer = issuer
        self.audience = audience
        self.default_ttl = default_ttl
        # Verified tokens by their exact text: signature checks are the costly part of a
        # request, and the same token arrives many times. Lifetime is still checked each time.
        self._verified: dict[str, tuple[TokenClaims, float]] = {}
        """Tokens verified, with the moment (epoch seconds, leeway included) they expire."""
        self.cache_size = 4096

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenService:
        algorithm = settings.jwt_algorithm
        if algorithm is JwtAlgorithm.HS256:
            secret = jwt_hmac_secret(settings)
            signing: Any = secret
            verifying: Any = secret
        else:
            if settings.jwt_private_key_file is None or settings.jwt_public_key_file is None:
                raise ValueError(
                    f"AURORA_JWT_ALGORITHM={algorithm} needs AURORA_JWT_PRIVATE_KEY_FILE "
                    "and AURORA_JWT_PUBLIC_KEY_FILE"
                )
            signing = settings.jwt_private_key_file.read_bytes()
            verifying = settings.jwt_public_key_file.read_bytes()
        return cls(
            algorithm=algorithm,
            signing_key=signing,
            verifying_key=verifying,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            default_ttl=settings.access_token_ttl_seconds,
        )

    def issue(
        self,
        subject: str,
        *,
        ttl_seconds: int | None = None,
        token_type: str = "access",
        claims: dict[str, Any] | None = None,
        now: datetime | None = None,
    ) -> IssuedToken:
        """Sign a token for ``subject`` valid for ``ttl_seconds`` (default from settings)."""
        ttl = self.default_ttl if ttl_seconds is None else ttl_seconds
        issued = (now or datetime.now(UTC)).replace(microsecond=0)
        expires = issued + timedelta(seconds=ttl)
        jti = uuid.uuid4().hex
        payload: dict[str, Any] = dict(claims or {})
        payload.update(
            sub=subject,
            iss=self.issuer,
            aud=self.audience,
            iat=issued,
            nbf=issued,
            exp=expires,
            jti=jti,
            typ=token_type,
        )
        token = jwt.encode(payload, self._signing_key, algorithm=self.algorithm.value)
        return IssuedToken(token=token, jti=jti, expires_at=expires, expires_in=ttl)

    def verify(self, token: str, *, token_type: str = "access") -> TokenClaims:
        """Verify signature, issuer, audience and lifetime; raise AURORA-4011 or AURORA-4012."""
        cached = self._verified.get(token)
        if cached is not None and cached[0].token_type == token_type:
            if cached[1] > time.time():
                return cached[0]
            del self._verified[token]
            raise TokenExpired("the access token has expired")
        claims = self._verify_uncached(token, token_type)
        if len(self._verified) >= self.cache_size:
            self._verified.pop(next(iter(self._verified)))
        self._verified[token] = (claims, claims.expires_at.timestamp() + LEEWAY_SECONDS)
        return claims

    def _verify_uncached(self, token: str, token_type: str) -> TokenClaims:
        try:
            payload = jwt.decode(
                token,
                self._verifying_key,
                algorithms=[self.algorithm.value],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": REQUIRED_CLAIMS},
                leeway=LEEWAY_SECONDS,
            )
        except jwt.ExpiredSignatureError as err:
            raise TokenExpired("the access token has expired") from err
        except jwt.PyJWTError as err:
            raise InvalidCredentials("the access token is not valid") from err
        if payload.get("typ", "access") != token_type:
            raise InvalidCredentials("the token is not an access token")
        subject, jti = payload["sub"], payload["jti"]
        if not isinstance(subject, str) or not isinstance(jti, str) or not subject or not jti:
            raise InvalidCredentials("the access token is not valid")
        return TokenClaims(
            subject=subject,
            jti=jti,
            issued_at=datetime.fromtimestamp(payload["iat"], UTC),
            expires_at=datetime.fromtimestamp(payload["exp"], UTC),
            token_type=payload.get("typ", "access"),
            extra={k: v for k, v in payload.items() if k not in {*REQUIRED_CLAIMS, "nbf", "typ"}},
        )
