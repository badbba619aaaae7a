"""The web console as a browser gets it: the page at ``/``, its files under ``/console/``,
each with the console's security headers, revalidated by ETag and sent gzip-compressed; nothing
but the files listed is reachable (``..``, encoded dots and slashes, dotfiles, symlinks)."""

from __future__ import annotations

import asyncio
import gzip
import json
import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from core.settings import Settings
from gateway.app import create_app
from gateway.console.assets import STATIC_ROOT, read_assets
from gateway.console.routes import CSP, accepts_gzip
from gateway.index import Index
from tests.conftest import PROJECT_ROOT, Gateway

ON_THE_SHARED_GATEWAY = pytest.mark.asyncio(loop_scope="module")
"""For the tests of files served and requests refused (nothing written): one gateway serves
every case (:func:`tests.conftest.shared_gateway`); the module's other tests are not async."""

SECURITY = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
    "x-content-type-options": "nosniff",
}
PREACT = (STATIC_ROOT / "vendor" / "preact.mjs").read_bytes()


def test_the_policy_is_the_consoles() -> None:
    assert CSP == (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    )


def test_every_file_served_ships_in_the_wheel() -> None:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["package-data"]["gateway.console"]
    console = STATIC_ROOT.parent
    shipped = [
        path.relative_to(console).as_posix()
        for path in console.rglob("*")
        if path.is_file() and (path.name == "vendor.json" or STATIC_ROOT in path.parents)
    ]
    assert "static/vendor/preact.mjs" in shipped
    assert "vendor.json" in shipped
    # setuptools' "*" stops at a slash, as full_match's does.
    missing = [n for n in shipped if not any(PurePosixPath(n).full_match(p) for p in patterns)]
    assert missing == []
    assert sorted(read_assets(STATIC_ROOT)) == sorted(
        name.removeprefix("static/") for name in shipped if name.startswith("static/")
    )


@pytest.fixture
def backend() -> str:
    return "sqlite"  # what is served does not depend on the database


