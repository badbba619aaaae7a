"""Evidence routes: upload (multipart or JSON base64), list, custody chain, ledger.

Uploads are never held in memory: the content streams, hashed, into a staged blob beside the
store, within the evidence limit while it is read (413 AURORA-4130, nothing kept), and is put
in place only once the whole request is valid.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from core.blobs import StagedBlob
from core.errors import CaseNotFound, NotFound, PayloadTooLarge, RequestTimeout
from core.security.permissions import Permission
from core.validation import field_error, validate
from gateway.cases.evidence import service
from gateway.cases.evidence.models import EvidenceItem, EvidenceLedgerEntry
from gateway.cases.evidence.schemas import (
    Custody,
    CustodyEvent,
    EvidenceCreate,
    EvidenceListQuery,
    EvidenceRead,
    Ledger,
)
from gateway.cases.evidence.upload import CONTENT_FIELD, FIELD_BYTES, JsonUpload
from gateway.http import iter_body, json_response
from gateway.kernel import as_caller, list_route
from gateway.keys import BLOBS, LEDGER_KEYS, SETTINGS
from gateway.routing import Route

# The limit that counts is the evidence limit from settings, enforced while reading (see
# upload_limit); this one only lets the route through the generic body limit.
UPLOAD_BODY_LIMIT = 1 << 42
TEXT_FIELDS = frozenset({"name", "description", "reason", "content_type"})
ENVELOPE_BYTES = 1 << 20
"""What an upload body may hold besides its content: the other fields, the form's headers."""


def upload_limit(request: web.Request) -> int:
    """The largest upload body: the evidence limit, base64-encoded, and its envelope."""
    content = request.app[SETTINGS].evidence_max_bytes
    return 4 * -(-content // 3) + ENVELOPE_BYTES


async def _record(request: web.Request, staged: StagedBlob, upload: EvidenceCreate) -> EvidenceRead:
    item = await as_caller(
        request,
        service.add_evidence,
        blobs=request.app[BLOBS],
        keys=request.app[LEDGER_KEYS],
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
        raise field_error(
            ["body"],
            "Content-Type must be application/json or multipart/form-data",
            "content_type",
        )
    with request.app[BLOBS].stage() as staged:
        body = JsonUpload(iter_body(request, limit=limit), staged.write)
        await body.read()
        if not body.has_content:
            raise field_error(["body", CONTENT_FIELD], "Field required", "missing")
        upload = validate(EvidenceCreate, {**body.fields, CONTENT_FIELD: "-"})
        return await _record(request, staged, upload)


async def _within[T](request: web.Request, read: Awaitable[T], limit: int) -> T:
    """One read of a form body, within the idle timeout; past ``limit`` bytes AURORA-4130; a
    form that is not one (no boundary, a part header that is not a header) AURORA-4220."""
    idle = request.app[SETTINGS].body_read_timeout_seconds
    try:
        async with asyncio.timeout(idle):
            result = await read
    except TimeoutError as err:
        raise RequestTimeout({"reason": f"no body data for {idle:g} s"}) from err
    except (HttpProcessingError, ValueError) as err:
        raise field_error(["body"], "Malformed multipart body", "form_invalid") from err
    if request.content.total_bytes > limit:
        raise PayloadTooLarge({"limit_bytes": limit})
    return result


async def _text_part(request: web.Request, part: BodyPartReader, limit: int) -> str:
    data = bytearray()
    while chunk := await _within(request, part.read_chunk(1 << 16), limit):
        data += chunk
        if len(data) > FIELD_BYTES:
            raise field_error(["body", str(part.name)], f"limited to {FIELD_BYTES} bytes")
    return data.decode("utf-8", "replace")


async def _upload_multipart(request: web.Request) -> EvidenceRead:
    """Text fields first, then one ``file`` part, streamed to a staged blob."""
    limit = upload_limit(request)
    reader = await _within(request, request.multipart(), limit)
    fields: dict[str, str] = {}
    while (part := await _within(request, reader.next(), limit)) is not None:
        if not isinstance(part, BodyPartReader):
            raise field_error(["body"], "nested multipart is not supported")
        if part.name in TEXT_FIELDS:
            if part.name in fields:
                raise field_error(["body", part.name], "given twice")
            fields[part.name] = await _text_part(request, part, limit)
            continue
        if part.name != "file":
            raise field_error(["body", str(part.name)], "unexpected form field")
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
    raise field_error(["body", "file"], "a 'file' part is required")


async def create_evidence(request: web.Request) -> web.Response:
    """Add evidence: a multipart ``file`` part, or JSON with the content base64-encoded."""
    return json_response(await _upload(request), status=201)


async def _view(request: web.Request, what: str) -> tuple[EvidenceItem, list[EvidenceLedgerEntry]]:
    """The evidence and its ledger, its reader's view recorded in the ledger."""
    return await as_caller(request, service.record_access, keys=request.app[LEDGER_KEYS], what=what)


async def get_custody(request: web.Request) -> web.Response:
    """The custody chain of a piece of evidence (viewing it is recorded in it)."""
    item, entries = await _view(request, "viewed the custody chain")
    events = [CustodyEvent.model_validate(e, from_attributes=True) for e in entries]
    return json_response(Custody(evidence_id=item.id, events=events))


async def get_ledger(request: web.Request) -> web.Response:
    """The ledger of a piece of evidence, verified, with its stored content checked."""
    item, entries = await _view(request, "viewed the ledger")
    ledger = await service.check_ledger(item, entries, request.app[LEDGER_KEYS], request.app[BLOBS])
    return json_response(ledger)


EVIDENCE = "/api/v1/cases/{case_id}/evidence"
ITEM = EVIDENCE + "/{evidence_id}"
R, W = Permission.CASES_READ, Permission.CASES_WRITE
GONE = (CaseNotFound,)
"""The case is unknown or deleted."""
MISSING = (*GONE, NotFound)
"""A piece of evidence is looked up within its case: either may be unknown."""
ROUTES = [
    list_route(
        EVIDENCE,
        service.list_evidence,
        EvidenceRead,
        R,
        query=EvidenceListQuery,
        errors=GONE,
        summary="List a case's evidence, oldest first",
    ),
    Route(
        "POST",
        EVIDENCE,
        create_evidence,
        W,
        max_body_bytes=UPLOAD_BODY_LIMIT,
        body=EvidenceCreate,
        body_media="multipart/form-data",
        response=EvidenceRead,
        status=201,
        errors=GONE,
    ),
    Route("GET", ITEM + "/custody", get_custody, R, response=Custody, errors=MISSING),
    Route("GET", ITEM + "/ledger", get_ledger, R, response=Ledger, errors=MISSING),
]
