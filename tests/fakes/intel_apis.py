"""Fake VirusTotal v3, AbuseIPDB v2 and AlienVault OTX v1 servers, for the intel connectors.

Each listens on 127.0.0.1 (a free port) and speaks its vendor's HTTP API: the same paths,
the same auth header (a missing or wrong key gets the vendor's refusal: 401 at VirusTotal
and AbuseIPDB, 403 at OTX), the same JSON shapes, 404 where the vendor answers 404::

    async with FakeVirusTotal(api_key="k") as vt:
        vt.add_ip("198.51.100.23", malicious=12, harmless=60, undetected=8)
        vt.rate_limit(1, retry_after="2")  # the next request gets 429 with Retry-After: 2
        connector = VirusTotal(api_key=SecretStr("k"), base_url=vt.base_url)

Scripting common to all three: :meth:`FakeVendor.rate_limit` (the next N requests get 429,
with ``Retry-After`` when given) and :attr:`FakeVendor.delay` (seconds before each answer, for
timeouts; shutdown wakes it). Every request is kept in :attr:`FakeVendor.requests`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
from dataclasses import dataclass
from typing import Any, ClassVar

from aiohttp import web

from core.loopback import LoopbackServer


@dataclass
class VendorRequest:
    """One request a fake received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int = 0


class FakeVendor(LoopbackServer):
    """What the three fakes share: lifecycle, the key check, scripted 429s and delays."""

    name: ClassVar[str] = "vendor"

    def __init__(self, *, api_key: str) -> None:
        self.api_key = api_key
        self.requests: list[VendorRequest] = []
        self.delay = 0.0
        self._rate_limited = 0
        self._retry_after: str | None = None
        self._closing = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._gate])
        self.routes(app)
        return app

    async def on_close(self) -> None:
        self._closing.set()

    @property
    def base_url(self) -> str:
        """What to configure as the vendor URL: ``http://127.0.0.1:PORT``."""
        return self.origin

    # -- scripting ---------------------------------------------------------------------------

    def rate_limit(self, count: int = 1, *, retry_after: str | None = None) -> None:
        """Answer the next ``count`` requests with 429 (and ``Retry-After`` when given)."""
        self._rate_limited = count
        self._retry_after = retry_after

    # -- what each vendor says -------------------------------------------------------------

    def presented_key(self, request: web.Request) -> str | None:
        raise NotImplementedError

    def refuse(self, missing: bool) -> web.Response:
        raise NotImplementedError

    def too_many(self) -> web.Response:
        raise NotImplementedError

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        record = VendorRequest(
            request.method, request.path, dict(request.query), dict(request.headers)
        )
        self.requests.append(record)
        if self.delay:  # a scripted slow vendor (what timeout tests are about), cut short on close
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.delay)
        key = self.presented_key(request)
        response: web.StreamResponse
        if key != self.api_key:
            response = self.refuse(missing=key is None)
        elif self._rate_limited > 0:
            self._rate_limited -= 1
            response = self.too_many()
            if self._retry_after is not None:
                response.headers["Retry-After"] = self._retry_after
        else:
            response = await handler(request)
        record.status = response.status
        return response


