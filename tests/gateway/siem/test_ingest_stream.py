"""Ingest reads a body as it arrives: lines parsed in bounded pieces (numbered as in the whole
body), documents spooled to a file, nothing stored for a body refused on the way."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from core.security.permissions import Role
from core.settings import Settings
from gateway.keys import INGEST, LOGSTORE, ROUTE_TABLE, SETTINGS
from gateway.siem import parsing
from gateway.siem.parsing import BodyInfo
from tests.conftest import Gateway, start_gateway
from tests.gateway.siem.test_siem import EVENTS
from tools.logs import parse_payload
from tools.logs.payload import body_layout, parse_lines

PIECE = 64 * 1024


def event_line(n: int) -> bytes:
    event = {**EVENTS[n % len(EVENTS)], "ProcessId": 10_000 + n, "Note": "x" * (n % 97)}
    return json.dumps(event).encode() + b"\n"


def body_of(lines: int, bad: dict[int, bytes]) -> bytes:
    """NDJSON of ``lines`` lines (1-based), the ones in ``bad`` replaced."""
    return b"".join(bad.get(n, event_line(n)) for n in range(1, lines + 1))


async def chunked(body: bytes, size: int = 50_000) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


@dataclasses.dataclass
class Recording:
    """What the gateway's parser is handed."""

    pieces: list[int] = dataclasses.field(default_factory=list)
    files: int = 0


@pytest.fixture
def recording(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> Recording:
    monkeypatch.setattr(parsing, "PIECE_BYTES", PIECE)
    parser = gateway.app[INGEST]
    parse, parse_file = parser.parse, parser.parse_file
    seen = Recording()

    async def parse_piece(body: bytes, info: BodyInfo, **kwargs: Any) -> Any:
        seen.pieces.append(len(body))
        return await parse(body, info, **kwargs)

    async def parse_spooled(path: Path, info: BodyInfo, **kwargs: Any) -> Any:
        seen.files += 1
        return await parse_file(path, info, **kwargs)

    monkeypatch.setattr(parser, "parse", parse_piece)
    monkeypatch.setattr(parser, "parse_file", parse_spooled)
    return seen


async def stored_count(gateway: Gateway, source: str) -> int:
    store = gateway.app[LOGSTORE]
    result = await store.query(
        f"SELECT count() FROM {store.table} WHERE source = {{source:String}}",  # noqa: S608
        {"source": source},
    )
    return int(result.result_rows[0][0])


async def post(
    gateway: Gateway, headers: dict[str, str], body: Any, content_type: str, **query: str
) -> tuple[int, Any]:
    response = await gateway.client.post(
        "/api/v1/siem/logs/ingest",
        headers={**headers, "Content-Type": content_type},
        params=query,
        data=body,
    )
    return response.status, await response.json()


def spool_files(gateway: Gateway) -> list[Path]:
    spool = gateway.app[SETTINGS].data_dir / "spool"
    return [p for p in spool.rglob("*") if p.is_file()] if spool.exists() else []


async def test_a_large_chunked_body_is_parsed_in_bounded_pieces(
    gateway: Gateway, recording: Recording
) -> None:
    analyst = await gateway.user(Role.ANALYST, "ana")
    lines = 4000  # about 1.4 MB: some 20 pieces
    bad = {3: b"{not json\n", 1777: b'"a string"\n', 3999: b"\xff\xfe broken\n"}
    body = body_of(lines, bad)
    assert len(body) > 15 * PIECE
    status, result = await post(
        gateway, analyst, chunked(body), "application/x-ndjson", source="big"
    )
    assert status == 200, result
    assert (result["accepted"], result["rejected"]) == (lines - 3, 3)
    assert [r["line"] for r in result["rejections"]] == [3, 1777, 3999]
    assert result["ids"] == []  # more than are shown
    assert max(recording.pieces) <= PIECE  # never more of the body at once
    assert len(recording.pieces) >= 15
    assert await stored_count(gateway, "big") == lines - 3
    assert spool_files(gateway) == []


async def test_a_line_longer_than_a_piece_is_rejected_alone(
    gateway: Gateway, recording: Recording
) -> None:
    analyst = await gateway.user(Role.ANALYST, "ana")
    huge = b'{"message": "' + b"A" * (3 * PIECE) + b'"}\n'
    body = body_of(300, {150: huge})
    status, result = await post(
        gateway, analyst, chunked(body, 8192), "application/x-ndjson", source="long"
    )
    assert status == 200, result
    assert (result["accepted"], result["rejected"]) == (299, 1)
    assert result["rejections"][0]["line"] == 150
    assert "longer than" in result["rejections"][0]["reason"]
    assert max(recording.pieces) <= PIECE
    assert await stored_count(gateway, "long") == 299


async def test_a_json_array_is_spooled_to_a_file_not_held(
    gateway: Gateway, recording: Recording
) -> None:
    analyst = await gateway.user(Role.ANALYST, "ana")
    events = [json.loads(event_line(n)) for n in range(1, 1201)]
    body = json.dumps(events, indent=1).encode()
    assert len(body) > 4 * PIECE
    status, result = await post(gateway, analyst, chunked(body), "application/json", source="arr")
    assert status == 200, result
    assert result["accepted"] == 1200
    assert (recording.files, recording.pieces) == (1, [])  # the worker reads the file
    assert await stored_count(gateway, "arr") == 1200
    assert spool_files(gateway) == []


async def test_a_chunked_body_past_the_limit_is_413_and_stores_nothing(
    gateway: Gateway, recording: Recording
) -> None:
    analyst = await gateway.user(Role.ANALYST, "ana")
    table = gateway.app[ROUTE_TABLE]
    for registered, route in table.items():
        if route.path == "/api/v1/siem/logs/ingest":
            table[registered] = dataclasses.replace(route, max_body_bytes=20 * PIECE)
    body = body_of(4000, {})
    assert len(body) > 20 * PIECE
    status, result = await post(
        gateway, analyst, chunked(body), "application/x-ndjson", source="over"
    )
    assert (status, result["error"]["code"]) == (413, "AURORA-4130")
    assert len(recording.pieces) >= 10  # pieces were parsed before the limit was reached...
    assert await stored_count(gateway, "over") == 0  # ...and none of them stored
    assert spool_files(gateway) == []
    # the same body within the limit is stored whole
    status, result = await post(
        gateway, analyst, chunked(body_of(500, {})), "application/x-ndjson", source="under"
    )
    assert (status, result["accepted"]) == (200, 500)


async def test_a_body_with_nothing_valid_is_422_and_stores_nothing(
    gateway: Gateway, recording: Recording
) -> None:
    analyst = await gateway.user(Role.ANALYST, "ana")
    bad_only = b"{broken\n" * 20_000
    status, result = await post(
        gateway, analyst, chunked(bad_only), "application/x-ndjson", source="worse"
    )
    assert (status, result["error"]["code"]) == (422, "AURORA-4220")
    detail = result["error"]["detail"]
    assert [p["loc"][1] for p in detail[:3]] == [1, 2, 3]
    assert len(detail) == 1000  # the first thousand, in line order
    assert await stored_count(gateway, "worse") == 0


SYSLOG = (
    b"<34>1 2026-11-28T10:00:00Z host-a sshd 123 ID47 - Failed password for root\n"
    b"<13>Nov 28 10:00:01 host-b kernel: device eth0 entered promiscuous mode\r\n"
    b"\n"
    b"CEF:0|Vendor|Product|1.0|100|Port scan|5|src=10.0.0.1 dst=10.0.0.2\n"
) + b"<13>Nov 28 10:00:02 host-c app: caf\xe9 latin-1 bytes\n"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (body_of(60, {7: b"{not json\n", 20: b"[1]\n", 33: b"\xff\n", 40: b"\n"}), None),
        (b"\xef\xbb\xbf" + body_of(30, {2: b"{broken\r\n"}), "application/x-ndjson"),
        (SYSLOG * 25, None),
    ],
)
def test_pieces_parse_as_the_whole_body_does(body: bytes, content_type: str | None) -> None:
    whole = parse_payload(body, content_type=content_type, source=None, format=None)
    layout = body_layout(body, complete=True, content_type=content_type, format=None)
    assert layout in ("json_lines", "text_lines")
    for size in (1, 3, 17):  # lines a piece
        lines = body.split(b"\n")
        events, rejected, first = [], [], 1
        for start in range(0, len(lines), size):
            part = lines[start : start + size]
            piece = b"\n".join(part) + (b"\n" if start + size < len(lines) else b"")
            parsed = parse_lines(piece, layout=layout, first_line=first, source=None, format=None)
            events += parsed.events
            rejected += parsed.rejected
            first += len(part)
        assert rejected == whole.rejected
        assert [(e.raw, e.format, e.fields) for e in events] == [
            (e.raw, e.format, e.fields) for e in whole.events
        ]


