"""What the HTTP connectors share: one aiohttp session, a token renewed once on 401, and the
rule that no request the product may have carried out is sent twice.

:meth:`HttpConnector._send` retries at most once, and only a request the product refused
before acting on it:

- 401: the token is renewed and the request sent again (once);
- 429 with a ``Retry-After`` no longer than ``max_retry_after_seconds``, and 503: sent again
  after the wait (a 429 without one, or a longer one, is :class:`EdrRateLimited`);
- a connection that could not be opened (nothing was sent).

A read (``GET``) is also sent again after a timeout, a dropped connection or another 5xx; a
state-changing request never is: its outcome is unknown, and the error says so.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from abc import abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

import aiohttp
from yarl import URL

from tools.edr.base import (
    ConnectorEndpoint,
    EdrAuthError,
    EdrConnector,
    EdrEndpointUnknown,
    EdrRateLimited,
    EdrUnavailable,
    EndpointState,
)
from tools.intel.connectors import _retry_after_seconds

Sleep = Callable[[float], Awaitable[None]]

_MAX_BODY_BYTES = 8 * 1024 * 1024
_MAX_REASON = 300


@dataclass(frozen=True)
class Answer:
    """A product's answer: its status, JSON body (``{}`` when it had none) and headers."""

    status: int
    body: dict[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)


def tls_context(*, verify: bool = True, ca_file: str | None = None) -> ssl.SSLContext | bool:
    """What aiohttp's ``ssl`` takes for a product: the system's trust (default), a private CA
    file, or no verification at all (a lab's self-signed Wazuh manager)."""
    if not verify:
        return False
    if ca_file:
        return ssl.create_default_context(cafile=ca_file)
    return True


def parse_time(value: object) -> datetime | None:
    """A product's timestamp: ISO 8601 with ``Z`` or an offset (UTC when it has neither), up to
    nine fraction digits (Python reads six); None for none, an unreadable one, or a year-9999
    "never" (Wazuh's manager)."""
    if not isinstance(value, str) or not value or value.startswith("9999"):
        return None
    text = value
    head, dot, tail = text.partition(".")
    if dot:
        digits = len(tail) - len(tail.lstrip("0123456789"))
        text = f"{head}.{tail[: min(digits, 6)]}{tail[digits:]}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def as_dict(value: object) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one (a product's body is untrusted)."""
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> list[Any]:
    """``value`` when it is a JSON array, else an empty one."""
    return value if isinstance(value, list) else []


def clip(text: str) -> str:
    """A product's message, short enough for an error detail."""
    text = " ".join(text.split())
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"