class FakeVirusTotal(FakeVendor):
    """VirusTotal API v3: ``GET /api/v3/{ip_addresses|domains|files|urls}/{id}``, ``x-apikey``."""

    name = "virustotal"
    _TYPES: ClassVar[dict[str, str]] = {
        "ip_addresses": "ip_address",
        "domains": "domain",
        "files": "file",
        "urls": "url",
    }

    def __init__(self, *, api_key: str) -> None:
        super().__init__(api_key=api_key)
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/api/v3/{collection}/{id}", self._object)

    @staticmethod
    def url_id(url: str) -> str:
        """VirusTotal's identifier of a URL: unpadded URL-safe base64."""
        return base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")

    def add(
        self,
        collection: str,
        ident: str,
        *,
        malicious: int = 0,
        suspicious: int = 0,
        harmless: int = 0,
        undetected: int = 0,
        **attributes: Any,
    ) -> None:
        """An object with these engine counts; ``attributes`` add to or replace the defaults."""
        stats = {
            "harmless": harmless,
            "malicious": malicious,
            "suspicious": suspicious,
            "undetected": undetected,
            "timeout": 0,
        }
        self.objects[(collection, ident)] = {
            "last_analysis_stats": stats,
            "last_analysis_date": 1_717_200_000,
            "reputation": 0,
            "tags": [],
            "total_votes": {"harmless": 0, "malicious": 0},
            **attributes,
        }

    def add_ip(self, ip: str, **counts_and_attributes: Any) -> None:
        network = str(ipaddress.ip_network(f"{ip}/24", strict=False))
        defaults = {"country": "NL", "as_owner": "Example Hosting B.V.", "network": network}
        self.add("ip_addresses", ip, **(defaults | counts_and_attributes))

    def add_domain(self, domain: str, **counts_and_attributes: Any) -> None:
        defaults = {
            "registrar": "Example Registrar, Inc.",
            "categories": {"Forcepoint ThreatSeeker": "information technology"},
        }
        self.add("domains", domain, **(defaults | counts_and_attributes))

    def add_file(
        self, sha256: str, *, aliases: tuple[str, ...] = (), **counts_and_attributes: Any
    ) -> None:
        """A file, reachable by its SHA-256 and by any MD5/SHA-1 in ``aliases``."""
        defaults = {
            "meaningful_name": "invoice.exe",
            "type_description": "Win32 EXE",
            "sha256": sha256,
        }
        for ident in (sha256, *aliases):
            self.add("files", ident, **(defaults | counts_and_attributes))

    def add_url(self, url: str, **counts_and_attributes: Any) -> None:
        self.add("urls", self.url_id(url), **({"url": url} | counts_and_attributes))

    def presented_key(self, request: web.Request) -> str | None:
        return request.headers.get("x-apikey")

    @staticmethod
    def _error(status: int, code: str, message: str) -> web.Response:
        return web.json_response({"error": {"code": code, "message": message}}, status=status)

    def refuse(self, missing: bool) -> web.Response:
        if missing:
            return self._error(401, "AuthenticationRequiredError", "X-Apikey header is missing")
        return self._error(401, "WrongCredentialsError", "Wrong API key")

    def too_many(self) -> web.Response:
        return self._error(429, "QuotaExceededError", "Quota exceeded")

    async def _object(self, request: web.Request) -> web.Response:
        collection, ident = request.match_info["collection"], request.match_info["id"]
        if collection not in self._TYPES:
            return self._error(404, "NotFoundError", f"Resource not found: {collection}")
        attributes = self.objects.get((collection, ident))
        if attributes is None:
            kind = self._TYPES[collection].replace("_", " ").capitalize()
            return self._error(404, "NotFoundError", f'{kind} "{ident}" not found')
        return web.json_response(
            {
                "data": {
                    "id": ident,
                    "type": self._TYPES[collection],
                    "links": {"self": f"{self.base_url}/api/v3/{collection}/{ident}"},
                    "attributes": attributes,
                }
            }
        )


class FakeAbuseIPDB(FakeVendor):
    """AbuseIPDB API v2: ``GET /api/v2/check?ipAddress=…&maxAgeInDays=…``, header ``Key``.

    Like the real one it answers every valid public or private address (an unreported one with
    score 0 and no reports), and 422 for a missing or invalid parameter.
    """

    name = "abuseipdb"

    def __init__(self, *, api_key: str) -> None:
        super().__init__(api_key=api_key)
        self.reports: dict[str, dict[str, Any]] = {}

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/api/v2/check", self._check)

    def add_ip(
        self, ip: str, *, score: int, reports: int, whitelisted: bool = False, **fields: Any
    ) -> None:
        # The documentation ranges tests use are not global: a reported address is public.
        self.reports[ip] = {
            "isPublic": True,
            "abuseConfidenceScore": score,
            "totalReports": reports,
            "numDistinctUsers": min(reports, 40),
            "isWhitelisted": whitelisted,
            "countryCode": "NL",
            "usageType": "Data Center/Web Hosting/Transit",
            "isp": "Example Hosting B.V.",
            "domain": "example-hosting.nl",
            "isTor": False,
            "lastReportedAt": "2024-06-01T10:11:12+00:00" if reports else None,
            **fields,
        }

    def presented_key(self, request: web.Request) -> str | None:
        return request.headers.get("Key")

    @staticmethod
    def _errors(status: int, detail: str, **extra: Any) -> web.Response:
        return web.json_response(
            {"errors": [{"detail": detail, "status": status, **extra}]}, status=status
        )

    def refuse(self, missing: bool) -> web.Response:
        return self._errors(
            401,
            "Authentication failed. Your API key is either missing, incorrect, or revoked. "
            "Note: The APIv2 key differs from the APIv1 key.",
        )

    def too_many(self) -> web.Response:
        response = self._errors(
            429,
            "Daily rate limit of 1000 requests exceeded for this endpoint. "
            "See headers for additional details.",
        )
        response.headers.update({"X-RateLimit-Limit": "1000", "X-RateLimit-Remaining": "0"})
        return response

    async def _check(self, request: web.Request) -> web.Response:
        text = request.query.get("ipAddress", "")
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            return self._errors(
                422,
                "The ip address must be a valid IPv4 or IPv6 address (e.g. 8.8.8.8 or "
                "2001:4860:4860::8888).",
                source={"parameter": "ipAddress"},
            )
        max_age = request.query.get("maxAgeInDays", "30")
        if not max_age.isdigit() or not 1 <= int(max_age) <= 365:
            return self._errors(
                422,
                "The max age in days must be between 1 and 365.",
                source={"parameter": "maxAgeInDays"},
            )
        data = {
            "ipAddress": str(address),
            "isPublic": address.is_global,
            "ipVersion": address.version,
            "isWhitelisted": False,
            "abuseConfidenceScore": 0,
            "countryCode": None,
            "usageType": None,
            "isp": None,
            "domain": None,
            "hostnames": [],
            "isTor": False,
            "totalReports": 0,
            "numDistinctUsers": 0,
            "lastReportedAt": None,
            **self.reports.get(str(address), {}),
        }
        return web.json_response({"data": data})


