"""Wire models of the users routes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, EmailStr, Field, SecretStr, field_validator
from pydantic_core import PydanticCustomError

from core.schemas import PageQuery
from core.security.permissions import Role

USERNAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{1,63}$"
MIN_PASSWORD_CHARS = 12
RESERVED_USERNAMES = frozenset({"me"})


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(pattern=USERNAME_PATTERN)
    password: SecretStr = Field(
        max_length=1024, json_schema_extra={"minLength": MIN_PASSWORD_CHARS}
    )
    role: Role
    email: EmailStr | None = None
    full_name: str | None = Field(default=None, max_length=200)

    @field_validator("password")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        # Checked here, not by min_length: pydantic's own message counts "items".
        if len(value.get_secret_value()) < MIN_PASSWORD_CHARS:
            raise PydanticCustomError(
                "too_short",
                "a password needs at least {min_length} characters",
                {"min_length": MIN_PASSWORD_CHARS},
            )
        return value

    @field_validator("username")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_USERNAMES:
            raise ValueError(f"'{value}' is reserved")
        return value


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    username: str
    email: str | None
    full_name: str | None
    role: str
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None


class UserMe(UserRead):
    permissions: list[str]
    auth_method: str


class UserListQuery(PageQuery):
    role: Role | None = None
