"""Reputation look-ups at VirusTotal, AbuseIPDB and AlienVault OTX, as one :class:`Reputation`.

Each connector is on only when its API key is configured (:func:`build_connectors`). Outcomes
an agent must tell apart are typed:

- the vendor does not know the value (HTTP 404): a ``Reputation`` with verdict ``unknown``;
- the key is refused (401/403): :class:`ConnectorAuthError` (AURORA-5030);
- quota exhausted (429): one retry after ``Retry-After`` when the vendor sends one no longer
  than ``max_retry_after_seconds``, then :class:`ConnectorRateLimited` (AURORA-4290);
- timeout, connection failure, 5xx, unreadable body: :class:`ConnectorUnavailable`
  (AURORA-5030).

No message, detail or log line carries an API key: keys live in ``SecretStr`` until the one
header that sends them. Answers (``unknown`` ones too) are cached per (source, type, value)
for a TTL, to save vendor quota.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from types import TracebackType
from typing import Any, ClassVar, Self
from urllib.parse import quote

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from yarl import URL

from core.errors import AuroraError, RateLimited, ServiceUnavailable, ValidationFailed
from core.settings import Settings
from tools.intel.models import IndicatorType
from tools.intel.normalise import Normalised, normalise

Sleep = Callable[[float], Awaitable[None]]

_MAX_BODY_BYTES = 4 * 1024 * 1024


class Verdict(StrEnum):
    """What a vendor's answer means for the indicator."""

    MALICIOUS = "malicious"
    SUSPICIOUS = "suspicious"
    HARMLESS = "harmless"
    UNKNOWN = "unknown"


class Reputation(BaseModel):
    """One vendor's view of one indicator.

    ``score`` is 0 (nothing against it) to 100 (certainly malicious), by the vendor's rule
    documented on its connector; ``details`` holds the vendor fields it was derived from.
    """

    model_config = ConfigDict(frozen=True)

    source: str
    indicator_type: IndicatorType
    indicator_value: str
    verdict: Verdict
    score: int = Field(ge=0, le=100)
    details: dict[str, Any]
    fetched_at: datetime
    cached: bool = False
    """True when served from the cache rather than asked of the vendor now."""


class ConnectorAuthError(ServiceUnavailable):
    """The vendor refused the configured API key (HTTP 401/403)."""

    message = "Threat-intel provider refused the configured API key"

    def __init__(self, source: str, status: int) -> None:
        self.source = source
        super().__init__({"source": source, "status": status})


class ConnectorRateLimited(RateLimited):
    """The vendor's quota is exhausted (HTTP 429), after at most one retry."""

    message = "Threat-intel provider rate limit exceeded"

    def __init__(self, source: str, retry_after: int) -> None:
        self.source = source
        super().__init__({"source": source}, retry_after=retry_after)


class ConnectorUnavailable(ServiceUnavailable):
    """The vendor could not answer: timeout, connection failure, 5xx or unreadable body."""

    message = "Threat-intel provider unavailable"

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__({"source": source, "reason": reason})


class ReputationCache:
    """Answers per (source, type, value), each kept ``ttl_seconds``; least recently used out."""

    def __init__(
        self,
        ttl_seconds: float = 3600.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str, str], tuple[float, Reputation]] = OrderedDict()

    def get(self, source: str, type_: IndicatorType, value: str) -> Reputation | None:
        """The cached answer, or None when absent or older than the TTL."""
        key = (source, type_.value, value)
        entry = self._entries.get(key)
        if entry is None:
            return None
        stored_at, reputation = entry
        if self._clock() - stored_at >= self.ttl_seconds:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return reputation

    def put(self, reputation: Reputation) -> None:
        """Keep an answer."""
        key = (reputation.source, reputation.indicator_type.value, reputation.indicator_value)
        self._entries[key] = (self._clock(), reputation)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