class FakeOTX(FakeVendor):
    """AlienVault OTX API v1: ``GET /api/v1/indicators/{section}/{value}/general``,
    ``X-OTX-API-KEY``.

    A value in no pulse gets 200 with ``pulse_info.count`` 0, as from OTX; an unknown section
    gets 404.
    """

    name = "otx"
    _SECTIONS: ClassVar[dict[str, str]] = {
        "IPv4": "IPv4",
        "IPv6": "IPv6",
        "domain": "domain",
        "hostname": "hostname",
        "url": "URL",
        "file": "FileHash-SHA256",
    }

    def __init__(self, *, api_key: str) -> None:
        super().__init__(api_key=api_key)
        self.pulses: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.whitelisted: set[tuple[str, str]] = set()

    def routes(self, app: web.Application) -> None:
        app.router.add_get(r"/api/v1/indicators/{section}/{value:.+}/general", self._general)

    def add_pulses(
        self,
        section: str,
        value: str,
        names: list[str],
        *,
        tags: tuple[str, ...] = (),
        malware: tuple[str, ...] = (),
        attack_ids: tuple[str, ...] = (),
    ) -> None:
        self.pulses[(section, value)] = [
            {
                "id": f"65f0c0ffee{index:014x}",
                "name": name,
                "description": "",
                "created": "2024-05-02T09:00:00.000000",
                "modified": "2024-05-03T09:00:00.000000",
                "tags": list(tags),
                "adversary": "",
                "TLP": "white",
                "malware_families": [
                    {"id": family, "display_name": family, "target": None} for family in malware
                ],
                "attack_ids": [
                    {"id": ident, "name": ident, "display_name": ident} for ident in attack_ids
                ],
                "industries": [],
                "targeted_countries": [],
            }
            for index, name in enumerate(names)
        ]

    def presented_key(self, request: web.Request) -> str | None:
        return request.headers.get("X-OTX-API-KEY")

    def refuse(self, missing: bool) -> web.Response:
        detail = "Authentication credentials were not provided." if missing else "Invalid API key"
        return web.json_response({"detail": detail}, status=403)

    def too_many(self) -> web.Response:
        return web.json_response(
            {"detail": "Request was throttled. Expected available in 60 seconds."}, status=429
        )

    async def _general(self, request: web.Request) -> web.Response:
        section, value = request.match_info["section"], request.match_info["value"]
        if section not in self._SECTIONS:
            return web.json_response({"detail": "Not found."}, status=404)
        pulses = self.pulses.get((section, value), [])
        validation = []
        if (section, value) in self.whitelisted:
            validation.append(
                {"source": "whitelist", "message": f"Whitelisted {section}", "name": "Whitelist"}
            )
        return web.json_response(
            {
                "indicator": value,
                "type": self._SECTIONS[section],
                "type_title": self._SECTIONS[section],
                "base_indicator": {},
                "pulse_info": {
                    "count": len(pulses),
                    "pulses": pulses,
                    "references": [],
                    "related": {"alienvault": {}, "other": {}},
                },
                "false_positive": [],
                "validation": validation,
                "reputation": 0,
                "sections": ["general", "reputation", "url_list", "passive_dns"],
            }
        )