@pytest.mark.parametrize(
    ("head", "complete", "expected"),
    [
        (b'{"a": 1}\n{"b"', False, "json_lines"),
        (b'{"a": 1', False, None),
        (b'{"a": 1}', True, "json_lines"),
        (b'{\n  "a": 1\n}\n', False, "document"),  # pretty-printed: values one after another
        (b'  [\n  {"a"', False, "document"),
        (b"  [\n", False, None),  # too short to tell an EVTX signature apart
        (b"ElfFile\x00rest", False, "document"),
        (b"\xff\xfe<\x00", False, None),
        (b"\xff\xfe<\x001\x00>\x00", False, "document"),
        (b"<34>1 2026-11-28T10:00:00Z host", False, "text_lines"),
        (b"", True, "document"),
    ],
)
def test_the_layout_is_told_from_the_first_line(
    head: bytes, complete: bool, expected: str | None
) -> None:
    assert body_layout(head, complete=complete, content_type=None, format=None) == expected


async def test_spool_files_an_earlier_run_left_are_removed_at_start(settings: Settings) -> None:
    spool = parsing.spool_dir(settings.data_dir)
    spool.mkdir(parents=True)
    left = [spool / ".body-abc123", spool / ".blocks-def456"]
    for path in left:
        path.write_bytes(b"half a body")
    (spool / "keep.txt").write_text("not ours")
    client = await start_gateway(settings)
    try:
        assert [p.exists() for p in left] == [False, False]
        assert (spool / "keep.txt").exists()
    finally:
        await client.close()