@pytest.fixture(scope="module")
def module_backend() -> str:
    return "sqlite"  # the shared gateway's too


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def fetch(
    port: int, target: str, *, method: str = "GET", headers: dict[str, str] | None = None
) -> Reply:
    """``method target`` sent as written (no client normalises the path), one reply read."""
    lines = [f"{method} {target} HTTP/1.1", "Host: console.test", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        async with asyncio.timeout(10):
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            found: dict[str, str] = {}
            for line in head[1:]:
                if line:
                    name, _, value = line.partition(":")
                    found[name.strip().lower()] = value.strip()
            status = int(head[0].split()[1])
            body = b""
            if method != "HEAD" and status != 304:
                body = await reader.readexactly(int(found.get("content-length", "0")))
    finally:
        writer.close()
    return Reply(status, found, body)


def assert_console_headers(reply: Reply) -> None:
    for name, value in SECURITY.items():
        assert reply.headers.get(name) == value, name
    assert reply.headers["cache-control"] == "no-cache"
    assert reply.headers["x-request-id"]


def assert_not_found(reply: Reply) -> None:
    assert reply.status == 404
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.json()["error"]["code"] == "AURORA-4040"
    assert "content-security-policy" not in reply.headers


@ON_THE_SHARED_GATEWAY
async def test_a_browser_at_the_root_gets_the_console(shared_gateway: Gateway) -> None:
    port = shared_gateway.client.port
    page = (STATIC_ROOT / "index.html").read_bytes()
    accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    reply = await fetch(port, "/", headers={"Accept": accept})
    assert reply.status == 200
    assert reply.headers["content-type"] == "text/html; charset=utf-8"
    assert reply.body == page
    assert_console_headers(reply)
    assert reply.headers["vary"] == "Accept-Encoding, Accept"
    assert reply.headers["etag"].startswith('"')
    # The same file at /console (a sign-in's redirect target) and under /console/, and
    # revalidated at / by its ETag.
    for path in ("/console", "/console/index.html"):
        same = await fetch(port, path)
        assert (same.body, same.headers["etag"]) == (page, reply.headers["etag"])
        assert_console_headers(same)
    again = await fetch(
        port, "/", headers={"Accept": accept, "If-None-Match": reply.headers["etag"]}
    )
    assert (again.status, again.body) == (304, b"")
    assert_console_headers(again)


@pytest.mark.parametrize("accept", [None, "application/json", "*/*"])
@ON_THE_SHARED_GATEWAY
async def test_an_api_client_at_the_root_gets_the_json_index(
    shared_gateway: Gateway, accept: str | None
) -> None:
    headers = {"Accept": accept} if accept else {}
    reply = await fetch(shared_gateway.client.port, "/", headers=headers)
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.headers["vary"] == "Accept"
    assert "content-security-policy" not in reply.headers
    body = reply.json()
    assert Index.model_validate(body).model_dump(mode="json") == body
    # Neither the console's files nor its routes are the API's.
    assert not [r for r in body["routes"] if r["path"].startswith("/console")]
    document = await (await shared_gateway.client.get("/api/v1/openapi.json")).json()
    assert not [path for path in document["paths"] if path.startswith("/console")]


@ON_THE_SHARED_GATEWAY
async def test_a_vendored_file_with_its_type_etag_and_gzip(shared_gateway: Gateway) -> None:
    port = shared_gateway.client.port
    plain = await fetch(port, "/console/vendor/preact.mjs", headers={"Accept-Encoding": "br"})
    assert plain.status == 200
    assert plain.headers["content-type"] == "text/javascript; charset=utf-8"
    assert "content-encoding" not in plain.headers
    assert plain.body == PREACT
    assert plain.headers["vary"] == "Accept-Encoding"
    assert_console_headers(plain)
    etag = plain.headers["etag"]
    assert len(etag) == 34  # a quoted 128-bit prefix of the sha256

    packed = await fetch(
        port, "/console/vendor/preact.mjs", headers={"Accept-Encoding": "gzip, deflate, br"}
    )
    assert packed.headers["content-encoding"] == "gzip"
    assert len(packed.body) < len(PREACT)
    assert gzip.decompress(packed.body) == PREACT
    assert packed.headers["etag"] not in (etag, "")  # another representation, another tag
    assert_console_headers(packed)

    refused = await fetch(
        port, "/console/vendor/preact.mjs", headers={"Accept-Encoding": "gzip;q=0, br"}
    )
    assert (refused.body, "content-encoding" in refused.headers) == (PREACT, False)

    for tag, encoding in ((etag, "identity"), (packed.headers["etag"], "gzip")):
        cached = await fetch(
            port,
            "/console/vendor/preact.mjs",
            headers={"If-None-Match": f'"other", {tag}', "Accept-Encoding": encoding},
        )
        assert (cached.status, cached.body) == (304, b"")
        assert_console_headers(cached)
    stale = await fetch(port, "/console/vendor/preact.mjs", headers={"If-None-Match": '"old"'})
    assert (stale.status, stale.body) == (200, PREACT)


@pytest.mark.parametrize(
    ("path", "media"),
    [
        ("vendor/htm.mjs", "text/javascript; charset=utf-8"),
        ("vendor/LICENSE.preact", "text/plain; charset=utf-8"),
        ("console.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ],
)
@ON_THE_SHARED_GATEWAY
async def test_each_kind_of_file_has_its_type(
    shared_gateway: Gateway, path: str, media: str
) -> None:
    reply = await fetch(shared_gateway.client.port, f"/console/{path}")
    assert reply.status == 200
    assert reply.headers["content-type"] == media
    assert reply.body == (STATIC_ROOT / path).read_bytes()


@ON_THE_SHARED_GATEWAY
async def test_head_gives_the_headers_and_other_methods_are_405(shared_gateway: Gateway) -> None:
    port = shared_gateway.client.port
    head = await fetch(port, "/console/vendor/preact.mjs", method="HEAD")
    assert head.status == 200
    assert head.headers["content-length"] == str(len(PREACT))
    assert head.headers["content-type"] == "text/javascript; charset=utf-8"
    assert_console_headers(head)
    for method in ("POST", "PUT", "DELETE"):
        refused = await fetch(
            port, "/console/vendor/preact.mjs", method=method, headers={"Content-Length": "0"}
        )
        assert refused.status == 405
        assert refused.json()["error"]["code"] == "AURORA-4050"
        assert refused.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize(
    "target",
    [
        "/console/../pyproject.toml",
        "/console/../../../../etc/passwd",
        "/console/%2e%2e/pyproject.toml",
        "/console/%2E%2E/%2E%2E/pyproject.toml",
        "/console/..%2fpyproject.toml",
        "/console/vendor%2Fpreact.mjs",
        "/console/vendor%2fpreact.mjs",
        "/console/vendor/%2e%2e/index.html",
        "/console/./index.html",
        "/console//index.html",
        "/console/%69ndex.html",
        "/console/vendor/",
        "/console/vendor",
        "/console/nothing.js",
        "/console/vendor/preact.mjs.map",
        "/console/%00",
        "/console/",
    ],
)
@ON_THE_SHARED_GATEWAY
async def test_only_the_listed_files_are_reachable(shared_gateway: Gateway, target: str) -> None:
    reply = await fetch(shared_gateway.client.port, target)
    if target == "/console/%00":
        # A NUL in a path parameter is refused before any handler (as on every route).
        assert reply.json()["error"]["code"] == "AURORA-4220"
        return
    assert_not_found(reply)


@pytest.fixture
async def console_root(tmp_path: Path) -> Path:
    """A console folder of a test's own, with what must not be served beside what must."""
    root = tmp_path / "console"
    (root / "screens").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>test console</title>\n")
    (root / "app.js").write_text("export const app = 1;\n")
    (root / "screens" / "one.js").write_text("export const one = 1;\n")
    (root / ".env.js").write_text("secret\n")
    (root / "notes.md").write_text("not a served type\n")
    (root / "app.js~").write_text("an editor's backup\n")
    (root / ".git").mkdir()
    (root / ".git" / "config.json").write_text("{}\n")
    (tmp_path / "outside.js").write_text("outside the root\n")
    (root / "link.js").symlink_to(tmp_path / "outside.js")
    (root / "linked").symlink_to(tmp_path, target_is_directory=True)
    return root


@pytest.fixture
async def custom(settings: Settings, console_root: Path) -> AsyncIterator[int]:
    client: TestClient[Any, Any] = TestClient(
        TestServer(create_app(settings, console_root=console_root))
    )
    await client.start_server()
    try:
        yield client.port
    finally:
        await client.close()


def test_the_manifest_lists_only_plain_files_of_known_types(console_root: Path) -> None:
    assert sorted(read_assets(console_root)) == ["app.js", "index.html", "screens/one.js"]
    assert read_assets(console_root / "absent") == {}


async def test_the_console_is_served_from_the_root_the_app_is_given(custom: int) -> None:
    page = await fetch(custom, "/", headers={"Accept": "text/html"})
    assert page.body == b"<!doctype html><title>test console</title>\n"
    assert_console_headers(page)
    nested = await fetch(custom, "/console/screens/one.js")
    assert nested.body == b"export const one = 1;\n"
    for hidden in (
        ".env.js",
        "notes.md",
        "app.js~",
        ".git/config.json",
        "link.js",
        "linked/outside.js",
    ):
        assert_not_found(await fetch(custom, f"/console/{hidden}"))


async def test_a_gateway_without_the_page_answers_the_json_index(
    settings: Settings, tmp_path: Path
) -> None:
    client: TestClient[Any, Any] = TestClient(
        TestServer(create_app(settings, console_root=tmp_path / "absent"))
    )
    await client.start_server()
    try:
        reply = await fetch(client.port, "/", headers={"Accept": "text/html"})
        missing = await fetch(client.port, "/console")
    finally:
        await client.close()
    assert reply.status == 200
    assert reply.json()["service"] == "AuroraSOC"
    assert_not_found(missing)


@pytest.mark.parametrize(
    ("header", "admitted"),
    [
        ("gzip", True),
        ("gzip, deflate, br, zstd", True),
        ("br;q=1.0, gzip;q=0.8", True),
        ("GZIP", True),
        ("*", True),
        ("gzip;q=0", False),
        ("gzip;q=0.0, *", False),
        ("*;q=0", False),
        ("br", False),
        ("identity", False),
        ("", False),
        ("gzip;q=nonsense", False),
    ],
)
def test_accept_encoding(header: str, admitted: bool) -> None:
    assert accepts_gzip(header) is admitted
