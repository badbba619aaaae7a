"""Reputation connectors against fake vendor servers speaking the vendors' HTTP APIs."""

from __future__ import annotations

import traceback
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import aiohttp
import pytest
from pydantic import SecretStr

from core.errors import AuroraError, ValidationFailed
from core.settings import Settings
from tests.fakes.intel_apis import FakeAbuseIPDB, FakeOTX, FakeVirusTotal
from tools.intel import (
    OTX,
    AbuseIPDB,
    ConnectorAuthError,
    ConnectorRateLimited,
    ConnectorUnavailable,
    IndicatorType,
    ReputationCache,
    Verdict,
    VirusTotal,
    build_connectors,
    check_reputation,
)

VT_KEY = "vt-SECRET-4f9a1c0d7e2b58a3c6d1e0f9a8b7c6d5"
ABUSE_KEY = "abuse-SECRET-0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f"
OTX_KEY = "otx-SECRET-9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b"
WRONG_KEY = "wrong-SECRET-1111222233334444555566667777"
SHA256 = "970ac0b3f650e911862affbce47aef6ac93240aeba8ba74e19f2f7a61b55f420"
MD5 = "34965c1acaaddfb0e329160401edbcd9"


class Sleeps:
    """Stands in for asyncio.sleep: records the waits, so Retry-After tests take no time."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


@pytest.fixture
async def vt() -> AsyncIterator[FakeVirusTotal]:
    async with FakeVirusTotal(api_key=VT_KEY) as fake:
        yield fake


@pytest.fixture
async def abuse() -> AsyncIterator[FakeAbuseIPDB]:
    async with FakeAbuseIPDB(api_key=ABUSE_KEY) as fake:
        yield fake


@pytest.fixture
async def otx() -> AsyncIterator[FakeOTX]:
    async with FakeOTX(api_key=OTX_KEY) as fake:
        yield fake


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def virustotal(
    fake: FakeVirusTotal, session: aiohttp.ClientSession, key: str = VT_KEY, **kw: object
) -> VirusTotal:
    return VirusTotal(api_key=SecretStr(key), base_url=fake.base_url, session=session, **kw)  # type: ignore[arg-type]


def assert_no_key(error: BaseException, *keys: str) -> None:
    """Nothing a caller or a log could show of the error carries a key."""
    shown = "".join(traceback.format_exception(error))
    shown += repr(error) + str(getattr(error, "detail", "")) + str(getattr(error, "headers", ""))
    for key in keys:
        assert key not in shown
        assert key[-12:] not in shown


# -- VirusTotal ------------------------------------------------------------------------------


async def test_virustotal_malicious_ip(vt: FakeVirusTotal, session: aiohttp.ClientSession) -> None:
    counts = {"malicious": 12, "suspicious": 2, "harmless": 50, "undetected": 6}
    vt.add_ip("198.51.100.23", reputation=-31, tags=["c2"], **counts)
    reputation = await virustotal(vt, session).reputation("ip", "198.51.100.23")
    assert reputation.source == "virustotal"
    assert (reputation.indicator_type, reputation.indicator_value) == (
        IndicatorType.IP,
        "198.51.100.23",
    )
    assert reputation.verdict is Verdict.MALICIOUS
    assert reputation.score == 19  # (12 + 2/2) / 70
    assert reputation.details["last_analysis_stats"]["malicious"] == 12
    assert reputation.details["reputation"] == -31
    assert reputation.details["tags"] == ["c2"]
    assert reputation.details["country"] == "NL"
    assert reputation.details["last_analysis_date"] == "2024-06-01T00:00:00+00:00"
    assert reputation.cached is False
    [request] = vt.requests
    assert request.path == "/api/v3/ip_addresses/198.51.100.23"
    assert request.headers["x-apikey"] == VT_KEY
    assert request.status == 200


@pytest.mark.parametrize(
    ("counts", "verdict", "score"),
    [
        ({"malicious": 0, "harmless": 70, "undetected": 10}, Verdict.HARMLESS, 0),
        ({"malicious": 1, "harmless": 70, "undetected": 9}, Verdict.SUSPICIOUS, 1),
        ({"suspicious": 1, "harmless": 70, "undetected": 9}, Verdict.SUSPICIOUS, 1),
        ({"malicious": 3, "harmless": 1}, Verdict.MALICIOUS, 75),
        ({}, Verdict.UNKNOWN, 0),  # known, but no engine has looked at it
    ],
)
async def test_virustotal_verdict_rule(
    vt: FakeVirusTotal,
    session: aiohttp.ClientSession,
    counts: dict[str, int],
    verdict: Verdict,
    score: int,
) -> None:
    vt.add_domain("login.badcdn.example", **counts)
    reputation = await virustotal(vt, session).reputation("domain", "Login.Badcdn.example")
    assert (reputation.verdict, reputation.score) == (verdict, score)
    assert vt.requests[0].path == "/api/v3/domains/login.badcdn.example"


async def test_virustotal_files_and_urls(
    vt: FakeVirusTotal, session: aiohttp.ClientSession
) -> None:
    label = {"suggested_threat_label": "trojan.ghostloader"}
    vt.add_file(
        SHA256, aliases=(MD5,), malicious=40, undetected=20, popular_threat_classification=label
    )
    url = "http://login-verify.badcdn.example/o365/index.php?session=1"
    vt.add_url(url, harmless=60, undetected=20)
    connector = virustotal(vt, session)
    by_md5 = await connector.reputation("hash", MD5.upper())
    assert by_md5.verdict is Verdict.MALICIOUS
    assert by_md5.details["suggested_threat_label"] == "trojan.ghostloader"
    assert by_md5.details["meaningful_name"] == "invoice.exe"
    assert vt.requests[0].path == f"/api/v3/files/{MD5}"
    by_url = await connector.reputation("url", url)
    assert by_url.verdict is Verdict.HARMLESS
    # The URL identifier is unpadded URL-safe base64.
    url_id = vt.requests[1].path.rsplit("/", 1)[1]
    assert "=" not in url_id
    assert url_id == FakeVirusTotal.url_id(url)


async def test_virustotal_404_is_unknown_and_cached(
    vt: FakeVirusTotal, session: aiohttp.ClientSession
) -> None:
    connector = virustotal(vt, session)
    reputation = await connector.reputation("hash", SHA256)
    assert (reputation.verdict, reputation.score) == (Verdict.UNKNOWN, 0)
    assert reputation.details == {"found": False}
    assert vt.requests[0].status == 404
    again = await connector.reputation("hash", SHA256)
    assert (again.verdict, again.cached) == (Verdict.UNKNOWN, True)
    assert len(vt.requests) == 1  # the cache saved the quota


@pytest.mark.parametrize("key", [WRONG_KEY, ""])
async def test_virustotal_refused_key(
    vt: FakeVirusTotal, session: aiohttp.ClientSession, key: str
) -> None:
    with pytest.raises(ConnectorAuthError) as caught:
        await virustotal(vt, session, key=key).reputation("ip", "198.51.100.23")
    error = caught.value
    assert (error.code, error.status) == ("AURORA-5030", 503)
    assert error.detail == {"source": "virustotal", "status": 401}
    assert error.message == "Threat-intel provider refused the configured API key"
    assert vt.requests[0].status == 401
    assert_no_key(error, VT_KEY, WRONG_KEY)


async def test_virustotal_rate_limit_retried_once(
    vt: FakeVirusTotal, session: aiohttp.ClientSession, sleeps: Sleeps
) -> None:
    vt.add_ip("198.51.100.23", malicious=5, harmless=50)
    vt.rate_limit(1, retry_after="7")
    reputation = await virustotal(vt, session, sleep=sleeps).reputation("ip", "198.51.100.23")
    assert reputation.verdict is Verdict.MALICIOUS
    assert sleeps.waits == [7.0]
    assert [r.status for r in vt.requests] == [429, 200]


async def test_rate_limit_twice_is_reported(
    vt: FakeVirusTotal, session: aiohttp.ClientSession, sleeps: Sleeps
) -> None:
    vt.add_ip("198.51.100.23", malicious=5)
    vt.rate_limit(2, retry_after="3")
    with pytest.raises(ConnectorRateLimited) as caught:
        await virustotal(vt, session, sleep=sleeps).reputation("ip", "198.51.100.23")
    error = caught.value
    assert (error.code, error.status, error.retry_after) == ("AURORA-4290", 429, 3)
    assert error.headers == {"Retry-After": "3"}
    assert error.detail == {"source": "virustotal"}
    assert sleeps.waits == [3.0]
    assert [r.status for r in vt.requests] == [429, 429]
    assert_no_key(error, VT_KEY)


async def test_rate_limit_without_or_with_a_long_retry_after_is_not_retried(
    vt: FakeVirusTotal, session: aiohttp.ClientSession, sleeps: Sleeps
) -> None:
    vt.rate_limit(1)  # VirusTotal's quota errors carry no Retry-After
    connector = virustotal(vt, session, sleep=sleeps, max_retry_after_seconds=30)
    with pytest.raises(ConnectorRateLimited) as caught:
        await connector.reputation("ip", "198.51.100.23")
    assert caught.value.retry_after == 60
    vt.rate_limit(1, retry_after="3600")
    with pytest.raises(ConnectorRateLimited) as caught:
        await connector.reputation("ip", "198.51.100.23")
    assert caught.value.retry_after == 3600
    assert sleeps.waits == []
    assert len(vt.requests) == 2


async def test_retry_after_as_an_http_date(
    vt: FakeVirusTotal, session: aiohttp.ClientSession, sleeps: Sleeps
) -> None:
    vt.add_ip("198.51.100.23", harmless=5)
    when = datetime.now(UTC) + timedelta(seconds=20)
    vt.rate_limit(1, retry_after=format_datetime(when, usegmt=True))
    await virustotal(vt, session, sleep=sleeps).reputation("ip", "198.51.100.23")
    [wait] = sleeps.waits
    assert 15 <= wait <= 20


async def test_timeout_is_unavailable(vt: FakeVirusTotal, session: aiohttp.ClientSession) -> None:
    vt.add_ip("198.51.100.23", malicious=5)
    vt.delay = 2.0
    connector = virustotal(vt, session, timeout_seconds=0.2)
    with pytest.raises(ConnectorUnavailable) as caught:
        await connector.reputation("ip", "198.51.100.23")
    error = caught.value
    assert (error.code, error.reason) == ("AURORA-5030", "timeout")
    assert error.detail == {"source": "virustotal", "reason": "timeout"}
    assert_no_key(error, VT_KEY)


async def test_unreachable_vendor_is_unavailable(session: aiohttp.ClientSession) -> None:
    async with FakeVirusTotal(api_key=VT_KEY) as gone:
        base_url = gone.base_url
    connector = VirusTotal(api_key=SecretStr(VT_KEY), base_url=base_url, session=session)
    with pytest.raises(ConnectorUnavailable) as caught:
        await connector.reputation("ip", "198.51.100.23")
    assert caught.value.reason == "ClientConnectorError"
    assert_no_key(caught.value, VT_KEY)


async def test_invalid_values_never_reach_the_vendor(
    vt: FakeVirusTotal, session: aiohttp.ClientSession
) -> None:
    connector = virustotal(vt, session)
    with pytest.raises(ValidationFailed):
        await connector.reputation("ip", "198.51.100.300")
    with pytest.raises(ValidationFailed) as caught:
        await connector.reputation("ip", "10.0.0.0/8")
    assert caught.value.detail == {"source": "virustotal", "reason": "cannot rate a ipv4-network"}
    with pytest.raises(ValidationFailed):
        await connector.reputation("cve", "CVE-2021-44228")
    assert vt.requests == []


# -- AbuseIPDB -------------------------------------------------------------------------------


def abuseipdb(
    fake: FakeAbuseIPDB, session: aiohttp.ClientSession, key: str = ABUSE_KEY, **kw: object
) -> AbuseIPDB:
    return AbuseIPDB(api_key=SecretStr(key), base_url=fake.base_url, session=session, **kw)  # type: ignore[arg-type]


async def test_abuseipdb_malicious(abuse: FakeAbuseIPDB, session: aiohttp.ClientSession) -> None:
    abuse.add_ip("198.51.100.23", score=100, reports=412)
    reputation = await abuseipdb(abuse, session).reputation("ip", "198.51.100.23")
    assert (reputation.verdict, reputation.score) == (Verdict.MALICIOUS, 100)
    assert reputation.details["total_reports"] == 412
    assert reputation.details["country_code"] == "NL"
    assert reputation.details["isp"] == "Example Hosting B.V."
    assert reputation.details["usage_type"] == "Data Center/Web Hosting/Transit"
    assert reputation.details["is_whitelisted"] is False
    [request] = abuse.requests
    assert request.path == "/api/v2/check"
    assert request.query == {"ipAddress": "198.51.100.23", "maxAgeInDays": "90"}
    assert request.headers["Key"] == ABUSE_KEY
    assert request.headers["Accept"] == "application/json"


@pytest.mark.parametrize(
    ("ip", "setup", "verdict", "score"),
    [
        ("8.8.8.8", {"score": 0, "reports": 12, "whitelisted": True}, Verdict.HARMLESS, 0),
        ("8.8.4.4", {"score": 40, "reports": 3}, Verdict.SUSPICIOUS, 40),
        ("1.0.0.1", {"score": 10, "reports": 1}, Verdict.HARMLESS, 10),
        ("9.9.9.9", None, Verdict.UNKNOWN, 0),  # never reported
        ("10.0.0.5", {"score": 50, "reports": 3, "isPublic": False}, Verdict.UNKNOWN, 50),
        ("2001:4860:4860::8888", {"score": 80, "reports": 20}, Verdict.MALICIOUS, 80),
    ],
)
async def test_abuseipdb_verdict_rule(
    abuse: FakeAbuseIPDB,
    session: aiohttp.ClientSession,
    ip: str,
    setup: dict[str, int] | None,
    verdict: Verdict,
    score: int,
) -> None:
    if setup is not None:
        abuse.add_ip(ip, **setup)  # type: ignore[arg-type]
    reputation = await abuseipdb(abuse, session).reputation("ip", ip)
    assert (reputation.verdict, reputation.score) == (verdict, score)


async def test_abuseipdb_only_rates_addresses(
    abuse: FakeAbuseIPDB, session: aiohttp.ClientSession
) -> None:
    connector = abuseipdb(abuse, session)
    assert connector.supports(IndicatorType.IP) is True
    assert connector.supports(IndicatorType.DOMAIN) is False
    with pytest.raises(ValidationFailed):
        await connector.reputation("domain", "badcdn.example")
    assert abuse.requests == []


async def test_abuseipdb_refused_key(abuse: FakeAbuseIPDB, session: aiohttp.ClientSession) -> None:
    with pytest.raises(ConnectorAuthError) as caught:
        await abuseipdb(abuse, session, key=WRONG_KEY).reputation("ip", "198.51.100.23")
    assert caught.value.detail == {"source": "abuseipdb", "status": 401}
    assert_no_key(caught.value, WRONG_KEY, ABUSE_KEY)


async def test_abuseipdb_rate_limit(
    abuse: FakeAbuseIPDB, session: aiohttp.ClientSession, sleeps: Sleeps
) -> None:
    abuse.add_ip("198.51.100.23", score=90, reports=30)
    abuse.rate_limit(1, retry_after="2")
    reputation = await abuseipdb(abuse, session, sleep=sleeps).reputation("ip", "198.51.100.23")
    assert reputation.verdict is Verdict.MALICIOUS
    assert sleeps.waits == [2.0]
    abuse.rate_limit(2, retry_after="2")
    with pytest.raises(ConnectorRateLimited) as caught:
        await abuseipdb(abuse, session, sleep=sleeps).reputation("ip", "198.51.100.24")
    assert caught.value.retry_after == 2
    assert_no_key(caught.value, ABUSE_KEY)


async def test_abuseipdb_timeout(abuse: FakeAbuseIPDB, session: aiohttp.ClientSession) -> None:
    abuse.delay = 2.0
    with pytest.raises(ConnectorUnavailable) as caught:
        await abuseipdb(abuse, session, timeout_seconds=0.2).reputation("ip", "198.51.100.23")
    assert caught.value.reason == "timeout"


# -- OTX -------------------------------------------------------------------------------------


def alienvault(
    fake: FakeOTX, session: aiohttp.ClientSession, key: str = OTX_KEY, **kw: object
) -> OTX:
    return OTX(api_key=SecretStr(key), base_url=fake.base_url, session=session, **kw)  # type: ignore[arg-type]


async def test_otx_malicious_domain(otx: FakeOTX, session: aiohttp.ClientSession) -> None:
    otx.add_pulses(
        "domain",
        "badcdn.example",
        ["GhostLoader C2 infrastructure", "Invoice phishing wave", "Harbor Spider activity"],
        tags=("phishing", "loader"),
        malware=("GhostLoader",),
        attack_ids=("T1566.002",),
    )
    reputation = await alienvault(otx, session).reputation("domain", "BadCDN.example")
    assert (reputation.verdict, reputation.score) == (Verdict.MALICIOUS, 75)
    assert reputation.details["pulse_count"] == 3
    assert reputation.details["pulses"][0] == "GhostLoader C2 infrastructure"
    assert reputation.details["tags"] == ["phishing", "loader"]
    assert reputation.details["malware_families"] == ["GhostLoader"]
    assert reputation.details["attack_ids"] == ["T1566.002"]
    [request] = otx.requests
    assert request.path == "/api/v1/indicators/domain/badcdn.example/general"
    assert request.headers["X-OTX-API-KEY"] == OTX_KEY


async def test_otx_sections(otx: FakeOTX, session: aiohttp.ClientSession) -> None:
    url = "http://login-verify.badcdn.example/o365/index.php?session=1#top"
    otx.add_pulses("url", url, ["Phishing kit"])
    otx.add_pulses("IPv6", "2001:db8::bad", ["Scanner"])
    connector = alienvault(otx, session)
    by_url = await connector.reputation("url", url)
    assert (by_url.verdict, by_url.score) == (Verdict.SUSPICIOUS, 25)
    assert (await connector.reputation("ip", "2001:DB8::BAD")).verdict is Verdict.SUSPICIOUS
    assert (await connector.reputation("domain", "a.b.badcdn.example")).verdict is Verdict.UNKNOWN
    assert (await connector.reputation("hash", SHA256)).verdict is Verdict.UNKNOWN
    assert (await connector.reputation("ip", "192.0.2.1")).verdict is Verdict.UNKNOWN
    paths = [r.path for r in otx.requests]
    assert paths == [
        f"/api/v1/indicators/url/{url}/general",  # decoded by the server as OTX's would be
        "/api/v1/indicators/IPv6/2001:db8::bad/general",
        "/api/v1/indicators/hostname/a.b.badcdn.example/general",
        f"/api/v1/indicators/file/{SHA256}/general",
        "/api/v1/indicators/IPv4/192.0.2.1/general",
    ]


async def test_otx_whitelisted_is_harmless(otx: FakeOTX, session: aiohttp.ClientSession) -> None:
    otx.add_pulses("IPv4", "8.8.8.8", ["Resolver seen in malware config"] * 5)
    otx.whitelisted.add(("IPv4", "8.8.8.8"))
    reputation = await alienvault(otx, session).reputation("ip", "8.8.8.8")
    assert (reputation.verdict, reputation.score) == (Verdict.HARMLESS, 0)
    assert reputation.details["whitelisted"] is True


@pytest.mark.parametrize("key", [WRONG_KEY, ""])
async def test_otx_refused_key(otx: FakeOTX, session: aiohttp.ClientSession, key: str) -> None:
    with pytest.raises(ConnectorAuthError) as caught:
        await alienvault(otx, session, key=key).reputation("ip", "198.51.100.23")
    assert caught.value.detail == {"source": "otx", "status": 403}
    assert_no_key(caught.value, WRONG_KEY, OTX_KEY)


async def test_otx_rate_limit_and_timeout(
    otx: FakeOTX, session: aiohttp.ClientSession, sleeps: Sleeps
) -> None:
    otx.rate_limit(2, retry_after="1")
    with pytest.raises(ConnectorRateLimited):
        await alienvault(otx, session, sleep=sleeps).reputation("ip", "198.51.100.23")
    assert sleeps.waits == [1.0]
    otx.delay = 2.0
    with pytest.raises(ConnectorUnavailable) as caught:
        await alienvault(otx, session, timeout_seconds=0.2).reputation("ip", "198.51.100.23")
    assert caught.value.reason == "timeout"


# -- vendor faults, cache, wiring -------------------------------------------------------------


async def test_server_errors_and_bad_bodies_are_unavailable(session: aiohttp.ClientSession) -> None:
    from aiohttp import web

    replies = iter(
        [
            web.Response(status=502, text="Bad Gateway"),
            web.Response(status=200, text="<html>captive portal</html>"),
            web.json_response(["not", "an", "object"]),
            web.Response(status=400, text='{"error": {"code": "InvalidArgumentError"}}'),
        ]
    )

    async def handler(request: web.Request) -> web.Response:
        return next(replies)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        connector = VirusTotal(
            api_key=SecretStr(VT_KEY), base_url=f"http://127.0.0.1:{port}", session=session
        )
        reasons = []
        for _ in range(4):
            with pytest.raises(ConnectorUnavailable) as caught:
                await connector.reputation("ip", "198.51.100.23")
            assert_no_key(caught.value, VT_KEY)
            reasons.append(caught.value.reason)
        assert reasons == [
            "HTTP 502",
            "invalid JSON response",
            "unexpected response shape",
            "HTTP 400",
        ]
    finally:
        await runner.cleanup()


async def test_cache_ttl(vt: FakeVirusTotal, session: aiohttp.ClientSession) -> None:
    now = [1000.0]
    cache = ReputationCache(ttl_seconds=60, clock=lambda: now[0])
    vt.add_ip("198.51.100.23", malicious=5)
    connector = virustotal(vt, session, cache=cache)
    await connector.reputation("ip", "198.51.100.23")
    now[0] += 59
    assert (await connector.reputation("ip", "198.51.100.23")).cached is True
    now[0] += 2
    assert (await connector.reputation("ip", "198.51.100.23")).cached is False
    assert len(vt.requests) == 2


def test_cache_evicts_least_recently_used() -> None:
    from tools.intel import Reputation

    cache = ReputationCache(max_entries=2)

    def answer(value: str) -> Reputation:
        return Reputation(
            source="otx",
            indicator_type=IndicatorType.IP,
            indicator_value=value,
            verdict=Verdict.UNKNOWN,
            score=0,
            details={},
            fetched_at=datetime.now(UTC),
        )

    cache.put(answer("192.0.2.1"))
    cache.put(answer("192.0.2.2"))
    assert cache.get("otx", IndicatorType.IP, "192.0.2.1") is not None  # now most recent
    cache.put(answer("192.0.2.3"))
    assert len(cache) == 2
    assert cache.get("otx", IndicatorType.IP, "192.0.2.2") is None
    assert cache.get("otx", IndicatorType.IP, "192.0.2.1") is not None


async def test_owned_session_is_closed(vt: FakeVirusTotal) -> None:
    vt.add_ip("198.51.100.23", harmless=3)
    async with VirusTotal(api_key=SecretStr(VT_KEY), base_url=vt.base_url) as connector:
        assert (await connector.reputation("ip", "198.51.100.23")).verdict is Verdict.HARMLESS
    assert connector._session is None
    assert VT_KEY not in repr(connector)


INTEL_SETTINGS = ("VIRUSTOTAL", "ABUSEIPDB", "OTX")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No operator's own intel settings leak into these tests."""
    for vendor in INTEL_SETTINGS:
        for suffix in ("API_KEY", "URL"):
            monkeypatch.delenv(f"AURORA_{vendor}_{suffix}", raising=False)


