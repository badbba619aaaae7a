"""Evidence: uploads (multipart and base64, streamed), size limit, custody, the keyed ledger
and tampering, legacy ledgers, and views recorded once a window."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import tracemalloc
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from sqlalchemy import delete, func, select, update

from core.ledger import GENESIS, LedgerKey, entry_hash
from core.security.permissions import Role
from core.settings import Settings
from gateway.cases.evidence import service
from gateway.cases.evidence.models import EvidenceItem, EvidenceLedgerEntry
from gateway.cases.models import Case
from gateway.keys import BLOBS, DATABASE, LEDGER_KEYS
from tests.conftest import Gateway, start_gateway

PAYLOAD = b"MZ\x90\x00 not really a PE, but evidence all the same\n" * 20


async def make_case(gateway: Gateway, case_id: str = "CASE-2026-00001") -> str:
    async with gateway.app[DATABASE].session() as db:
        db.add(
            Case(
                id=case_id,
                title="Phishing wave",
                status="open",
                severity="high",
                tlp="TLP:AMBER",
                pap="PAP:AMBER",
                tags=[],
                created_by="ana",
            )
        )
        await db.commit()
    return case_id


@pytest.fixture
async def analyst(gateway: Gateway) -> dict[str, str]:
    return await gateway.user(Role.ANALYST, "ana")


async def upload_json(
    gateway: Gateway, headers: dict[str, str], case_id: str, content: bytes, **extra: Any
) -> Any:
    body = {
        "name": "payload.bin",
        "content_base64": base64.b64encode(content).decode(),
        "reason": "collected from mail gateway",
        **extra,
    }
    response = await gateway.client.post(
        f"/api/v1/cases/{case_id}/evidence", json=body, headers=headers
    )
    return response.status, await response.json()


async def rows(gateway: Gateway, model: Any) -> int:
    async with gateway.app[DATABASE].session() as db:
        return int((await db.execute(select(func.count()).select_from(model))).scalar_one())


async def test_upload_custody_and_ledger(gateway: Gateway, analyst: dict[str, str]) -> None:
    case_id = await make_case(gateway)
    status, item = await upload_json(gateway, analyst, case_id, PAYLOAD)
    assert status == 201, item
    assert item["sha256"] == hashlib.sha256(PAYLOAD).hexdigest()
    assert (item["size"], item["name"], item["created_by"]) == (len(PAYLOAD), "payload.bin", "ana")
    assert item["id"].startswith("EVD-")
    blob = gateway.app[BLOBS].path_of(item["sha256"])
    assert blob.read_bytes() == PAYLOAD

    form = aiohttp.FormData()
    form.add_field("reason", "memory image from host WS-12")
    form.add_field(
        "file", b"second piece", filename="mem.raw", content_type="application/octet-stream"
    )
    response = await gateway.client.post(
        f"/api/v1/cases/{case_id}/evidence", data=form, headers=analyst
    )
    second = await response.json()
    assert response.status == 201, second
    assert (second["name"], second["size"]) == ("mem.raw", 12)

    listed = await (
        await gateway.client.get(f"/api/v1/cases/{case_id}/evidence", headers=analyst)
    ).json()
    assert [e["id"] for e in listed["items"]] == [item["id"], second["id"]]
    assert (listed["total"], listed["limit"], listed["offset"]) == (2, 500, 0)
    page = await (
        await gateway.client.get(
            f"/api/v1/cases/{case_id}/evidence", params={"offset": "1"}, headers=analyst
        )
    ).json()
    assert ([e["id"] for e in page["items"]], page["total"]) == ([second["id"]], 2)
    unknown = await gateway.client.get("/api/v1/cases/CASE-1999-00001/evidence", headers=analyst)
    assert (unknown.status, (await unknown.json())["error"]["code"]) == (404, "AURORA-4041")

    custody = await (
        await gateway.client.get(
            f"/api/v1/cases/{case_id}/evidence/{item['id']}/custody", headers=analyst
        )
    ).json()
    event = custody["events"][0]
    assert (event["action"], event["actor"], event["reason"]) == (
        "create",
        "ana",
        "collected from mail gateway",
    )
    # viewing the custody chain is itself an access, recorded in it
    assert [(e["action"], e["reason"]) for e in custody["events"][1:]] == [
        ("access", "viewed the custody chain")
    ]
    ledger = await (
        await gateway.client.get(
            f"/api/v1/cases/{case_id}/evidence/{item['id']}/ledger", headers=analyst
        )
    ).json()
    assert ledger["verification"] == {
        "valid": True,
        "entries": 3,
        "expected_entries": 3,
        "head": ledger["entries"][-1]["hash"],
        "broken_at": None,
        "reason": None,
        "blob_intact": True,
        "legacy_entries": 0,
    }
    assert [e["action"] for e in ledger["entries"]] == ["create", "access", "access"]
    assert ledger["entries"][0]["evidence_sha256"] == item["sha256"]
    active = gateway.app[LEDGER_KEYS].active.id
    assert {e["key_id"] for e in ledger["entries"]} == {active}


async def test_bad_uploads_store_nothing(gateway: Gateway, analyst: dict[str, str]) -> None:
    case_id = await make_case(gateway)
    gateway.app[BLOBS].max_bytes = limit = 1000
    status, body = await upload_json(gateway, analyst, case_id, b"x" * (limit + 1))
    assert (status, body["error"]["code"]) == (413, "AURORA-4130")
    for bad in ({"content_base64": "!!!not base64"}, {"name": "../../etc/passwd"}, {"name": ""}):
        response = await gateway.client.post(
            f"/api/v1/cases/{case_id}/evidence",
            headers=analyst,
            json={"name": "a.bin", "content_base64": "aGk=", **bad},
        )
        assert response.status == 422, bad
    status, body = await upload_json(gateway, analyst, "CASE-1999-99999", b"data")
    assert (status, body["error"]["code"]) == (404, "AURORA-4041")
    assert await rows(gateway, EvidenceItem) == 0
    assert await rows(gateway, EvidenceLedgerEntry) == 0
    assert [p for p in gateway.app[BLOBS].root.rglob("*") if p.is_file()] == []
    missing = await gateway.client.get(
        f"/api/v1/cases/{case_id}/evidence/EVD-1999-00001/ledger", headers=analyst
    )
    assert (await missing.json())["error"]["code"] == "AURORA-4040"


async def append(gateway: Gateway, case_id: str, evidence_id: str, n: int) -> None:
    for index in range(n):
        async with gateway.app[DATABASE].session() as db:
            item = await service.get_evidence(
                db=db, case_id=case_id, evidence_id=evidence_id, lock=True
            )
            await service.append_custody(
                db=db,
                keys=gateway.app[LEDGER_KEYS],
                item=item,
                action="transfer",
                actor=f"courier{index}",
                reason="to the lab",
            )
            await db.commit()


async def ledger_of(
    gateway: Gateway, headers: dict[str, str], case_id: str, evidence_id: str
) -> dict[str, Any]:
    response = await gateway.client.get(
        f"/api/v1/cases/{case_id}/evidence/{evidence_id}/ledger", headers=headers
    )
    return dict((await response.json())["verification"])


@pytest.mark.parametrize(
    ("tamper", "broken_at"),
    [
        ("edit", 3),
        ("delete", 3),
        ("delete_last", 5),
        ("recompute_plain", 3),
        ("recompute_plain_unkeyed", 3),
        ("recompute_wrong_key", 3),
    ],
)
async def test_direct_database_tampering_is_detected(
    gateway: Gateway, analyst: dict[str, str], tamper: str, broken_at: int
) -> None:
    case_id = await make_case(gateway)
    _, item = await upload_json(gateway, analyst, case_id, PAYLOAD)
    await append(gateway, case_id, item["id"], 4)
    assert (await ledger_of(gateway, analyst, case_id, item["id"]))["valid"] is True
    entry = EvidenceLedgerEntry
    target = entry.evidence_id == item["id"]
    async with gateway.app[DATABASE].session() as db:
        if tamper == "edit":
            await db.execute(
                update(entry).where(target, entry.sequence == 3).values(actor="mallory")
            )
        elif tamper == "delete":
            await db.execute(delete(entry).where(target, entry.sequence == 3))
        elif tamper == "delete_last":
            await db.execute(delete(entry).where(target, entry.sequence == 5))
        else:
            # Someone who can write the database but does not hold the ledger key edits entry 3
            # and recomputes every link from there, and the head kept on the evidence row:
            # with plain SHA-256 (as the ledger was before it was keyed), or with a key of
            # their own under the real key's id.
            mallory = LedgerKey(gateway.app[LEDGER_KEYS].active.id, 1, os.urandom(32))
            found = (
                await db.execute(select(entry).where(target).order_by(entry.sequence))
            ).scalars()
            previous = GENESIS
            for row in list(found):
                if row.sequence == 3:
                    row.reason = "nothing happened"
                if row.sequence >= 3:
                    row.previous_hash = previous
                    fields = service.ledger_fields(row)
                    if tamper == "recompute_wrong_key":
                        row.hash = mallory.seal(fields, previous)
                    else:
                        row.hash = entry_hash(fields, previous)
                        if tamper == "recompute_plain_unkeyed":
                            row.key_id = None
                previous = row.hash
            await db.execute(
                update(EvidenceItem)
                .where(EvidenceItem.id == item["id"])
                .values(ledger_head=previous)
            )
        await db.commit()
    result = await ledger_of(gateway, analyst, case_id, item["id"])
    assert result["valid"] is False
    assert result["broken_at"] == broken_at
    assert result["reason"]


async def test_tampered_content_is_detected(gateway: Gateway, analyst: dict[str, str]) -> None:
    case_id = await make_case(gateway)
    _, item = await upload_json(gateway, analyst, case_id, PAYLOAD)
    gateway.app[BLOBS].path_of(item["sha256"]).write_bytes(b"swapped")
    result = await ledger_of(gateway, analyst, case_id, item["id"])
    assert (result["valid"], result["blob_intact"]) == (False, False)


async def test_legal_hold_and_purge(gateway: Gateway, analyst: dict[str, str]) -> None:
    case_id = await make_case(gateway)
    _, item = await upload_json(gateway, analyst, case_id, PAYLOAD)
    blobs = gateway.app[BLOBS]
    async with gateway.app[DATABASE].session() as db:
        with pytest.raises(Exception, match="Validation"):
            await service.purge_evidence(
                db=db,
                blobs=blobs,
                keys=gateway.app[LEDGER_KEYS],
                evidence_id=item["id"],
                actor="admin",
                reason="cleanup",
            )
    async with gateway.app[DATABASE].session() as db:
        await db.execute(
            update(Case)
            .where(Case.id == case_id)
            .values(deleted_at=datetime.now(UTC), deleted_by="ana")
        )
        await db.commit()
    assert blobs.exists(item["sha256"])  # legal hold: the content stays
    async with gateway.app[DATABASE].session() as db:
        purged = await service.purge_evidence(
            db=db,
            blobs=blobs,
            keys=gateway.app[LEDGER_KEYS],
            evidence_id=item["id"],
            actor="admin",
            reason="retention ended",
        )
        entries = await service.ledger_entries(db=db, evidence_id=item["id"])
        assert service.verify(purged, entries, gateway.app[LEDGER_KEYS]).valid
    assert purged.purged_by == "admin"
    assert [e.action for e in entries] == ["create", "purge"]
    assert not blobs.exists(item["sha256"])


async def test_repeated_views_are_recorded_once_per_reader_and_window(
    gateway: Gateway, analyst: dict[str, str]
) -> None:
    case_id = await make_case(gateway)
    _, item = await upload_json(gateway, analyst, case_id, PAYLOAD)
    base = f"/api/v1/cases/{case_id}/evidence/{item['id']}"
    for _ in range(100):
        response = await gateway.client.get(f"{base}/custody", headers=analyst)
        assert response.status == 200
    custody = await (await gateway.client.get(f"{base}/custody", headers=analyst)).json()
    assert [(e["action"], e["actor"]) for e in custody["events"]] == [
        ("create", "ana"),
        ("access", "ana"),
    ]
    bob = await gateway.user(Role.ANALYST, "bob")
    for _ in range(3):
        await gateway.client.get(f"{base}/custody", headers=bob)
    ledger = await (await gateway.client.get(f"{base}/ledger", headers=bob)).json()
    assert [(e["action"], e["actor"], e["reason"]) for e in ledger["entries"]] == [
        ("create", "ana", "collected from mail gateway"),
        ("access", "ana", "viewed the custody chain"),
        ("access", "bob", "viewed the custody chain"),
        ("access", "bob", "viewed the ledger"),
    ]
    assert ledger["verification"]["valid"] is True
    # the next window records the reader again (once)
    later = datetime.now(UTC) + service.VIEW_WINDOW + timedelta(minutes=1)
    for _ in range(2):
        async with gateway.app[DATABASE].session() as db:
            _, entries = await service.record_access(
                db=db,
                keys=gateway.app[LEDGER_KEYS],
                case_id=case_id,
                evidence_id=item["id"],
                actor="ana",
                what="viewed the custody chain",
                now=later,
            )
    assert [(e.action, e.actor) for e in entries][-2:] == [("access", "bob"), ("access", "ana")]
    assert len(entries) == 5


async def _legacy_evidence(
    settings: Settings, evidence_id: str, *, entries: int, broken: bool = False
) -> None:
    """Evidence with a ledger as it was written before the ledger was keyed (plain SHA-256)."""
    from core.db import create_database

    database = create_database(settings.effective_database_url)
    try:
        async with database.session() as db:
            if await db.get(Case, "CASE-2026-00001") is None:
                db.add(
                    Case(
                        id="CASE-2026-00001",
                        title="Old case",
                        status="open",
                        severity="high",
                        tlp="TLP:AMBER",
                        pap="PAP:AMBER",
                        tags=[],
                        created_by="ana",
                    )
                )
                await db.flush()
            item = EvidenceItem(
                id=evidence_id,
                case_id="CASE-2026-00001",
                name="old.bin",
                content_type="application/octet-stream",
                sha256="ab" * 32,
                size=3,
                created_by="ana",
                ledger_length=0,
                ledger_head=GENESIS,
                purged_at=datetime.now(UTC),  # no blob to check
                purged_by="ana",
            )
            db.add(item)
            await db.flush()
            for sequence in range(1, entries + 1):
                entry = EvidenceLedgerEntry(
                    evidence_id=evidence_id,
                    sequence=sequence,
                    action="create" if sequence == 1 else "access",
                    actor="ana",
                    reason="before keys",
                    at=f"2026-11-0{sequence}T10:00:00.000000Z",
                    evidence_sha256=item.sha256,
                    details={},
                    previous_hash=item.ledger_head,
                    key_id=None,
                )
                entry.hash = entry_hash(service.ledger_fields(entry), item.ledger_head)
                if broken and sequence == 2:
                    entry.reason = "edited before the upgrade"
                db.add(entry)
                item.ledger_length, item.ledger_head = sequence, entry.hash
            await db.commit()
    finally:
        await database.dispose()


async def test_legacy_ledgers_are_sealed_once_and_forged_ones_never_verify(
    settings: Settings,
) -> None:
    await _legacy_evidence(settings, "EVD-2025-00001", entries=3)
    await _legacy_evidence(settings, "EVD-2025-00002", entries=3, broken=True)
    client = await start_gateway(settings)  # the first start with keys seals legacy ledgers
    try:
        gateway = Gateway(client)
        keys = gateway.app[LEDGER_KEYS]
        assert keys.legacy_sealed
        analyst = await gateway.user(Role.ANALYST, "ana")
        base = "/api/v1/cases/CASE-2026-00001/evidence"
        ledger = await (await client.get(f"{base}/EVD-2025-00001/ledger", headers=analyst)).json()
        assert [(e["action"], e["key_id"]) for e in ledger["entries"]] == [
            ("create", None),
            ("access", None),
            ("access", None),
            ("seal", keys.active.id),
            ("access", keys.active.id),
        ]
        assert ledger["entries"][3]["details"] == {
            "legacy_entries": 3,
            "legacy_head": ledger["entries"][2]["hash"],
        }
        assert ledger["verification"]["valid"] is True
        assert ledger["verification"]["legacy_entries"] == 3
        # a legacy ledger already broken is not sealed: it stays broken where it broke
        broken = await (await client.get(f"{base}/EVD-2025-00002/ledger", headers=analyst)).json()
        assert "seal" not in [e["action"] for e in broken["entries"]]
        assert (broken["verification"]["valid"], broken["verification"]["broken_at"]) == (False, 2)
    finally:
        await client.close()

    # a legacy ledger that appears after the one-time seal was not written by AuroraSOC
    await _legacy_evidence(settings, "EVD-2025-00003", entries=2)
    client = await start_gateway(settings)
    try:
        gateway = Gateway(client)
        analyst = await gateway.login("ana")
        ledger = await (await client.get(f"{base}/EVD-2025-00003/ledger", headers=analyst)).json()
        assert "seal" not in [e["action"] for e in ledger["entries"]]
        assert (ledger["verification"]["valid"], ledger["verification"]["broken_at"]) == (False, 1)
        assert "not sealed" in ledger["verification"]["reason"]
        # sealing a tampered legacy ledger: an edited legacy entry recomputed in plain SHA-256
        # no longer matches the seal's keyed link
        async with gateway.app[DATABASE].session() as db:
            entry = EvidenceLedgerEntry
            rows = (
                await db.execute(
                    select(entry)
                    .where(entry.evidence_id == "EVD-2025-00001")
                    .order_by(entry.sequence)
                )
            ).scalars()
            previous = GENESIS
            for row in list(rows):
                if row.key_id is not None:
                    break
                row.reason = "rewritten" if row.sequence == 2 else row.reason
                row.previous_hash = previous
                row.hash = previous = entry_hash(service.ledger_fields(row), previous)
            await db.commit()
        ledger = await (await client.get(f"{base}/EVD-2025-00001/ledger", headers=analyst)).json()
        assert (ledger["verification"]["valid"], ledger["verification"]["broken_at"]) == (False, 4)
    finally:
        await client.close()


async def test_rotated_keys_seal_new_entries_and_old_ones_still_verify(
    gateway: Gateway, analyst: dict[str, str]
) -> None:
    case_id = await make_case(gateway)
    _, item = await upload_json(gateway, analyst, case_id, PAYLOAD)
    keys = gateway.app[LEDGER_KEYS]
    first = keys.active.id
    second = keys.rotate().id
    await append(gateway, case_id, item["id"], 2)
    ledger = await (
        await gateway.client.get(
            f"/api/v1/cases/{case_id}/evidence/{item['id']}/ledger", headers=analyst
        )
    ).json()
    assert [e["key_id"] for e in ledger["entries"]] == [first, second, second, second]
    assert ledger["verification"]["valid"] is True
    # an entry sealed with the old key, re-stamped with the new key's id, does not verify
    async with gateway.app[DATABASE].session() as db:
        await db.execute(
            update(EvidenceLedgerEntry)
            .where(EvidenceLedgerEntry.evidence_id == item["id"], EvidenceLedgerEntry.sequence == 1)
            .values(key_id=second)
        )
        await db.commit()
    assert (await ledger_of(gateway, analyst, case_id, item["id"]))["broken_at"] == 1


def _piece(index: int, size: int = 48 * 1024) -> bytes:
    """Content made piece by piece (never whole), different in every piece."""
    return hashlib.sha256(index.to_bytes(4)).digest() * (size // 32)


async def _json_body(pieces: int, digest: Any, tail: bytes = b'"}') -> AsyncIterator[bytes]:
    yield b'{"name": "disk.img", "reason": "imaged",\n "content_base64": "'
    for index in range(pieces):
        piece = _piece(index)
        digest.update(piece)
        yield base64.b64encode(piece)
    yield tail


async def _multipart_body(pieces: int, digest: Any) -> AsyncIterator[bytes]:
    yield (
        b"--XBOUNDARYX\r\n"
        b'Content-Disposition: form-data; name="reason"\r\n\r\nimaged\r\n'
        b"--XBOUNDARYX\r\n"
        b'Content-Disposition: form-data; name="file"; filename="disk.img"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n"
    )
    for index in range(pieces):
        piece = _piece(index)
        digest.update(piece)
        yield piece
    yield b"\r\n--XBOUNDARYX--\r\n"


MULTIPART = "multipart/form-data; boundary=XBOUNDARYX"


@pytest.mark.parametrize("kind", ["json", "multipart"])
async def test_large_chunked_uploads_stream_with_bounded_memory(
    settings: Settings, kind: str
) -> None:
    client = await start_gateway(settings.model_copy(update={"evidence_max_bytes": 64 << 20}))
    try:
        gateway = Gateway(client)
        analyst = await gateway.user(Role.ANALYST, "ana")
        case_id = await make_case(gateway)
        pieces = 256  # 12 MiB of content, 16 MiB as base64; sent chunked (no length)
        digest = hashlib.sha256()
        body = _json_body(pieces, digest) if kind == "json" else _multipart_body(pieces, digest)
        content_type = "application/json" if kind == "json" else MULTIPART
        tracemalloc.start()
        try:
            response = await client.post(
                f"/api/v1/cases/{case_id}/evidence",
                data=body,
                headers={**analyst, "Content-Type": content_type},
            )
            item = await response.json()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert response.status == 201, item
        assert (item["sha256"], item["size"]) == (digest.hexdigest(), pieces * 48 * 1024)
        assert gateway.app[BLOBS].verify(item["sha256"])
        # the whole request (client and gateway in this process) never held the content
        assert peak < 4 << 20, peak
    finally:
        await client.close()


@pytest.mark.parametrize("kind", ["json", "multipart", "json_length", "multipart_length"])
async def test_uploads_past_the_limit_are_413_and_store_nothing(
    settings: Settings, kind: str
) -> None:
    limit = 100_000
    client = await start_gateway(settings.model_copy(update={"evidence_max_bytes": limit}))
    try:
        gateway = Gateway(client)
        analyst = await gateway.user(Role.ANALYST, "ana")
        case_id = await make_case(gateway)
        digest = hashlib.sha256()
        pieces = 4  # 192 KiB of content
        json = kind.startswith("json")
        body: Any = _json_body(pieces, digest) if json else _multipart_body(pieces, digest)
        if kind.endswith("_length"):  # a declared length past the limit: refused unread
            body = io.BytesIO(b"".join([chunk async for chunk in body]) + b" " * (2 << 20))
        response = await client.post(
            f"/api/v1/cases/{case_id}/evidence",
            data=body,
            headers={
                **analyst,
                "Content-Type": "application/json" if json else MULTIPART,
            },
        )
        error = (await response.json())["error"]
        assert (response.status, error["code"]) == (413, "AURORA-4130"), error
        assert await rows(gateway, EvidenceItem) == 0
        assert await rows(gateway, EvidenceLedgerEntry) == 0
        assert [p for p in gateway.app[BLOBS].root.rglob("*") if p.is_file()] == []
    finally:
        await client.close()


async def _parse(body: bytes, chunk: int = 1) -> tuple[dict[str, Any], bytes, bool]:
    from gateway.cases.evidence.upload import JsonUpload

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), chunk):
            yield body[start : start + chunk]

    content = bytearray()
    upload = JsonUpload(chunks(), content.extend)
    await upload.read()
    return upload.fields, bytes(content), upload.has_content


@pytest.mark.parametrize("chunk", [1, 3, 7, 1 << 16])
async def test_json_uploads_parse_the_same_whatever_the_chunks(chunk: int) -> None:
    content = bytes(range(256)) * 3 + b"\xff\xfe"
    encoded = base64.b64encode(content)
    escaped = encoded.replace(b"/", b"\\/").replace(b"A", b"\\u0041", 1)
    body = (
        b' { "reason" : "seized \\"here\\" \\u00e9" , "description": null,'
        b' "content_base64": "' + escaped + b'", "name": "a.bin" } \n'
    )
    fields, decoded, present = await _parse(body, chunk)
    assert present
    assert decoded == content
    assert fields == {"reason": 'seized "here" \u00e9', "description": None, "name": "a.bin"}
    for padded in (b"QQ==", b"QUI=", b"QUJD", b""):
        _, decoded, _ = await _parse(b'{"content_base64": "' + padded + b'"}', chunk)
        assert decoded == base64.b64decode(padded)


@pytest.mark.parametrize(
    "body",
    [
        b'{"content_base64": "QQ==QUJD"}',  # padding before the end
        b'{"content_base64": "QUJ"}',  # cut short
        b'{"content_base64": "QU\\nJD"}',  # not a base64 character
        b'{"content_base64": "QUJD", "content_base64": "QUJD"}',
        b'{"content_base64": 5}',
        b'{"name": {"nested": 1}, "content_base64": "QUJD"}',
        b'{"content_base64": "QUJD"} trailing',
        b'{"content_base64": "QUJD"',
        b'{"content_base64": "QUJD",}',
        b'["content_base64"]',
        b'{"name": "\xff", "content_base64": "QUJD"}',
        b'{"name": tru, "content_base64": "QUJD"}',
    ],
)
async def test_malformed_json_uploads_are_422(body: bytes) -> None:
    from core.errors import ValidationFailed

    for chunk in (1, 1 << 16):
        with pytest.raises(ValidationFailed):
            await _parse(body, chunk)


async def test_malformed_uploads_through_the_api_store_nothing(
    gateway: Gateway, analyst: dict[str, str]
) -> None:
    case_id = await make_case(gateway)
    for body in (b'{"name": "a.bin"}', b'{"name": "a.bin", "content_base64": "QQ==QUJD"}'):
        response = await gateway.client.post(
            f"/api/v1/cases/{case_id}/evidence",
            data=body,
            headers={**analyst, "Content-Type": "application/json"},
        )
        assert (response.status, (await response.json())["error"]["code"]) == (422, "AURORA-4220")
    assert await rows(gateway, EvidenceItem) == 0
    assert [p for p in gateway.app[BLOBS].root.rglob("*") if p.is_file()] == []
