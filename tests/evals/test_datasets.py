"""``aurora eval fetch`` and ``verify``: datasets copied from a mirror on a loopback HTTP server,
each file checked against the manifest's SHA-256 before it is put in place."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from evals import datasets
from evals.datasets import Dataset, FetchRefused, fetch, manifest, verify
from gateway.cli import main as aurora
from tests.conftest import shared_data_dir

SENTENCES = b'[{"text": "They used PowerShell.", "label": "T1059.001"}]\n'
EVENTS = b'{"EventID": 4688, "Channel": "Security"}\n'
SPACED = "logs/T1059-Command, Scripting/ID4688-a b.jsonl"


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
async def mirror(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[str, dict[str, bytes]]]:
    served = {"cti/sentences.json": SENTENCES, SPACED: EVENTS}
    root = tmp_path / "mirror"
    for relative, data in served.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    app = web.Application()
    app.router.add_static("/data/", root)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    listed = [
        Dataset(
            "small",
            "two files",
            "test",
            "CC0-1.0",
            ("x",),
            {k: digest(v) for k, v in served.items()},
        )
    ]
    monkeypatch.setattr(datasets, "manifest", lambda: listed)
    try:
        yield f"http://127.0.0.1:{port}/data", served
    finally:
        await runner.cleanup()


async def test_fetch_checks_every_file_and_skips_intact_ones(
    mirror: tuple[str, dict[str, bytes]], tmp_path: Path
) -> None:
    url, _ = mirror
    dest = tmp_path / "data"
    assert await asyncio.to_thread(fetch, url, dest) == {"small": 2}
    assert (dest / SPACED).read_bytes() == EVENTS  # a name with spaces and a comma, quoted
    assert verify(dest, datasets.manifest()) == {"small": []}
    assert await asyncio.to_thread(fetch, url, dest) == {"small": 0}
    (dest / "cti/sentences.json").write_bytes(b"tampered")
    assert verify(dest, datasets.manifest()) == {
        "small": ["cti/sentences.json: differs from its SHA-256"]
    }
    assert await asyncio.to_thread(fetch, url, dest) == {"small": 1}


async def test_a_file_that_differs_is_refused_and_nothing_is_written(
    mirror: tuple[str, dict[str, bytes]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = mirror
    wrong = [Dataset("small", "", "", "", (), {"cti/sentences.json": "0" * 64})]
    monkeypatch.setattr(datasets, "manifest", lambda: wrong)
    dest = tmp_path / "data"
    with pytest.raises(FetchRefused, match="SHA-256"):
        await asyncio.to_thread(fetch, url, dest)
    assert not (dest / "cti/sentences.json").exists()
    assert list((dest / "cti").iterdir()) == []  # no partial download left behind


async def test_oversized_escaping_and_unknown_are_refused(
    mirror: tuple[str, dict[str, bytes]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = mirror
    monkeypatch.setattr(datasets, "MAX_FILE_BYTES", 10)
    with pytest.raises(FetchRefused, match="larger than"):
        await asyncio.to_thread(fetch, url, tmp_path / "a")
    with pytest.raises(FetchRefused, match="only http"):
        await asyncio.to_thread(fetch, "ftp://127.0.0.1/data", tmp_path / "d")
    escaping = [Dataset("small", "", "", "", (), {"../outside.json": digest(SENTENCES)})]
    monkeypatch.setattr(datasets, "manifest", lambda: escaping)
    with pytest.raises(FetchRefused, match="leaves the data folder"):
        await asyncio.to_thread(fetch, url, tmp_path / "b")
    with pytest.raises(FetchRefused, match="unknown dataset"):
        await asyncio.to_thread(fetch, url, tmp_path / "c", ["nope"])


async def test_the_command_fetches_and_verifies(
    mirror: tuple[str, dict[str, bytes]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = mirror
    dest = tmp_path / "data"
    code = await asyncio.to_thread(
        aurora, ["eval", "fetch", "--base-url", url, "--dest", str(dest)]
    )
    assert code == 0
    assert "small: 2 file(s) fetched" in capsys.readouterr().out
    assert await asyncio.to_thread(aurora, ["eval", "verify", "--data", str(dest)]) == 0
    assert await asyncio.to_thread(aurora, ["eval", "verify", "--data", str(tmp_path)]) == 1
    assert "2 of 2 files wrong" in capsys.readouterr().out


def test_the_manifest_covers_every_suite_dataset() -> None:
    listed = manifest()
    assert {d.name for d in listed} == {
        "tram",
        "ioc-finder",
        "sigma-regression",
        "evtx-attack",
        "prompt-injection",
    }
    assert all(d.files and d.upstream and d.licence for d in listed)


@pytest.mark.skipif(shared_data_dir() is None, reason="the shared data folder is not here")
def test_the_manifest_matches_the_shared_data() -> None:
    root = shared_data_dir()
    assert root is not None
    assert verify(root) == {d.name: [] for d in manifest()}
