"""``aurora console vendor``: the committed files match the lock; the download path runs against
a registry of the test's own on loopback, serving tarballs made here, so that integrity,
unsafe members, the lock's sha256 and the import rewrite are tested without the internet."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import re
import shutil
import tarfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from gateway.cli import main
from gateway.console import vendor
from gateway.console.assets import STATIC_ROOT
from tests.ports import free_port

HOOKS_SOURCE = (
    'import{options as n}from"preact";export function useState(t){return[t,n]}\n'
    "//# sourceMappingURL=hooks.mjs.map\n"
)
HOOKS = 'import{options as n}from"./preact.mjs";export function useState(t){return[t,n]}\n'
CORE_SOURCE = "var n={};export{n as options};\n//# sourceMappingURL=preact.mjs.map"
CORE = "var n={};export{n as options};\n"
LICENCE = "The MIT License (MIT)\n"


def sri(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def sha256(data: str | bytes) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def tarball(members: dict[str, str]) -> bytes:
    """A ``.tgz`` holding ``members`` (name: text), names written as given."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


GOOD = {
    "package/package.json": '{"name": "preact", "version": "1.0.0"}',
    "package/dist/preact.mjs": CORE_SOURCE,
    "package/dist/preact.mjs.map": "{}",
    "package/hooks/dist/hooks.mjs": HOOKS_SOURCE,
    "package/LICENSE": LICENCE,
}


def lock_for(data: bytes, **sha: str) -> dict[str, Any]:
    """A lock naming a tarball with ``data``'s integrity; ``sha`` overrides a file's sha256."""
    expected = {"core": sha256(CORE), "hooks": sha256(HOOKS), "licence": sha256(LICENCE)}
    expected |= sha
    return {
        "packages": [
            {
                "name": "preact",
                "version": "1.0.0",
                "tarball": "https://registry.npmjs.org/preact/-/preact-1.0.0.tgz",
                "integrity": sri(data),
                "files": [
                    {
                        "source": "package/dist/preact.mjs",
                        "dest": "static/vendor/preact.mjs",
                        "sha256": expected["core"],
                    },
                    {
                        "source": "package/hooks/dist/hooks.mjs",
                        "dest": "static/vendor/preact-hooks.mjs",
                        "sha256": expected["hooks"],
                        "imports": {"preact": "./preact.mjs"},
                    },
                    {
                        "source": "package/LICENSE",
                        "dest": "static/vendor/LICENSE.preact",
                        "sha256": expected["licence"],
                    },
                ],
            }
        ]
    }


@dataclass
class Registry:
    """A registry on loopback serving ``tarballs`` by path, and what it was asked."""

    url: str
    tarballs: dict[str, bytes] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)


