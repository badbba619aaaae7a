"""``/console/{path}``: the web console's files; its page at ``/console`` and, for a browser,
at ``/`` (gateway.index).

Outside the API contract and its OpenAPI document (``published=False``) but in the route table,
so the platform's middleware applies: request ids, the standard headers, AURORA-4040 for a file
that is not there and AURORA-4050 for a method other than GET or HEAD.

Each file is revalidated on every use (``Cache-Control: no-cache`` with a strong ETag: a
``304`` costs a round trip, not a body), sent gzip-compressed to a client that accepts it, and
with a policy that lets the page run only the console's own scripts and styles.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from core.errors import NotFound
from gateway.console.assets import Asset
from gateway.keys import CONSOLE
from gateway.routing import Access, Route

PREFIX: Final[str] = "/console/"

CSP: Final[str] = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
"""Only the console's own files; ``connect-src 'self'`` covers the API and its same-origin
WebSockets."""
SECURITY_HEADERS: Final[dict[str, str]] = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
"""What every console response carries (``X-Content-Type-Options: nosniff`` comes with the
standard headers)."""


def accepts_gzip(header: str) -> bool:
    """Whether an ``Accept-Encoding`` value admits gzip (``gzip`` or ``*`` with a non-zero
    q; an explicit ``gzip;q=0`` refuses it)."""
    admitted: dict[str, bool] = {}
    for item in header.split(","):
        coding, *params = (part.strip() for part in item.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        admitted.setdefault(coding.lower(), quality > 0)
    return admitted.get("gzip", admitted.get("x-gzip", admitted.get("*", False)))


def _matches(header: str, asset: Asset) -> bool:
    """``If-None-Match`` against either of the file's ETags (weak comparison, as RFC 9110
    says for this header)."""
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in tags or bool(tags & {asset.etag, asset.gzip_etag})


def asset_response(request: web.Request, asset: Asset) -> web.Response:
    """``asset`` for ``request``: ``304`` when the client holds it, gzip when it takes it."""
    packed = asset.gzipped if accepts_gzip(request.headers.get("Accept-Encoding", "")) else None
    headers = {
        **SECURITY_HEADERS,
        "Cache-Control": "no-cache",
        "ETag": asset.etag if packed is None else asset.gzip_etag,
        "Vary": "Accept-Encoding",
    }
    if _matches(request.headers.get("If-None-Match", ""), asset):
        return web.Response(status=304, headers=headers)
    headers["Content-Type"] = asset.media_type
    if packed is None:
        return web.Response(body=asset.body, headers=headers)
    headers["Content-Encoding"] = "gzip"
    return web.Response(body=packed, headers=headers)


def console_page(request: web.Request) -> web.Response | None:
    """The console's page for ``request``, or ``None`` where the console has none."""
    page = request.app[CONSOLE].page
    return None if page is None else asset_response(request, page)


async def get_console_file(request: web.Request) -> web.StreamResponse:
    """One of the console's files."""
    # The raw path, never the decoded one: names served need no encoding, so ``%2e%2e`` or an
    # encoded slash names nothing.
    name = request.rel_url.raw_path.removeprefix(PREFIX)
    asset = request.app[CONSOLE].find(name)
    if asset is None:
        raise NotFound({"reason": "no such file"})
    return asset_response(request, asset)


async def show_console(request: web.Request) -> web.StreamResponse:
    """The console's page at ``/console`` (a sign-in's redirect target, as at ``/``)."""
    page = console_page(request)
    if page is None:
        raise NotFound({"reason": "no such file"})
    return page


CONSOLE_ROUTES = (
    Route(
        "GET",
        PREFIX.rstrip("/"),
        show_console,
        Access.PUBLIC,
        published=False,
        summary="The web console",
    ),
    *(
        Route(
            method,
            PREFIX + "{path:.+}",
            get_console_file,
            Access.PUBLIC,
            published=False,
            summary="The web console's files",
        )
        for method in ("GET", "HEAD")
    ),
)
"""Outside the contract's table and its document: registered beside it, like the index."""
