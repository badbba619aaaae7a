"""Single sign-on configuration: the identity providers a deployment trusts, how their groups
become AuroraSOC roles, and where a browser may be sent after signing in.

Providers are settings (``AURORA_OIDC_PROVIDERS``, ``AURORA_SAML_PROVIDERS``: JSON lists), read
once at start like every other setting; the flows themselves are ``gateway.auth.sso``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Final, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from core.security.permissions import Role

ProviderId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")]
"""A provider's id: in URLs (``?provider=``), in the users it provisions, in the logs."""

SIGNING_ALGORITHMS: Final = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
"""What an ID token may be signed with: public-key algorithms only. ``none`` is no signature,
and an HMAC (``HS256``...) would be checked with a key the provider publishes, so that anyone
could sign with it (the classic confusion); neither is ever accepted."""


def _loopback(host: str | None) -> bool:
    return host in {"127.0.0.1", "localhost", "::1"}


def https_or_loopback(url: str, what: str) -> str:
    """``url`` if it is https, or http on a loopback address (development, tests)."""
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and _loopback(parts.hostname)):
        if parts.username or parts.password or parts.fragment:
            raise ValueError(f"{what} must not carry credentials or a fragment")
        return url.rstrip("/")
    raise ValueError(f"{what} must be an https URL (http only on a loopback address)")


class RoleRule(BaseModel):
    """A group (or any value of the provider's groups claim / attribute) and the role it grants."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    group: str = Field(min_length=1, max_length=512)
    role: Role

    @field_validator("role")
    @classmethod
    def _a_person(cls, role: Role) -> Role:
        if role in {Role.SERVICE_AGENT, Role.SERVICE_RESPONDER}:
            raise ValueError("service roles are not for people signing in")
        return role


class IdentityProvider(BaseModel):
    """What every identity provider has: its id and name, and how its groups become roles."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: ProviderId
    name: str = Field(min_length=1, max_length=100)
    """What the sign-in page shows."""
    roles: list[RoleRule] = Field(default_factory=list, max_length=200)
    """In order: the first rule whose group the user has gives the role."""
    default_role: Role | None = None
    """The role of a user none of whose groups has a rule; unset: such a user is refused."""

    def role_for(self, groups: Iterable[str]) -> Role | None:
        """The role ``groups`` grant, re-evaluated at every login (None: none, refused)."""
        held = set(groups)
        for rule in self.roles:
            if rule.group in held:
                return rule.role
        return self.default_role


class OidcProvider(IdentityProvider):
    """An OpenID Connect provider (Keycloak, Entra ID, Okta, Google...): the authorisation
    code flow with PKCE, configured from the provider's discovery document."""

    type: Literal["oidc"] = "oidc"
    issuer: str
    """Exactly the ``issuer`` of its discovery document (``{issuer}/.well-known/openid-
    configuration``) and of its ID tokens."""
    client_id: str = Field(min_length=1, max_length=512)
    client_secret: SecretStr | None = None
    client_secret_file: Path | None = None
    """Where the secret is instead (a Docker secret); neither: a public client (PKCE alone)."""
    scopes: list[str] = Field(default_factory=lambda: ["openid", "profile", "email"])
    username_claim: str = "preferred_username"
    """The ID token claim that names the user (``email`` or ``upn`` on some providers)."""
    groups_claim: str = "groups"
    jwks_refresh_seconds: float = Field(default=60.0, ge=0, le=86_400)
    """At most one fetch of the provider's keys this often when a token names a key it does not
    know (the provider rotated them); a flood of unknown keys costs one fetch."""

    @field_validator("issuer")
    @classmethod
    def _secure_issuer(cls, value: str) -> str:
        return https_or_loopback(value, "an OIDC issuer")

    @field_validator("scopes")
    @classmethod
    def _openid(cls, scopes: list[str]) -> list[str]:
        if "openid" not in scopes:
            raise ValueError("the scopes must include openid")
        return scopes

    @model_validator(mode="after")
    def _one_secret(self) -> OidcProvider:
        if self.client_secret is not None and self.client_secret_file is not None:
            raise ValueError("give client_secret or client_secret_file, not both")
        return self

    def secret(self) -> str | None:
        """The client secret, read from its file when it is one."""
        if self.client_secret_file is not None:
            return self.client_secret_file.read_text().strip()
        return self.client_secret.get_secret_value() if self.client_secret else None


class SamlProvider(IdentityProvider):
    """A SAML 2.0 identity provider (Entra ID, Okta, Keycloak, ADFS...), with the platform as
    its service provider: SP- and IdP-initiated sign-in, signed assertions required."""

    type: Literal["saml"] = "saml"
    idp_metadata: str | None = Field(default=None, max_length=1_000_000)
    """The provider's metadata XML itself, or:"""
    idp_metadata_file: Path | None = None
    sp_key_file: Path | None = None
    """The platform's own key and certificate (PEM), to sign its requests and its metadata;
    unset: requests go unsigned (the provider must not require signed requests)."""
    sp_cert_file: Path | None = None
    want_response_signed: bool = False
    """Require the whole response signed too, not only the assertion."""
    allow_idp_initiated: bool = False
    """Accept a sign-in that starts at the provider's portal (no request of the platform's
    to answer): replay protection then rests on the assertion ids alone."""
    username_attribute: str | None = None
    """The attribute naming the user; unset: the NameID."""
    groups_attribute: str = "groups"
    email_attribute: str | None = "email"
    name_attribute: str | None = "displayName"

    @model_validator(mode="after")
    def _metadata(self) -> SamlProvider:
        if (self.idp_metadata is None) == (self.idp_metadata_file is None):
            raise ValueError("give idp_metadata or idp_metadata_file (one of them)")
        if (self.sp_key_file is None) != (self.sp_cert_file is None):
            raise ValueError("sp_key_file and sp_cert_file go together")
        return self

    def metadata_xml(self) -> str:
        """The provider's metadata XML."""
        if self.idp_metadata_file is not None:
            return self.idp_metadata_file.read_text()
        assert self.idp_metadata is not None
        return self.idp_metadata


def redirect_allowed(target: str, allowed: Iterable[str]) -> bool:
    """Whether a browser may be sent to ``target`` after signing in: a path of this platform
    (``/...``, not ``//host`` nor a backslash), or a URL with the scheme, host and port of an
    allowed one and its path under the allowed one's. Anything else would make the platform an
    open redirect that hands a session to whoever named the target."""
    if any(c in target for c in "\\\r\n\t") or len(target) > 2048:
        return False
    parts = urlsplit(target)
    if not parts.scheme and not parts.netloc:
        return target.startswith("/") and not target.startswith("//") and not parts.fragment
    if parts.username or parts.password or parts.fragment:
        return False
    for entry in allowed:
        base = urlsplit(entry)
        if (parts.scheme, parts.hostname, parts.port) != (base.scheme, base.hostname, base.port):
            continue
        path = base.path or "/"
        if parts.path == path or parts.path.startswith(path if path.endswith("/") else path + "/"):
            return True
    return False