@pytest.mark.usefixtures("clean_env")
def test_build_connectors_only_with_keys() -> None:
    assert build_connectors(Settings()) == []
    settings = Settings(
        virustotal_api_key=SecretStr(VT_KEY),
        otx_api_key=SecretStr(OTX_KEY),
        abuseipdb_api_key=SecretStr(""),
        otx_url="http://127.0.0.1:9/otx/",
    )
    connectors = build_connectors(settings)
    assert [type(c) for c in connectors] == [VirusTotal, OTX]
    assert connectors[0].base_url == "https://www.virustotal.com"
    assert connectors[1].base_url == "http://127.0.0.1:9/otx"
    assert connectors[0].cache is connectors[1].cache
    assert VT_KEY not in repr(settings)
    assert OTX_KEY not in repr(connectors)


@pytest.mark.usefixtures("clean_env")
def test_settings_defaults() -> None:
    settings = Settings()
    assert settings.virustotal_url == "https://www.virustotal.com"
    assert settings.abuseipdb_url == "https://api.abuseipdb.com"
    assert settings.otx_url == "https://otx.alienvault.com"
    assert settings.virustotal_api_key is None


async def test_check_reputation_gathers_every_vendor(
    vt: FakeVirusTotal,
    abuse: FakeAbuseIPDB,
    otx: FakeOTX,
    session: aiohttp.ClientSession,
    sleeps: Sleeps,
) -> None:
    vt.add_ip("198.51.100.23", malicious=9, harmless=60)
    abuse.rate_limit(2, retry_after="1")
    otx.add_pulses("IPv4", "198.51.100.23", ["C2"])
    settings = Settings(
        virustotal_api_key=SecretStr(VT_KEY),
        virustotal_url=vt.base_url,
        abuseipdb_api_key=SecretStr(ABUSE_KEY),
        abuseipdb_url=abuse.base_url,
        otx_api_key=SecretStr(WRONG_KEY),
        otx_url=otx.base_url,
    )
    connectors = build_connectors(settings, session=session)
    for connector in connectors:
        connector._sleep = sleeps
    outcomes = await check_reputation(connectors, "ip", "198.51.100.23")
    by_source = {o.source: o for o in outcomes}
    assert by_source["virustotal"].reputation is not None
    assert by_source["virustotal"].reputation.verdict is Verdict.MALICIOUS
    assert (by_source["abuseipdb"].error_code, by_source["abuseipdb"].retry_after) == (
        "AURORA-4290",
        1,
    )
    assert by_source["otx"].error_code == "AURORA-5030"
    assert by_source["otx"].error == "Threat-intel provider refused the configured API key"
    dumped = str([o.model_dump() for o in outcomes])
    for key in (VT_KEY, ABUSE_KEY, WRONG_KEY):
        assert key not in dumped
    # Only the connectors that rate domains are asked about one.
    outcomes = await check_reputation(connectors, "domain", "badcdn.example")
    assert [o.source for o in outcomes] == ["virustotal", "otx"]
    with pytest.raises(ValidationFailed):
        await check_reputation(connectors, "ip", "nope")


