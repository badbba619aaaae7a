"""Wire models of the auth routes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from core.schemas import Limit, PageQuery
from core.security.permissions import Permission


class AuthProvider(BaseModel):
    id: str
    type: Literal["password", "oidc", "saml"]
    name: str
    login_url: str


class AuthProviders(BaseModel):
    providers: list[AuthProvider]


class TokenRequest(BaseModel):
    """Password login, as JSON or as an OAuth2 password-grant form."""

    model_config = ConfigDict(extra="ignore")

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    grant_type: Literal["password"] = "password"


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    expires_at: datetime


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    permissions: list[Permission] | None = None
    """A subset of the caller's permissions; all of them when omitted."""
    expires_at: AwareDatetime | None = None


class ApiKeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    prefix: str
    permissions: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class ApiKeyCreated(ApiKeyRead):
    key: str
    """The secret, shown this once."""


class ApiKeyListQuery(PageQuery):
    """A page of the caller's API keys: 500 by default (the list was whole before it had
    pages)."""

    limit: Limit = 500
