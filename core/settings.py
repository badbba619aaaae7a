"""Process settings, read once from the environment (``AURORA_*``) at an entry point.

Nothing reads the environment at import time: an entry point calls :func:`load_settings`
and passes the result down.
"""

from __future__ import annotations

import os
import secrets
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.security.sso import OidcProvider, SamlProvider, https_or_loopback

ClickHouseName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")]
"""A ClickHouse identifier the log store writes into its SQL (backquoted): letters, digits and
underscores only."""


class JwtAlgorithm(StrEnum):
    """Signing algorithms AuroraSOC accepts for its own access tokens."""

    HS256 = "HS256"
    RS256 = "RS256"
    EDDSA = "EdDSA"


class Settings(BaseSettings):
    """Static configuration of one AuroraSOC process.

    Runtime knobs that operators change while the platform runs (the system mode and the like)
    live in the database, see ``gateway.system``.
    """

    model_config = SettingsConfigDict(env_prefix="AURORA_", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    data_dir: Path = Path("./var")
    database_url: str | None = None
    """SQLAlchemy URL; default ``sqlite+aiosqlite:///<data_dir>/aurora.db``."""
    gateway_url: str | None = None
    """Where agents reach the gateway's API (the hunter searches the logs there); default the
    gateway's own address (``http://host:port``)."""
    clickhouse_url: SecretStr | None = None
    """A ClickHouse server for the log store (``http://user:password@host:8123``); unset: the
    embedded chDB under ``<data_dir>/logstore``."""
    chdb_path: Path | None = None
    """Where the embedded chDB keeps its data; default ``<data_dir>/logstore``. One path per
    process: chDB allows no other."""
    clickhouse_database: ClickHouseName = "aurora"
    clickhouse_cluster: ClickHouseName | None = None
    """The cluster name of the ClickHouse servers' ``remote_servers`` config. When set, the store
    creates its tables ON CLUSTER: a ``ReplicatedMergeTree`` table (``logs_local``) on every shard
    and replica and a ``Distributed`` table (``logs``) over them, which it reads and writes. Only
    meaningful with ``clickhouse_url``: the embedded chDB is one process, not a cluster, and a
    gateway on it with this set refuses to start."""
    log_store_owner: bool = True
    """Whether this gateway opens the embedded log store and runs the jobs that read it
    (detection rules, network detectors). chDB is one process's: with several gateways on the
    embedded store, exactly one is the owner and the proxy routes the log routes to it (see
    docs/scaling.md); the others answer what needs the store with AURORA-5032. With a ClickHouse
    server (``clickhouse_url``) every gateway reads and writes it and this is not read."""
    log_retention_days: Annotated[int, Field(ge=0, le=36_500)] = 90
    """Log events are dropped this many days after their ingestion (0: kept for good)."""
    ingest_workers: Annotated[int, Field(ge=0, le=64)] | None = None
    """Processes that parse and encode ingested logs in parallel; unset: one per core (at most
    4), none on one core; 0: on a thread of the gateway."""
    log_level: str = "INFO"
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"
    """The processes' event loop (:mod:`core.eventloop`): uvloop where it is installed
    (``auto``), asyncio's own (``asyncio``), or uvloop without a fallback (``uvloop``)."""
    access_log: bool = True
    """Log one line per HTTP request (logger ``aurora.access``)."""

    admin_username: str = "admin"
    admin_password: SecretStr | None = None

    jwt_algorithm: JwtAlgorithm = JwtAlgorithm.HS256
    jwt_secret: SecretStr | None = None
    """HS256 key; when unset, a random key is generated once and kept in the data dir."""
    jwt_private_key_file: Path | None = None
    """PEM private key for RS256 / EdDSA."""
    jwt_public_key_file: Path | None = None
    """PEM public key for RS256 / EdDSA."""
    jwt_issuer: str = "aurorasoc"
    jwt_audience: str = "aurorasoc-api"
    access_token_ttl_seconds: Annotated[int, Field(ge=30, le=86_400)] = 900

    login_max_failures: Annotated[int, Field(ge=1, le=100)] = 5
    login_lockout_seconds: Annotated[int, Field(ge=1, le=86_400)] = 300
    password_login: bool = True
    """Whether users may sign in with a password (``POST /api/v1/auth/token``); off where
    everyone signs in through a provider (API keys and service tokens still work)."""
    oidc_providers: list[OidcProvider] = Field(default_factory=list, max_length=20)
    """OpenID Connect providers, as a JSON list (see README, "Single sign-on")."""
    saml_providers: list[SamlProvider] = Field(default_factory=list, max_length=20)
    """SAML 2.0 identity providers, as a JSON list (see README, "Single sign-on")."""
    external_url: str | None = None
    """The URL users reach the platform at (``https://soc.example.com``, behind the proxy):
    the redirect URIs registered with identity providers are built from it. Default: the
    gateway's own address."""
    sso_redirect_urls: list[str] = Field(default_factory=list, max_length=50)
    """Where a browser may be sent after signing in, besides the platform's own paths: URLs
    whose scheme, host and port must match and under whose path the target must be."""
    sso_clock_skew_seconds: Annotated[int, Field(ge=0, le=600)] = 60
    """How far the providers' clocks may be from this one (token and assertion times)."""

    argon2_time_cost: Annotated[int, Field(ge=1, le=20)] = 3
    argon2_memory_kib: Annotated[int, Field(ge=8, le=4_194_304)] = 65_536
    argon2_parallelism: Annotated[int, Field(ge=1, le=16)] = 4

    max_body_bytes: Annotated[int, Field(ge=1024)] = 1_048_576
    """Largest request body accepted, unless a route sets its own limit (enforced while the
    body is read, chunked bodies included)."""
    header_read_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 10.0
    """How long a client may take to send a request's line and headers (from its first byte,
    or from the end of the previous response on a kept-alive connection) before the
    connection is closed."""
    body_read_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    """How long a request body may stall (no byte received) before the request is refused
    with 408 and the connection closed."""
    auth_cache_ttl_seconds: Annotated[float, Field(ge=0, le=300)] = 5.0
    """How long a resolved user stays cached for authentication (0 disables the cache)."""

    attack_bundle: Path | None = None
    """ATT&CK STIX 2.1 bundle (or an index built from one) to use instead of the shipped index."""

    llm_base_url: str | None = None
    """OpenAI-compatible endpoint (``http://127.0.0.1:8000/v1``); None: built-in analysis."""
    llm_api_key: SecretStr | None = None
    llm_model: str | None = None
    """Model to ask for; None: the first one the endpoint lists."""
    llm_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    llm_max_retries: Annotated[int, Field(ge=0, le=10)] = 1
    llm_temperature: Annotated[float, Field(ge=0, le=2)] = 0.0

    # -- threat-intel reputation connectors (each on only when its key is set) --
    virustotal_api_key: SecretStr | None = None
    virustotal_url: str = "https://www.virustotal.com"
    abuseipdb_api_key: SecretStr | None = None
    abuseipdb_url: str = "https://api.abuseipdb.com"
    otx_api_key: SecretStr | None = None
    otx_url: str = "https://otx.alienvault.com"

    # -- agents and ACP --
    agent_host: str = "127.0.0.1"
    """Address the specialist agents listen on (``aurora up``, ``aurora agent run``)."""
    agent_base_port: Annotated[int, Field(ge=1, le=65_000)] = 8101
    """The first specialist's port; the others follow in catalogue order."""
    agent_urls: dict[str, list[str]] = Field(default_factory=dict)
    """Agent name → WebSocket URLs (replicas), as JSON; overrides host and port per agent."""
    acp_max_frame_bytes: Annotated[int, Field(ge=1024)] = 1_048_576
    acp_max_in_flight: Annotated[int, Field(ge=1, le=10_000)] = 128
    acp_hop_limit: Annotated[int, Field(ge=1, le=64)] = 8
    acp_call_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 60.0
    acp_startup_grace_seconds: Annotated[float, Field(ge=0, le=3600)] = 120.0
    """How long an agent that refuses connections is taken for one still starting (calls wait
    for it within their deadline) before it counts as down (calls fail fast, its circuit
    opens)."""

    # -- response --
    guardrails_file: Path | None = None
    """YAML guardrail policy laid over the built-in one (``core.guardrails``); None: defaults."""
    evidence_max_bytes: Annotated[int, Field(ge=1, le=1 << 40)] = 104_857_600
    """Largest evidence upload, stored under ``<data dir>/evidence`` by SHA-256."""
    ledger_keyring: Path | None = None
    """Directory of the evidence ledger's keys (kept outside the database); default
    ``<data dir>/ledger-keys``, created with a first key when it holds none."""
    checkpoint_retention_hours: Annotated[int, Field(ge=0, le=87_600)] = 168
    """How long the graph checkpoints of a finished investigation are kept (its receipt is
    kept for good)."""
    edr_connectors_file: Path | None = None
    """YAML file of the EDR connectors (``tools.edr.config``); None: the lab connector only.
    Credentials are read from the environment variables it names, never from the file."""
    edr_refresh_seconds: Annotated[float, Field(ge=5, le=86_400)] = 300.0
    """How often the endpoint inventory is rebuilt from the logs and the connectors."""
    soar_webhook_url: str | None = None
    """An HTTP(S) endpoint the playbooks' ``notify`` steps also post to (a chat or paging
    integration); None: notifications go to the event bus only."""
    mcp_host: str = "127.0.0.1"
    """Address the MCP tool server listens on."""
    mcp_port: Annotated[int, Field(ge=1, le=65_535)] = 8100
    intel_feeds: list[Path] = Field(default_factory=list)
    """Threat feeds (STIX 2.1 bundles, MISP events as .json; CSV with type,value columns) the
    threat_intel agent imports at start, as a JSON list of paths."""

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("external_url")
    @classmethod
    def _secure_external(cls, value: str | None) -> str | None:
        return None if value is None else https_or_loopback(value, "AURORA_EXTERNAL_URL")

    @field_validator("sso_redirect_urls")
    @classmethod
    def _secure_redirects(cls, values: list[str]) -> list[str]:
        return [https_or_loopback(v, "an SSO redirect URL") for v in values]

    @model_validator(mode="after")
    def _unique_providers(self) -> Settings:
        ids = [p.id for p in (*self.oidc_providers, *self.saml_providers)]
        if len(ids) != len(set(ids)):
            raise ValueError("two identity providers have the same id")
        return self

    @model_validator(mode="after")
    def _cluster_needs_a_server(self) -> Settings:
        if self.clickhouse_cluster is not None and self.clickhouse_url is None:
            raise ValueError(
                f"AURORA_CLICKHOUSE_CLUSTER={self.clickhouse_cluster} needs "
                "AURORA_CLICKHOUSE_URL (a node of that cluster): the embedded chDB is one "
                "process, not a cluster"
            )
        return self

    @property
    def effective_database_url(self) -> str:
        """The configured database URL, or the SQLite file under the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'aurora.db'}"

    @property
    def base_url(self) -> str:
        """Where users reach the platform: ``external_url``, or the gateway's own address."""
        return self.external_url or self.public_url

    @property
    def public_url(self) -> str:
        """Base URL at which the gateway serves."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, with explicit overrides taking precedence."""
    return Settings(**overrides)  # type: ignore[arg-type]


def ensure_data_dir(settings: Settings) -> Path:
    """Create the data directory (owner-only) and return it."""
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    return settings.data_dir


def jwt_hmac_secret(settings: Settings) -> str:
    """The HS256 key: from settings, else one generated once and stored in the data dir."""
    if settings.jwt_secret is not None:
        return settings.jwt_secret.get_secret_value()
    path = ensure_data_dir(settings) / "jwt_secret"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    secret = secrets.token_urlsafe(48)
    # Written whole under a name of its own, then linked into place: when processes race to
    # create it (``aurora up`` starts its agents while the gateway starts), one link wins and
    # every process reads its key, never a file still being written.
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        with draft.open("x") as handle:
            draft.chmod(0o600)
            handle.write(secret)
        os.link(draft, path)
    except FileExistsError:
        return path.read_text().strip()
    finally:
        draft.unlink(missing_ok=True)
    return secret