def test_errors_are_aurora_errors() -> None:
    for error in (
        ConnectorAuthError("virustotal", 401),
        ConnectorRateLimited("otx", 5),
        ConnectorUnavailable("abuseipdb", "timeout"),
    ):
        assert isinstance(error, AuroraError)
        assert error.source in str(error.detail)


async def test_key_whitespace_is_trimmed_and_control_characters_refused(
    vt: FakeVirusTotal, session: aiohttp.ClientSession
) -> None:
    vt.add_ip("198.51.100.23", harmless=3)
    connector = virustotal(vt, session, key=f"  {VT_KEY}\n")
    assert (await connector.reputation("ip", "198.51.100.23")).verdict is Verdict.HARMLESS
    assert vt.requests[0].headers["x-apikey"] == VT_KEY
    with pytest.raises(ValueError, match="virustotal API key has characters") as caught:
        virustotal(vt, session, key=f"{VT_KEY}\nX-Injected: 1")
    assert_no_key(caught.value, VT_KEY)


async def test_odd_shaped_answers_do_not_crash(session: aiohttp.ClientSession) -> None:
    from aiohttp import web

    bodies = iter(
        [
            {
                "data": {
                    "attributes": {
                        "last_analysis_stats": "x",
                        "tags": "c2",
                        "last_analysis_date": 10**20,
                    }
                }
            },
            {"data": None},
            {"pulse_info": None, "validation": "none"},
            {"pulse_info": {"count": "3", "pulses": [None, {"tags": "x", "attack_ids": 5}]}},
        ]
    )

    async def handler(request: web.Request) -> web.Response:
        return web.json_response(next(bodies))

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        vt = VirusTotal(api_key=SecretStr(VT_KEY), base_url=base_url, session=session)
        first = await vt.reputation("ip", "192.0.2.1")
        assert (first.verdict, first.details["tags"]) == (Verdict.UNKNOWN, [])
        assert "last_analysis_date" not in first.details
        assert (await vt.reputation("ip", "192.0.2.2")).verdict is Verdict.UNKNOWN
        alien = OTX(api_key=SecretStr(OTX_KEY), base_url=base_url, session=session)
        assert (await alien.reputation("ip", "192.0.2.3")).verdict is Verdict.UNKNOWN
        odd = await alien.reputation("ip", "192.0.2.4")
        assert (odd.verdict, odd.details["pulse_count"], odd.details["tags"]) == (
            Verdict.SUSPICIOUS,
            1,
            [],
        )
    finally:
        await runner.cleanup()
