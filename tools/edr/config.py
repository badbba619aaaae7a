"""The EDR connectors an installation uses, read from a YAML file.

The lab connector (:class:`tools.edr.lab.LabConnector`, named ``lab``) is always there, first;
the file adds the real products. No secret is written in the file: each entry names the
environment variable that holds its secret (``password_env``, ``client_secret_env``,
``api_key_env``), read when the connectors are built. The format::

    connectors:
      - name: wazuh-prod                 # [a-z0-9][a-z0-9_-]{0,63}, unique; "lab" is the lab's
        product: wazuh
        base_url: https://wazuh-manager.example.org:55000
        username: aurora-api
        password_env: AURORA_WAZUH_PASSWORD
        isolate_command: "!aurora-isolate"   # the active-response command or !script on the
        release_command: "!aurora-release"   # agents (defaults shown); arguments go as given
        command_arguments: []
        page_size: 500                   # agents per GET /agents page, 1..100000
      - name: mde
        product: defender
        tenant_id: 8c1b2f4e-0000-4000-8000-000000000001
        client_id: 2f9a6c1d-0000-4000-8000-000000000002
        client_secret_env: AURORA_DEFENDER_CLIENT_SECRET
        base_url: https://api.securitycenter.microsoft.com   # the default
        login_url: https://login.microsoftonline.com         # the default
        isolation_type: Full             # or Selective (Outlook, Teams, Skype keep working)
        scan_type: Quick                 # or Full
      - name: elastic
        product: elastic
        base_url: https://kibana.example.org:5601  # Kibana (with /s/<space> for a space)
        api_key_env: AURORA_ELASTIC_API_KEY      # the API key's base64 "encoded" form
        scan_path: null                  # default: C:\\ on Windows, / elsewhere
      - name: training-range             # a second lab, for another exercise
        product: lab

Every HTTP entry also takes ``verify_tls`` (default true), ``ca_file`` (a private CA's PEM
file), ``timeout_seconds`` (1..120, default 15) and ``max_retry_after_seconds`` (0..300,
default 30: the longest ``Retry-After`` waited once before answering rate-limited). A
``base_url`` must be ``https`` unless it is on the loopback interface. An invalid file raises
:class:`core.errors.ValidationFailed` whose detail lists ``{"loc", "msg", "type"}`` per fault,
``loc`` naming the field (``["connectors", 1, "client_secret_env"]``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from core.errors import ValidationFailed
from tools.edr.base import EdrConnector
from tools.edr.defender import (
    DEFAULT_API_URL,
    DEFAULT_LOGIN_URL,
    DEFAULT_SCOPE,
    DefenderConnector,
)
from tools.edr.elastic import ElasticConnector
from tools.edr.http import tls_context
from tools.edr.lab import LabConnector
from tools.edr.wazuh import DEFAULT_ISOLATE_COMMAND, DEFAULT_RELEASE_COMMAND, WazuhConnector

LAB = "lab"
_PRODUCTS = ("lab", "wazuh", "defender", "elastic")
_NAME = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_ENV = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
_MAX_FILE_BYTES = 1024 * 1024


class ConnectorConfig(BaseModel):
    """One configured connector: what every product's entry has."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME)
    product: str

    @field_validator("name")
    @classmethod
    def _not_the_lab(cls, name: str) -> str:
        if name == LAB:
            raise ValueError('"lab" is the built-in lab connector\'s name')
        return name


class LabConfig(ConnectorConfig):
    """A further lab connector (the built-in one needs no entry)."""

    product: Literal["lab"]


class HttpConfig(ConnectorConfig):
    """What every connector over HTTP takes."""

    base_url: str
    verify_tls: bool = True
    ca_file: Path | None = None
    timeout_seconds: float = Field(default=15.0, ge=1, le=120)
    max_retry_after_seconds: float = Field(default=30.0, ge=0, le=300)

    @field_validator("base_url")
    @classmethod
    def _safe_url(cls, url: str) -> str:
        return _checked_url(url)

    def http_options(self) -> dict[str, Any]:
        return {
            "tls": tls_context(
                verify=self.verify_tls, ca_file=str(self.ca_file) if self.ca_file else None
            ),
            "timeout_seconds": self.timeout_seconds,
            "max_retry_after_seconds": self.max_retry_after_seconds,
        }


class WazuhConfig(HttpConfig):
    """A Wazuh manager's API (:mod:`tools.edr.wazuh`)."""

    product: Literal["wazuh"]
    username: str = Field(min_length=1, max_length=64, pattern=r"^[^:\s]+$")
    password_env: str = Field(pattern=_ENV)
    isolate_command: str = Field(default=DEFAULT_ISOLATE_COMMAND, min_length=1, max_length=255)
    release_command: str = Field(default=DEFAULT_RELEASE_COMMAND, min_length=1, max_length=255)
    command_arguments: list[str] = Field(default_factory=list, max_length=32)
    page_size: int = Field(default=500, ge=1, le=100_000)


class ElasticConfig(HttpConfig):
    """Elastic Defend through Kibana (:mod:`tools.edr.elastic`)."""

    product: Literal["elastic"]
    api_key_env: str = Field(pattern=_ENV)
    scan_path: str | None = Field(default=None, min_length=1, max_length=1024)
    page_size: int = Field(default=1000, ge=1, le=10_000)


