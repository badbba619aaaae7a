"""Evidence routes: upload (multipart or JSON base64), list, custody chain, ledger.

Uploads are never held in memory: the content streams, hashed, into a staged blob beside the
store, within the evidence limit while it is read (413 AURORA-4130, nothing kept), and is put
in place only once the whole request is valid.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from aiohttp import BodyPartReader, web

from core.blobs import StagedBlob
from core.errors import PayloadTooLarge, RequestTimeout, ValidationFailed
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
from gateway.cases.evidence.upload import CONTENT_FIELD, FIELD_BYTES, JsonUpload
from gateway.http import iter_body, json_response, principal
from gateway.keys import BLOBS, DATABASE, LEDGER_KEYS, SETTINGS
from gateway.routing import Route

# The limit that counts is the evidence limit from settings, enforced while reading (see
# upload_limit); this one only lets the route through the generic body limit.
UPLOAD_BODY_LIMIT = 1 << 42
TEXT_FIELDS = frozenset({"name", "description", "reason", "content_type"})
ENVELOPE_BYTES = 1 << 20
"""What an upload body may hold besides its content: the other fields, the form's headers."""


def _invalid(loc: list[str], msg: str) -> ValidationFailed:
    return ValidationFailed([{"loc": loc, "msg": msg, "type": "value_error"}])


def upload_limit(request: web.Request) -> int:
    """The largest upload body: the evidence limit, base64-encoded, and its envelope."""
    content = request.app[SETTINGS].evidence_max_bytes
    return 4 * -(-content // 3) + ENVELOPE_BYTES


async def _record(request: web.Request, staged: StagedBlob, upload: EvidenceCreate) -> EvidenceRead:
    async with request.app[DATABASE].session() as db:
        item = await service.add_evidence(
            db=db,
            blobs=request.app[BLOBS],
            keys=request.app[LEDGER_KEYS],
            case_id=request.match_info["case_id"],
            actor=principal(request).username,
            name=upload.name,
            content_type=upload.content_type,
            description=upload.description,
            reason=upload.reason,
            content=staged,
        )
    return EvidenceRead.model_validate(item)


async def _upload(request: web.Request) -> EvidenceRead:
    limit = upload_limit(request)
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge({"limit_bytes": limit})
    if request.content_type == "multipart/form-data":
        return await _upload_multipart(request)
    if request.content_type != "application/json":
        raise ValidationFailed(
            [
                {
                    "loc": ["body"],
                    "msg": "Content-Type must be application/json or multipart/form-data",
                    "type": "content_type",
                }
            ]
        )
    with request.app[BLOBS].stage() as staged:
        body = JsonUpload(iter_body(request, limit=limit), staged.write)
        await body.read()
        if not body.has_content:
            raise ValidationFailed(
                [{"loc": ["body", CONTENT_FIELD], "msg": "Field required", "type": "missing"}]
            )
        upload = validate(EvidenceCreate, {**body.fields, CONTENT_FIELD: "-"})
        return await _record(request, staged, upload)


async def _within[T](request: web.Request, read: Awaitable[T], limit: int) -> T:
    """One read of a form body, within the idle timeout; past ``limit`` bytes AURORA-4130."""
    idle = request.app[SETTINGS].body_read_timeout_seconds
    try:
        async with asyncio.timeout(idle):
            result = await read
    except TimeoutError as err:
        raise RequestTimeout({"reason": f"no body data for {idle:g} s"}) from err
    if request.content.total_bytes > limit:
        raise PayloadTooLarge({"limit_bytes": limit})
    return result


async def _text_part(request: web.Request, part: BodyPartReader, limit: int) -> str:
    data = bytearray()
    while chunk := await _within(request, part.read_chunk(1 << 16), limit):
        data += chunk
        if len(data) > FIELD_BYTES:
            raise _invalid(["body", str(part.name)], f"limited to {FIELD_BYTES} bytes")
    return data.decode("utf-8", "replace")


async def _upload_multipart(request: web.Request) -> EvidenceRead:
    """Text fields first, then one ``file`` part, streamed to a staged blob."""
    limit = upload_limit(request)
    reader = await request.multipart()
    fields: dict[str, str] = {}
    while (part := await _within(request, reader.next(), limit)) is not None:
        if not isinstance(part, BodyPartReader):
            raise _invalid(["body"], "nested multipart is not supported")
        if part.name in TEXT_FIELDS:
            if part.name in fields:
                raise _invalid(["body", part.name], "given twice")
            fields[part.name] = await _text_part(request, part, limit)
            continue
        if part.name != "file":
            raise _invalid(["body", str(part.name)], "unexpected form field")
        upload = validate(
            EvidenceCreate,
            {
                "name": fields.get("name") or part.filename or "",
                CONTENT_FIELD: "-",
                "content_type": fields.get("content_type")
                or part.headers.get("Content-Type", "application/octet-stream"),
                "description": fields.get("description"),
                "reason": fields.get("reason", "collected"),
            },
        )
        with request.app[BLOBS].stage() as staged:
            while chunk := await _within(request, part.read_chunk(1 << 16), limit):
                staged.write(chunk)
            return await _record(request, staged, upload)
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
            keys=request.app[LEDGER_KEYS],
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
            keys=request.app[LEDGER_KEYS],
            case_id=request.match_info["case_id"],
            evidence_id=request.match_info["evidence_id"],
            actor=principal(request).username,
            what="viewed the ledger",
        )
    result = service.verify(item, entries, request.app[LEDGER_KEYS])
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
            legacy_entries=result.legacy,
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
