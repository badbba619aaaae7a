"""Evidence routes: upload (multipart or JSON base64), list, custody chain, ledger."""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import AsyncIterator

from aiohttp import BodyPartReader, web

from core.errors import ValidationFailed
from core.security.permissions import Permission
from core.validation import validate
from gateway.cases.evidence import service
from gateway.cases.evidence.schemas import (
    Custody,
    CustodyEvent,
    EvidenceCreate,
    EvidencePage,
    EvidenceRead,
    Ledger,
    LedgerEntryRead,
    LedgerVerification,
)
from gateway.http import json_response, principal
from gateway.keys import BLOBS, DATABASE, SETTINGS
from gateway.routing import Route

# Uploads stream to disk, so the request may be large; the evidence limit from settings is
# enforced while streaming (AURORA-4220, nothing kept).
UPLOAD_BODY_LIMIT = 1 << 40
TEXT_FIELDS = frozenset({"name", "description", "reason", "content_type"})


def _invalid(loc: list[str], msg: str) -> ValidationFailed:
    return ValidationFailed([{"loc": loc, "msg": msg, "type": "value_error"}])


async def _upload(request: web.Request) -> EvidenceRead:
    case_id = request.match_info["case_id"]
    blobs = request.app[BLOBS]
    actor = principal(request).username
    if request.content_type == "multipart/form-data":
        return await _upload_multipart(request, case_id, actor)
    limit = request.app[SETTINGS].evidence_max_bytes
    if request.content_length is not None and request.content_length > limit * 4 // 3 + 65_536:
        raise _invalid(["body", "content_base64"], f"evidence is limited to {limit} bytes")
    from gateway.http import read_json

    body = validate(EvidenceCreate, await read_json(request))
    try:
        content = base64.b64decode(body.content_base64, validate=True)
    except (binascii.Error, ValueError) as err:
        raise _invalid(["body", "content_base64"], "not valid base64") from err

    async def chunks() -> AsyncIterator[bytes]:
        yield content

    async with request.app[DATABASE].session() as db:
        item = await service.add_evidence(
            db=db,
            blobs=blobs,
            case_id=case_id,
            actor=actor,
            name=body.name,
            content_type=body.content_type,
            description=body.description,
            reason=body.reason,
            content=chunks(),
        )
    return EvidenceRead.model_validate(item)


async def _upload_multipart(request: web.Request, case_id: str, actor: str) -> EvidenceRead:
    """Text fields first, then one ``file`` part, streamed to the blob store."""
    reader = await request.multipart()
    fields: dict[str, str] = {}
    async with request.app[DATABASE].session() as db:
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise _invalid(["body"], "nested multipart is not supported")
            if part.name in TEXT_FIELDS:
                fields[part.name] = (await part.read(decode=True)).decode("utf-8", "replace")
                continue
            if part.name != "file":
                raise _invalid(["body", str(part.name)], "unexpected form field")
            name = fields.get("name") or part.filename or ""
            upload = validate(
                EvidenceCreate,
                {
                    "name": name,
                    "content_base64": "-",
                    "content_type": fields.get("content_type")
                    or part.headers.get("Content-Type", "application/octet-stream"),
                    "description": fields.get("description"),
                    "reason": fields.get("reason", "collected"),
                },
            )

            async def chunks(source: BodyPartReader = part) -> AsyncIterator[bytes]:
                while chunk := await source.read_chunk(1 << 16):
                    yield chunk

            item = await service.add_evidence(
                db=db,
                blobs=request.app[BLOBS],
                case_id=case_id,
                actor=actor,
                name=upload.name,
                content_type=upload.content_type,
                description=upload.description,
                reason=upload.reason,
                content=chunks(),
            )
            return EvidenceRead.model_validate(item)
    raise _invalid(["body", "file"], "a 'file' part is required")


async def create_evidence(request: web.Request) -> web.Response:
    return json_response(await _upload(request), status=201)


async def list_evidence(request: web.Request) -> web.Response:
    async with request.app[DATABASE].session() as db:
        items = await service.list_evidence(db=db, case_id=request.match_info["case_id"])
    reads = [EvidenceRead.model_validate(i) for i in items]
    return json_response(EvidencePage(items=reads, total=len(reads)))


async def get_custody(request: web.Request) -> web.Response:
    async with request.app[DATABASE].session() as db:
        item, entries = await service.record_access(
            db=db,
            case_id=request.match_info["case_id"],
            evidence_id=request.match_info["evidence_id"],
            actor=principal(request).username,
            what="viewed the custody chain",
        )
    events = [CustodyEvent.model_validate(e, from_attributes=True) for e in entries]
    return json_response(Custody(evidence_id=item.id, events=events))


async def get_ledger(request: web.Request) -> web.Response:
    async with request.app[DATABASE].session() as db:
        item, entries = await service.record_access(
            db=db,
            case_id=request.match_info["case_id"],
            evidence_id=request.match_info["evidence_id"],
            actor=principal(request).username,
            what="viewed the ledger",
        )
    result = service.verify(item, entries)
    blob_intact = None
    if item.purged_at is None:
        blobs = request.app[BLOBS]
        blob_intact = blobs.exists(item.sha256) and await asyncio.to_thread(
            blobs.verify, item.sha256
        )
    ledger = Ledger(
        evidence_id=item.id,
        sha256=item.sha256,
        entries=[LedgerEntryRead.model_validate(e, from_attributes=True) for e in entries],
        verification=LedgerVerification(
            valid=result.valid and blob_intact is not False,
            entries=result.entries,
            expected_entries=item.ledger_length,
            head=result.head,
            broken_at=result.broken_at,
            reason=result.reason
            if not result.valid
            else (None if blob_intact is not False else "the stored content no longer matches"),
            blob_intact=blob_intact,
        ),
    )
    return json_response(ledger)


EVIDENCE = "/api/v1/cases/{case_id}/evidence"
ROUTES = [
    Route("GET", EVIDENCE, list_evidence, Permission.CASES_READ),
    Route(
        "POST", EVIDENCE, create_evidence, Permission.CASES_WRITE, max_body_bytes=UPLOAD_BODY_LIMIT
    ),
    Route("GET", EVIDENCE + "/{evidence_id}/custody", get_custody, Permission.CASES_READ),
    Route("GET", EVIDENCE + "/{evidence_id}/ledger", get_ledger, Permission.CASES_READ),
]