class DefenderConfig(HttpConfig):
    """Microsoft Defender for Endpoint (:mod:`tools.edr.defender`)."""

    product: Literal["defender"]
    base_url: str = DEFAULT_API_URL
    login_url: str = DEFAULT_LOGIN_URL
    scope: str = DEFAULT_SCOPE
    tenant_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9.-]+$")
    client_id: str = Field(min_length=1, max_length=128)
    client_secret_env: str = Field(pattern=_ENV)
    isolation_type: Literal["Full", "Selective"] = "Full"
    scan_type: Literal["Quick", "Full"] = "Quick"
    page_size: int = Field(default=1000, ge=1, le=10_000)

    @field_validator("login_url")
    @classmethod
    def _safe_login_url(cls, url: str) -> str:
        return _checked_url(url)


AnyConnectorConfig = Annotated[
    LabConfig | WazuhConfig | DefenderConfig | ElasticConfig, Field(discriminator="product")
]


class ConnectorsFile(BaseModel):
    """The file's shape."""

    model_config = ConfigDict(extra="forbid")

    connectors: list[AnyConnectorConfig] = Field(default_factory=list, max_length=64)


def _checked_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise ValueError("must be https: the credential would travel in clear")
    if parts.query or parts.fragment or parts.username:
        raise ValueError("must have no query, fragment or user")
    return url.rstrip("/")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _fault(loc: list[str | int], msg: str, type_: str) -> ValidationFailed:
    return ValidationFailed([{"loc": loc, "msg": msg, "type": type_}])


def read_config(path: Path) -> ConnectorsFile:
    """The file, validated (ValidationFailed naming each field at fault)."""
    try:
        raw = path.read_bytes()[: _MAX_FILE_BYTES + 1]
    except OSError as err:
        raise _fault(
            ["file"], f"cannot read the EDR connectors file ({err.strerror})", "os"
        ) from err
    if len(raw) > _MAX_FILE_BYTES:
        raise _fault(["file"], "the EDR connectors file is over 1 MiB", "size")
    try:
        loaded = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise _fault(["file"], f"not valid YAML{where}", "yaml") from err
    try:
        return ConnectorsFile.model_validate(loaded or {})
    except ValidationError as err:
        faults = []
        for error in err.errors(include_input=False, include_url=False):
            loc = list(error["loc"])
            # A union member's tag ("wazuh") is not a field of the file.
            if len(loc) > 2 and loc[0] == "connectors" and loc[2] in _PRODUCTS:
                del loc[2]
            faults.append({"loc": loc, "msg": error["msg"], "type": error["type"]})
        raise ValidationFailed(faults) from err


def _secret(env: Mapping[str, str], index: int, field: str, name: str) -> SecretStr:
    value = env.get(name, "").strip()
    if not value:
        raise _fault(
            ["connectors", index, field], f"environment variable {name} is not set", "missing_env"
        )
    return SecretStr(value)


def load_connectors(
    path: Path | None, env: Mapping[str, str], *, lab_state_path: Path | None = None
) -> list[EdrConnector]:
    """The lab connector (named ``lab``, its state in ``lab_state_path`` when given), then the
    file's connectors in its order, their secrets read from ``env``. Raises ValidationFailed
    for an unreadable or invalid file, a duplicate name, or an unset secret variable."""
    entries = read_config(path).connectors if path is not None else []
    names = [entry.name for entry in entries]
    for index, name in enumerate(names):
        if name in names[:index]:
            raise _fault(["connectors", index, "name"], f"duplicate name {name!r}", "duplicate")
    secrets: dict[int, SecretStr] = {}
    for index, entry in enumerate(entries):
        if isinstance(entry, WazuhConfig):
            secrets[index] = _secret(env, index, "password_env", entry.password_env)
        elif isinstance(entry, DefenderConfig):
            secrets[index] = _secret(env, index, "client_secret_env", entry.client_secret_env)
        elif isinstance(entry, ElasticConfig):
            secrets[index] = _secret(env, index, "api_key_env", entry.api_key_env)
    options: dict[int, dict[str, Any]] = {}
    for index, entry in enumerate(entries):
        if isinstance(entry, HttpConfig):
            try:
                options[index] = entry.http_options()
            except OSError as err:  # ssl.SSLError is one
                raise _fault(
                    ["connectors", index, "ca_file"], "cannot read the CA file", "ca_file"
                ) from err
    connectors: list[EdrConnector] = [LabConnector(LAB, state_path=lab_state_path)]
    for index, entry in enumerate(entries):
        match entry:
            case WazuhConfig():
                connectors.append(
                    WazuhConnector(
                        entry.name,
                        base_url=entry.base_url,
                        username=entry.username,
                        password=secrets[index],
                        isolate_command=entry.isolate_command,
                        release_command=entry.release_command,
                        command_arguments=entry.command_arguments,
                        page_size=entry.page_size,
                        **options[index],
                    )
                )
            case DefenderConfig():
                connectors.append(
                    DefenderConnector(
                        entry.name,
                        tenant_id=entry.tenant_id,
                        client_id=entry.client_id,
                        client_secret=secrets[index],
                        base_url=entry.base_url,
                        login_url=entry.login_url,
                        scope=entry.scope,
                        isolation_type=entry.isolation_type,
                        scan_type=entry.scan_type,
                        page_size=entry.page_size,
                        **options[index],
                    )
                )
            case ElasticConfig():
                connectors.append(
                    ElasticConnector(
                        entry.name,
                        base_url=entry.base_url,
                        api_key=secrets[index],
                        scan_path=entry.scan_path,
                        page_size=entry.page_size,
                        **options[index],
                    )
                )
            case LabConfig():
                connectors.append(LabConnector(entry.name))
    return connectors
