"""Wire models of the single sign-on routes."""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel, ConfigDict, Field

from core.security.sso import ProviderId

OIDC_LOGIN: Final = "/api/v1/auth/oidc/login"
OIDC_CALLBACK: Final = "/api/v1/auth/oidc/callback"
SAML_LOGIN: Final = "/api/v1/auth/saml/login"


class SsoLoginQuery(BaseModel):
    """Where to sign in, and where to go after (omitted: the token is answered as JSON)."""

    model_config = ConfigDict(extra="forbid")

    provider: ProviderId
    redirect_uri: str | None = Field(default=None, min_length=1, max_length=2048)
    """A path of this platform or a URL under one of ``AURORA_SSO_REDIRECT_URLS``: the session
    is handed over in its fragment (``#access_token=...``)."""


class OidcCallbackQuery(BaseModel):
    """The provider's answer (RFC 6749 4.1.2; ``iss``: RFC 9207). Providers add parameters of
    their own (``session_state``...), which are ignored."""

    model_config = ConfigDict(extra="ignore")

    state: str = Field(min_length=1, max_length=128)
    code: str | None = Field(default=None, min_length=1, max_length=4096)
    error: str | None = Field(default=None, max_length=200)
    error_description: str | None = Field(default=None, max_length=1000)
    iss: str | None = Field(default=None, max_length=2048)


class SamlAcsForm(BaseModel):
    """What the identity provider's page posts (HTTP-POST binding)."""

    model_config = ConfigDict(extra="ignore")

    SAMLResponse: str = Field(min_length=1, max_length=700_000)  # the binding names the fields
    RelayState: str | None = Field(default=None, max_length=256)


class SamlMetadataQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: ProviderId