@pytest.fixture
async def registry() -> AsyncIterator[Registry]:
    port = free_port()
    found = Registry(f"http://127.0.0.1:{port}/mirror")

    async def serve(request: web.Request) -> web.Response:
        found.asked.append(request.path)
        data = found.tarballs.get(request.path.removeprefix("/mirror"))
        if data is None:
            return web.Response(status=404, text="not found")
        return web.Response(body=data, content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/{path:.*}", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield found
    finally:
        await runner.cleanup()


async def aurora_vendor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``aurora console vendor ARGS`` in a thread (it runs its own event loop while the test's
    serves the registry): its exit status, stdout and stderr."""
    status = await asyncio.to_thread(main, ["console", "vendor", *args])
    out, err = capsys.readouterr()
    return status, out, err


def names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def write_lock(path: Path, lock: dict[str, Any]) -> Path:
    path.write_text(json.dumps(lock))
    return path


def test_the_committed_files_match_the_lock() -> None:
    assert vendor.check() == []
    lock = vendor.load_lock(vendor.LOCK)
    assert [(p.name, p.version) for p in lock.packages] == [
        ("preact", "11.2.0"),
        ("htm", "3.1.1"),
    ]
    written = {
        vendor.destination(vendor.LOCK, locked).relative_to(STATIC_ROOT).as_posix()
        for package in lock.packages
        for locked in package.files
    }
    assert written == {
        "vendor/preact.mjs",
        "vendor/preact-hooks.mjs",
        "vendor/htm.mjs",
        "vendor/LICENSE.preact",
        "vendor/LICENSE.htm",
    }
    assert sorted(p.name for p in (STATIC_ROOT / "vendor").iterdir()) == sorted(
        name.removeprefix("vendor/") for name in written
    )
    hooks = (STATIC_ROOT / "vendor" / "preact-hooks.mjs").read_text()
    assert re.findall(r'from\s*"([^"]+)"', hooks) == ["./preact.mjs"]
    for script in ("preact.mjs", "preact-hooks.mjs", "htm.mjs"):
        assert "sourceMappingURL" not in (STATIC_ROOT / "vendor" / script).read_text()


async def test_check_names_the_file_that_differs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(vendor.LOCK, tmp_path / "vendor.json")
    shutil.copytree(STATIC_ROOT / "vendor", tmp_path / "static" / "vendor")
    status, out, _ = await aurora_vendor(capsys, "--check", "--lock", str(tmp_path / "vendor.json"))
    assert status == 0
    assert "every vendored file matches" in out

    changed = tmp_path / "static" / "vendor" / "htm.mjs"
    changed.write_bytes(changed.read_bytes() + b"alert(1)\n")
    (tmp_path / "static" / "vendor" / "LICENSE.preact").unlink()
    status, _, err = await aurora_vendor(capsys, "--check", "--lock", str(tmp_path / "vendor.json"))
    assert status == 1
    assert f"{changed}: sha256 {sha256(changed.read_bytes())}" in err
    assert "LICENSE.preact: missing (preact 11.2.0)" in err
    assert "preact.mjs:" not in err
    assert "Traceback" not in err


async def test_vendoring_downloads_verifies_and_rewrites(
    tmp_path: Path,
    registry: Registry,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = tarball(GOOD)
    registry.tarballs["/preact/-/preact-1.0.0.tgz"] = data
    lock = write_lock(tmp_path / "vendor.json", lock_for(data))
    status, out, err = await aurora_vendor(capsys, "--registry", registry.url, "--lock", str(lock))
    assert (status, err) == (0, "")
    assert "3 file(s) written" in out
    assert registry.asked == ["/mirror/preact/-/preact-1.0.0.tgz"]
    folder = tmp_path / "static" / "vendor"
    assert (folder / "preact.mjs").read_text() == CORE
    assert (folder / "preact-hooks.mjs").read_text() == HOOKS
    assert (folder / "LICENSE.preact").read_text() == LICENCE
    assert names(folder) == [
        "LICENSE.preact",
        "preact-hooks.mjs",
        "preact.mjs",
    ]
    assert vendor.check(lock) == []


async def test_relock_records_the_files_made(
    tmp_path: Path,
    registry: Registry,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = tarball(GOOD)
    registry.tarballs["/preact/-/preact-1.0.0.tgz"] = data
    lock = write_lock(tmp_path / "vendor.json", lock_for(data, core="0" * 64, hooks="1" * 64))
    status, _, err = await aurora_vendor(capsys, "--registry", registry.url, "--lock", str(lock))
    assert status == 1
    assert "do not match the lock" in err
    assert not (tmp_path / "static").exists()

    status, _, err = await aurora_vendor(
        capsys, "--registry", registry.url, "--lock", str(lock), "--relock"
    )
    assert (status, err) == (0, "")
    recorded = json.loads(lock.read_text())["packages"][0]["files"]
    assert [f["sha256"] for f in recorded] == [sha256(CORE), sha256(HOOKS), sha256(LICENCE)]
    assert vendor.check(lock) == []


@pytest.mark.parametrize(
    ("served", "said"),
    [
        ("tampered", "integrity mismatch"),
        ("absent", "HTTP 404"),
        ("parent", "refused, a member's path is 'package/../../evil.mjs'"),
        ("absolute", "refused, a member's path is '/tmp/evil.mjs'"),
        ("missing", "no package/LICENSE in the tarball"),
        ("bare import", "imports 'other', which the lock does not map"),
        ("no import", "does not import preact, which the lock maps"),
        ("not gzip", "not a gzip tarball"),
    ],
)
async def test_a_bad_download_writes_nothing(
    tmp_path: Path,
    registry: Registry,
    capsys: pytest.CaptureFixture[str],
    served: str,
    said: str,
) -> None:
    good = tarball(GOOD)
    data = {
        "tampered": tarball({**GOOD, "package/dist/preact.mjs": "alert(document.cookie)\n"}),
        "absent": b"",
        "parent": tarball({**GOOD, "package/../../evil.mjs": "evil"}),
        "absolute": tarball({**GOOD, "/tmp/evil.mjs": "evil"}),
        "missing": tarball({k: v for k, v in GOOD.items() if k != "package/LICENSE"}),
        "bare import": tarball({**GOOD, "package/dist/preact.mjs": 'import"other";\n'}),
        "no import": tarball({**GOOD, "package/hooks/dist/hooks.mjs": CORE_SOURCE}),
        "not gzip": b"PK\x03\x04 a zip, not a tarball",
    }[served]
    if served != "absent":
        registry.tarballs["/preact/-/preact-1.0.0.tgz"] = data
    # The lock's integrity is the tampered tarball's own except where tampering is the point.
    lock = write_lock(
        tmp_path / "vendor.json", lock_for(good if served in ("tampered", "absent") else data)
    )
    before = lock.read_bytes()
    status, out, err = await aurora_vendor(capsys, "--registry", registry.url, "--lock", str(lock))
    assert status == 1
    assert said in err, err
    assert "nothing written" in err or served not in ("tampered", "absent")
    assert "Traceback" not in err
    assert out == ""
    assert not (tmp_path / "static").exists()
    assert names(tmp_path) == ["vendor.json"]
    assert lock.read_bytes() == before


async def test_network_failures_are_one_line_each(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    registry: Registry,
) -> None:
    data = tarball(GOOD)
    lock = write_lock(tmp_path / "vendor.json", lock_for(data))
    closed = f"http://127.0.0.1:{free_port()}"
    status, _, err = await aurora_vendor(capsys, "--registry", closed, "--lock", str(lock))
    assert status == 1
    assert err.startswith("aurora console vendor: ")
    assert "cannot connect" in err
    assert err.count("\n") == 1

    status, _, err = await aurora_vendor(
        capsys, "--registry", "ftp://mirror.example", "--lock", str(lock)
    )
    assert (status, err) == (
        1,
        "aurora console vendor: the registry must be an http(s) URL, not 'ftp://mirror.example'\n",
    )

    registry.tarballs["/preact/-/preact-1.0.0.tgz"] = data
    monkeypatch.setattr(vendor, "MAX_TARBALL_BYTES", len(data) - 1)
    status, _, err = await aurora_vendor(capsys, "--registry", registry.url, "--lock", str(lock))
    assert status == 1
    assert f"over {len(data) - 1} bytes; nothing written" in err
    assert not (tmp_path / "static").exists()


async def test_a_lock_that_is_not_valid_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = write_lock(tmp_path / "vendor.json", {"packages": [{"name": "preact"}]})
    status, _, err = await aurora_vendor(capsys, "--check", "--lock", str(lock))
    assert status == 1
    assert f"the lock {lock} is not valid: packages.0.version: Field required" in err
    escape = lock_for(b"")
    escape["packages"][0]["files"][0]["dest"] = "../outside.mjs"
    write_lock(lock, escape)
    status, _, err = await aurora_vendor(capsys, "--check", "--lock", str(lock))
    assert status == 1
    assert "a destination outside its folder: '../outside.mjs'" in err
    status, _, err = await aurora_vendor(capsys, "--check", "--lock", str(tmp_path / "absent.json"))
    assert status == 1
    assert "cannot read the lock" in err
