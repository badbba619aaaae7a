"""Evidence: uploads (multipart and base64), size limit, custody, the ledger and tampering."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from sqlalchemy import delete, func, select, update

from core.security.permissions import Role
from gateway.cases.evidence import service
from gateway.cases.evidence.models import EvidenceItem, EvidenceLedgerEntry
from gateway.cases.models import Case
from gateway.keys import BLOBS, DATABASE
from tests.conftest import Gateway

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
    }
    assert [e["action"] for e in ledger["entries"]] == ["create", "access", "access"]
    assert ledger["entries"][0]["evidence_sha256"] == item["sha256"]


async def test_bad_uploads_store_nothing(gateway: Gateway, analyst: dict[str, str]) -> None:
    case_id = await make_case(gateway)
    gateway.app[BLOBS].max_bytes = limit = 1000
    status, body = await upload_json(gateway, analyst, case_id, b"x" * (limit + 1))
    assert (status, body["error"]["code"]) == (422, "AURORA-4220")
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
                db=db, item=item, action="transfer", actor=f"courier{index}", reason="to the lab"
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
        ("rewrite_hash", 4),
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
        else:  # edit an entry and recompute its own hash: the next link still breaks
            row = await db.execute(select(entry).where(target, entry.sequence == 3))
            found = row.scalar_one()
            found.reason = "nothing happened"
            from core.ledger import entry_hash

            found.hash = entry_hash(service.ledger_fields(found), found.previous_hash)
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
                db=db, blobs=blobs, evidence_id=item["id"], actor="admin", reason="cleanup"
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
            db=db, blobs=blobs, evidence_id=item["id"], actor="admin", reason="retention ended"
        )
        entries = await service.ledger_entries(db=db, evidence_id=item["id"])
        assert service.verify(purged, entries).valid
    assert purged.purged_by == "admin"
    assert [e.action for e in entries] == ["create", "purge"]
    assert not blobs.exists(item["sha256"])