class HttpConnector(EdrConnector):
    """A connector over one product's HTTP API, with a bearer token (see the module docstring).

    Uses ``session`` when given (the caller closes it), else opens one on first use and closes
    it in :meth:`aclose`.
    """

    renews_credential: ClassVar[bool] = True
    """Whether a 401 is worth a new credential (a token is; a fixed API key is not)."""

    def __init__(
        self,
        name: str,
        *,
        base_url: str,
        session: aiohttp.ClientSession | None = None,
        tls: ssl.SSLContext | bool = True,
        timeout_seconds: float = 15.0,
        max_retry_after_seconds: float = 30.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        super().__init__(name)
        self.base_url = base_url.rstrip("/")
        self._session = session
        self._owns_session = session is None
        self._tls = tls
        self._closed = False
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self.max_retry_after_seconds = max_retry_after_seconds
        self._sleep = sleep
        self._token: str | None = None
        self._token_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, base_url={self.base_url!r})"

    async def aclose(self) -> None:
        """Close the session this connector opened (never one it was given)."""
        self._closed = True
        self._token = None
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    # -- what each product says --------------------------------------------------------------

    @abstractmethod
    async def _authenticate(self) -> str:
        """A fresh bearer token (raises :class:`EdrAuthError` when the credential is refused)."""

    @abstractmethod
    def _reason(self, answer: Answer) -> str:
        """Why the product refused a request, in its own words (never a credential)."""

    def _endpoint_of(
        self,
        native_id: str,
        name: str,
        *,
        ips: list[str],
        os: object,
        state: EndpointState,
        last_seen: datetime | None,
        details: dict[str, Any],
    ) -> ConnectorEndpoint:
        """An inventory entry: ``name`` lower-cased, its first label the host name and the whole
        the FQDN when it has dots."""
        lowered = name.strip().lower().rstrip(".")
        return ConnectorEndpoint(
            connector=self.name,
            native_id=native_id,
            hostname=lowered.split(".")[0] or lowered,
            fqdn=lowered if "." in lowered else None,
            ips=ips,
            os=os if isinstance(os, str) and os else None,
            state=state,
            last_seen=last_seen,
            details=details,
        )

    def _token_valid(self) -> bool:
        """Whether the token in hand may still be used (a product with an expiry overrides)."""
        return self._token is not None

    def _headers(self, token: str) -> dict[str, str]:
        """The headers of an API request carrying ``token``."""
        return {"Authorization": f"Bearer {token}"}

    # -- plumbing ----------------------------------------------------------------------------

    def _client(self) -> aiohttp.ClientSession:
        if self._closed:
            raise EdrUnavailable(self.name, "connector closed")
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def _bearer(self, stale: str | None = None) -> str:
        async with self._token_lock:
            # Another task may have renewed the token while this one waited for the lock.
            if self._token is not None and self._token != stale and self._token_valid():
                return self._token
            self._token = await self._authenticate()
            return self._token

    async def _exchange(
        self,
        method: str,
        url: str | URL,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """One request, one answer; connection failures raise aiohttp's own errors."""
        sent = {"Accept": "application/json", **(headers or {})}
        async with self._client().request(
            method,
            url,
            params=params,
            json=json_body,
            data=form,
            headers=sent,
            ssl=self._tls,
            timeout=self.timeout,
            allow_redirects=False,
        ) as response:
            body = await self._json(response)
            return Answer(response.status, body, dict(response.headers))

    async def _json(self, response: aiohttp.ClientResponse) -> dict[str, Any]:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(65_536):
            size += len(chunk)
            if size > _MAX_BODY_BYTES:
                raise EdrUnavailable(self.name, "response too large")
            chunks.append(chunk)
        raw = b"".join(chunks)
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except ValueError as err:
            if response.status < 300:
                raise EdrUnavailable(self.name, "invalid JSON response") from err
            return {"text": raw[:_MAX_REASON].decode("utf-8", "replace")}
        if isinstance(body, dict):
            return body
        if response.status < 300:
            raise EdrUnavailable(self.name, "unexpected response shape")
        return {}

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        endpoint: str | None = None,
    ) -> Answer:
        """``method path`` (a path under ``base_url``, or a URL) with the credential; the 2xx
        answer. A 404 is :class:`EdrEndpointUnknown` when ``endpoint`` names what was asked
        for. Retries as the module docstring says."""
        url = URL(path if "://" in path else self.base_url + path, encoded=True)
        reading = method == "GET"
        token = await self._bearer()
        renewed = retried = False
        while True:
            try:
                answer = await self._exchange(
                    method,
                    url,
                    params=params,
                    json_body=json_body,
                    headers=self._headers(token),
                )
            except aiohttp.ClientConnectorError as err:
                # The connection was never opened: nothing reached the product.
                if not retried:
                    retried = True
                    continue
                raise EdrUnavailable(self.name, f"cannot connect ({type(err).__name__})") from err
            except (TimeoutError, aiohttp.ClientError) as err:
                what = "timeout" if isinstance(err, TimeoutError) else type(err).__name__
                if reading and not retried:
                    retried = True
                    continue
                if not reading:
                    what += ": the product may have carried the request out"
                raise EdrUnavailable(self.name, what) from err
            status = answer.status
            if 200 <= status < 300:
                return answer
            if status == 401 and not renewed and self.renews_credential:
                renewed = True
                token = await self._bearer(stale=token)
                continue
            if status in (401, 403):
                raise EdrAuthError(self.name, status)
            if status == 404 and endpoint is not None:
                raise EdrEndpointUnknown(self.name, endpoint)
            if status in (429, 503):
                wait = _retry_after_seconds(answer.headers.get("Retry-After"))
                if status == 503 and wait is None:
                    wait = 1.0
                if not retried and wait is not None and wait <= self.max_retry_after_seconds:
                    retried = True
                    await self._sleep(wait)
                    continue
                if status == 429:
                    raise EdrRateLimited(self.name, round(wait or 60))
            elif status >= 500 and reading and not retried:
                retried = True
                continue
            raise EdrUnavailable(self.name, f"HTTP {status}: {self._reason(answer)}")