def _retry_after_seconds(header: str | None) -> float | None:
    # Retry-After is delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
    if not header:
        return None
    text = header.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _strings(value: object) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class ReputationConnector(ABC):
    """One vendor's reputation API over aiohttp.

    Uses ``session`` when given (the caller closes it), else opens one on first use and
    closes it in :meth:`aclose`.
    """

    source: ClassVar[str]
    supported_types: ClassVar[frozenset[IndicatorType]]

    def __init__(
        self,
        *,
        api_key: SecretStr,
        base_url: str,
        session: aiohttp.ClientSession | None = None,
        cache: ReputationCache | None = None,
        timeout_seconds: float = 15.0,
        max_retry_after_seconds: float = 60.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        # A key pasted with its newline is common; any other control or non-ASCII character
        # could not travel in a header (and aiohttp would refuse it at the first request).
        key = api_key.get_secret_value().strip()
        if not key.isascii() or not key.isprintable():
            raise ValueError(f"{self.source} API key has characters not allowed in an HTTP header")
        self._api_key = SecretStr(key)
        self.base_url = base_url.rstrip("/")
        self._session = session
        self._owns_session = session is None
        self._closed = False
        self.cache = cache if cache is not None else ReputationCache()
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self.max_retry_after_seconds = max_retry_after_seconds
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the session this connector opened (never one it was given); a lookup still in
        flight, or made later, is reported unavailable."""
        self._closed = True
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    def supports(self, type_: IndicatorType, value: str | None = None) -> bool:
        """Whether this vendor can rate this type (and value: no vendor rates a network)."""
        if type_ not in self.supported_types:
            return False
        return not (value is not None and type_ is IndicatorType.IP and "/" in value)

    async def reputation(self, type_: IndicatorType | str, value: str) -> Reputation:
        """The vendor's view of one indicator (cached for the cache's TTL).

        Raises ValidationFailed for an invalid value or one this vendor cannot rate, and the
        connector errors of the module docstring.
        """
        try:
            canonical = normalise(type_, value)
        except ValueError as err:
            raise ValidationFailed({"value": value[:200], "reason": str(err)}) from err
        if not self.supports(canonical.type, canonical.value):
            raise ValidationFailed(
                {
                    "source": self.source,
                    "reason": f"cannot rate a {canonical.subtype or canonical.type}",
                }
            )
        cached = self.cache.get(self.source, canonical.type, canonical.value)
        if cached is not None:
            return cached.model_copy(update={"cached": True})
        path, params = self._request(canonical)
        body = await self._get(path, params)
        if body is None:
            found = self._result(canonical, Verdict.UNKNOWN, 0, {"found": False})
        else:
            found = self._interpret(canonical, body)
        self.cache.put(found)
        return found

    def _result(
        self, canonical: Normalised, verdict: Verdict, score: int, details: dict[str, Any]
    ) -> Reputation:
        return Reputation(
            source=self.source,
            indicator_type=canonical.type,
            indicator_value=canonical.value,
            verdict=verdict,
            score=max(0, min(100, score)),
            details=details,
            fetched_at=datetime.now(UTC),
        )

    @abstractmethod
    def _request(self, canonical: Normalised) -> tuple[str, dict[str, str]]:
        """The path (already percent-encoded) and query parameters for one value."""

    @abstractmethod
    def _auth_headers(self, key: str) -> dict[str, str]:
        """The headers that carry ``key``."""

    @abstractmethod
    def _interpret(self, canonical: Normalised, body: Mapping[str, Any]) -> Reputation:
        """The reputation in a 200 answer."""

    def _client(self) -> aiohttp.ClientSession:
        if self._closed:
            raise ConnectorUnavailable(self.source, "closed")
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def _get(self, path: str, params: Mapping[str, str]) -> dict[str, Any] | None:
        """The JSON object of a 200 answer, None for a 404; the connector errors otherwise."""
        url = URL(self.base_url + path, encoded=True)
        headers = {"Accept": "application/json"}
        headers.update(self._auth_headers(self._api_key.get_secret_value()))
        for attempt in range(2):
            try:
                async with self._client().get(
                    url, params=params, headers=headers, timeout=self.timeout, allow_redirects=False
                ) as response:
                    status = response.status
                    if status == 200:
                        return await self._json(response)
                    retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
            except TimeoutError as err:
                raise ConnectorUnavailable(self.source, "timeout") from err
            except aiohttp.ClientError as err:
                raise ConnectorUnavailable(self.source, type(err).__name__) from err
            if status == 404:
                return None
            if status in (401, 403):
                raise ConnectorAuthError(self.source, status)
            if status != 429:
                raise ConnectorUnavailable(self.source, f"HTTP {status}")
            if (
                attempt == 0
                and retry_after is not None
                and retry_after <= self.max_retry_after_seconds
            ):
                await self._sleep(retry_after)
                continue
            raise ConnectorRateLimited(self.source, round(retry_after or 60))
        raise AssertionError("unreachable: the loop returns or raises")

    async def _json(self, response: aiohttp.ClientResponse) -> dict[str, Any]:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(65_536):
            size += len(chunk)
            if size > _MAX_BODY_BYTES:
                raise ConnectorUnavailable(self.source, "response too large")
            chunks.append(chunk)
        try:
            body = json.loads(b"".join(chunks))
        except ValueError as err:
            raise ConnectorUnavailable(self.source, "invalid JSON response") from err
        if not isinstance(body, dict):
            raise ConnectorUnavailable(self.source, "unexpected response shape")
        return body


_VIRUSTOTAL_FIELDS = (
    "country",
    "as_owner",
    "asn",
    "network",
    "registrar",
    "categories",
    "meaningful_name",
    "type_description",
    "total_votes",
)


class VirusTotal(ReputationConnector):
    """VirusTotal API v3: ``/api/v3/{ip_addresses|domains|files|urls}/{id}``, ``x-apikey``.

    Verdict from ``last_analysis_stats``: no engine answered → unknown; at least
    :attr:`MALICIOUS_ENGINES` engines say malicious → malicious; any malicious or suspicious
    engine → suspicious; else harmless. Score: the share of engines that answered that flag
    it, suspicious counting half (``5/70`` malicious → 7).
    """

    source = "virustotal"
    supported_types = frozenset(
        {IndicatorType.IP, IndicatorType.DOMAIN, IndicatorType.URL, IndicatorType.HASH}
    )
    MALICIOUS_ENGINES: ClassVar[int] = 3

    def _auth_headers(self, key: str) -> dict[str, str]:
        return {"x-apikey": key}

    def _request(self, canonical: Normalised) -> tuple[str, dict[str, str]]:
        match canonical.type:
            case IndicatorType.IP:
                return f"/api/v3/ip_addresses/{quote(canonical.value, safe='')}", {}
            case IndicatorType.DOMAIN:
                return f"/api/v3/domains/{quote(canonical.value, safe='')}", {}
            case IndicatorType.HASH:
                return f"/api/v3/files/{canonical.value}", {}
            case _:
                # VirusTotal's URL identifier: unpadded URL-safe base64 of the URL.
                url_id = base64.urlsafe_b64encode(canonical.value.encode()).decode().rstrip("=")
                return f"/api/v3/urls/{url_id}", {}

    def _interpret(self, canonical: Normalised, body: Mapping[str, Any]) -> Reputation:
        attributes = _dict(_dict(body.get("data")).get("attributes"))
        stats = {k: _int(v) for k, v in _dict(attributes.get("last_analysis_stats")).items()}
        malicious, suspicious = stats.get("malicious", 0), stats.get("suspicious", 0)
        answered = malicious + suspicious + stats.get("harmless", 0) + stats.get("undetected", 0)
        if answered == 0:
            verdict = Verdict.UNKNOWN
        elif malicious >= self.MALICIOUS_ENGINES:
            verdict = Verdict.MALICIOUS
        elif malicious or suspicious:
            verdict = Verdict.SUSPICIOUS
        else:
            verdict = Verdict.HARMLESS
        score = round(100 * (malicious + suspicious / 2) / answered) if answered else 0
        details: dict[str, Any] = {
            "found": True,
            "last_analysis_stats": stats,
            "reputation": _int(attributes.get("reputation")),
            "tags": _strings(attributes.get("tags")),
        }
        analysed = attributes.get("last_analysis_date")
        if isinstance(analysed, int) and 0 <= analysed < 2**34:
            details["last_analysis_date"] = datetime.fromtimestamp(analysed, UTC).isoformat()
        for name in _VIRUSTOTAL_FIELDS:
            if attributes.get(name) not in (None, "", {}, []):
                details[name] = attributes[name]
        label = _dict(attributes.get("popular_threat_classification")).get("suggested_threat_label")
        if isinstance(label, str):
            details["suggested_threat_label"] = label
        return self._result(canonical, verdict, score, details)


_ABUSEIPDB_FIELDS = (
    ("countryCode", "country_code"),
    ("isp", "isp"),
    ("usageType", "usage_type"),
    ("domain", "domain"),
    ("isTor", "is_tor"),
    ("lastReportedAt", "last_reported_at"),
)


class AbuseIPDB(ReputationConnector):
    """AbuseIPDB API v2: ``/api/v2/check?ipAddress=…&maxAgeInDays=90``, headers ``Key``.

    Score: ``abuseConfidenceScore``. Verdict: whitelisted → harmless; no reports (or a
    non-public address) → unknown; score ≥ :attr:`MALICIOUS_SCORE` → malicious; score ≥
    :attr:`SUSPICIOUS_SCORE` → suspicious; else (reported, low confidence) harmless.
    """

    source = "abuseipdb"
    supported_types = frozenset({IndicatorType.IP})
    MALICIOUS_SCORE: ClassVar[int] = 75
    SUSPICIOUS_SCORE: ClassVar[int] = 25
    MAX_AGE_DAYS: ClassVar[int] = 90

    def _auth_headers(self, key: str) -> dict[str, str]:
        return {"Key": key}

    def _request(self, canonical: Normalised) -> tuple[str, dict[str, str]]:
        return "/api/v2/check", {
            "ipAddress": canonical.value,
            "maxAgeInDays": str(self.MAX_AGE_DAYS),
        }

    def _interpret(self, canonical: Normalised, body: Mapping[str, Any]) -> Reputation:
        data = _dict(body.get("data"))
        score = _int(data.get("abuseConfidenceScore"))
        reports = _int(data.get("totalReports"))
        whitelisted = data.get("isWhitelisted") is True
        if whitelisted:
            verdict = Verdict.HARMLESS
        elif reports == 0 or data.get("isPublic") is False:
            verdict = Verdict.UNKNOWN
        elif score >= self.MALICIOUS_SCORE:
            verdict = Verdict.MALICIOUS
        elif score >= self.SUSPICIOUS_SCORE:
            verdict = Verdict.SUSPICIOUS
        else:
            verdict = Verdict.HARMLESS
        details: dict[str, Any] = {
            "found": True,
            "abuse_confidence_score": score,
            "total_reports": reports,
            "distinct_users": _int(data.get("numDistinctUsers")),
            "is_whitelisted": whitelisted,
        }
        for field, name in _ABUSEIPDB_FIELDS:
            if data.get(field) is not None:
                details[name] = data[field]
        return self._result(canonical, verdict, score, details)


class OTX(ReputationConnector):
    """AlienVault OTX API v1: ``/api/v1/indicators/{section}/{value}/general``,
    ``X-OTX-API-KEY``.

    Verdict from the pulses (community reports) naming the value: whitelisted by OTX's
    validation (``whitelist``/``false_positive``) → harmless; ≥ :attr:`MALICIOUS_PULSES`
    pulses → malicious; ≥ 1 → suspicious; none → unknown. Score: 25 per pulse, at most 100
    (0 when whitelisted). A domain of two labels is asked as ``domain``, a longer name as
    ``hostname`` (OTX keeps the two apart).
    """

    source = "otx"
    supported_types = frozenset(
        {IndicatorType.IP, IndicatorType.DOMAIN, IndicatorType.URL, IndicatorType.HASH}
    )
    MALICIOUS_PULSES: ClassVar[int] = 3
    _BENIGN_VALIDATIONS: ClassVar[frozenset[str]] = frozenset({"whitelist", "false_positive"})

    def _auth_headers(self, key: str) -> dict[str, str]:
        return {"X-OTX-API-KEY": key}

    def _request(self, canonical: Normalised) -> tuple[str, dict[str, str]]:
        match canonical.type:
            case IndicatorType.IP:
                section = "IPv6" if canonical.subtype == "ipv6" else "IPv4"
            case IndicatorType.DOMAIN:
                section = "domain" if canonical.value.count(".") == 1 else "hostname"
            case IndicatorType.HASH:
                section = "file"
            case _:
                section = "url"
        # The URL goes into the path as OTX's own SDK sends it (slashes kept); characters
        # that would end the path (?, #, %) are escaped.
        return f"/api/v1/indicators/{section}/{quote(canonical.value, safe=':/@')}/general", {}

    def _interpret(self, canonical: Normalised, body: Mapping[str, Any]) -> Reputation:
        pulse_info = _dict(body.get("pulse_info"))
        pulses = [p for p in _list(pulse_info.get("pulses")) if isinstance(p, dict)]
        count = _int(pulse_info.get("count")) or len(pulses)
        validations = [v for v in _list(body.get("validation")) if isinstance(v, dict)]
        whitelisted = any(v.get("source") in self._BENIGN_VALIDATIONS for v in validations)
        if whitelisted:
            verdict, score = Verdict.HARMLESS, 0
        else:
            score = min(100, 25 * count)
            if count >= self.MALICIOUS_PULSES:
                verdict = Verdict.MALICIOUS
            elif count:
                verdict = Verdict.SUSPICIOUS
            else:
                verdict = Verdict.UNKNOWN
        tags: list[str] = []
        families: list[str] = []
        attack_ids: list[str] = []
        for pulse in pulses:
            tags += [t for t in _strings(pulse.get("tags")) if t not in tags]
            for family in _list(pulse.get("malware_families")):
                name = family.get("display_name") if isinstance(family, dict) else family
                if isinstance(name, str) and name not in families:
                    families.append(name)
            for attack in _list(pulse.get("attack_ids")):
                ident = attack.get("id") if isinstance(attack, dict) else attack
                if isinstance(ident, str) and ident not in attack_ids:
                    attack_ids.append(ident)
        details: dict[str, Any] = {
            "found": True,
            "pulse_count": count,
            "pulses": [str(p.get("name")) for p in pulses[:10]],
            "tags": tags[:25],
            "malware_families": families,
            "attack_ids": attack_ids,
            "reputation": _int(body.get("reputation")),
            "whitelisted": whitelisted,
        }
        return self._result(canonical, verdict, score, details)


def build_connectors(
    settings: Settings,
    *,
    session: aiohttp.ClientSession | None = None,
    cache: ReputationCache | None = None,
    timeout_seconds: float = 15.0,
) -> list[ReputationConnector]:
    """The connectors whose API key is set, sharing one cache (and ``session`` when given)."""
    shared = cache if cache is not None else ReputationCache()
    configured: list[tuple[type[ReputationConnector], SecretStr | None, str]] = [
        (VirusTotal, settings.virustotal_api_key, settings.virustotal_url),
        (AbuseIPDB, settings.abuseipdb_api_key, settings.abuseipdb_url),
        (OTX, settings.otx_api_key, settings.otx_url),
    ]
    return [
        kind(
            api_key=key,
            base_url=url,
            session=session,
            cache=shared,
            timeout_seconds=timeout_seconds,
        )
        for kind, key, url in configured
        if key is not None and key.get_secret_value()
    ]


class ReputationOutcome(BaseModel):
    """One connector's answer in :func:`check_reputation`: a reputation or a safe error."""

    model_config = ConfigDict(frozen=True)

    source: str
    reputation: Reputation | None = None
    error_code: str | None = None
    error: str | None = None
    retry_after: int | None = None


async def check_reputation(
    connectors: Sequence[ReputationConnector], type_: IndicatorType | str, value: str
) -> list[ReputationOutcome]:
    """Ask every connector that can rate the value, concurrently; one outcome per connector.

    A vendor's failure (typed AURORA error) becomes that outcome's error and does not stop the
    others. Raises ValidationFailed when the value is invalid for its type.
    """
    try:
        canonical = normalise(type_, value)
    except ValueError as err:
        raise ValidationFailed({"value": value[:200], "reason": str(err)}) from err
    able = [c for c in connectors if c.supports(canonical.type, canonical.value)]
    answers = await asyncio.gather(
        *(c.reputation(canonical.type, canonical.value) for c in able), return_exceptions=True
    )
    outcomes: list[ReputationOutcome] = []
    for connector, answer in zip(able, answers, strict=True):
        if isinstance(answer, Reputation):
            outcomes.append(ReputationOutcome(source=connector.source, reputation=answer))
        elif isinstance(answer, AuroraError):
            outcomes.append(
                ReputationOutcome(
                    source=connector.source,
                    error_code=answer.code,
                    error=answer.message,
                    retry_after=getattr(answer, "retry_after", None),
                )
            )
        else:
            raise answer
    return outcomes
