"""Orchestrator dispatch: one agent method called through the HandoffClient, and recorded."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from agents.acp.client import CallOptions, HandoffClient
from agents.acp.protocol import (
    CANCELLED,
    DEADLINE_EXCEEDED,
    HOP_LIMIT_EXCEEDED,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    RpcError,
)
from core.db.pages import fetch_page
from core.errors import AuroraError, NotFound, ServiceUnavailable, ValidationFailed
from gateway.investigations.models import Dispatch
from gateway.investigations.schemas import DispatchRequest, HistoryQuery


def as_platform_error(err: RpcError, agent: str, method: str) -> AuroraError:
    """The AURORA error a protocol error from an agent means to the API's caller."""
    if err.code == METHOD_NOT_FOUND:
        return NotFound({"agent": agent, "method": method, "reason": "no such method"})
    if err.code in {INVALID_PARAMS, INVALID_REQUEST}:
        errors = err.data.get("errors") if isinstance(err.data, dict) else None
        if isinstance(errors, list):
            return ValidationFailed(
                [
                    {**e, "loc": ["body", "params", *e.get("loc", [])]}
                    for e in errors
                    if isinstance(e, dict)
                ]
            )
        return ValidationFailed(
            [{"loc": ["body", "params"], "msg": err.message, "type": "value_error"}]
        )
    if err.code == HOP_LIMIT_EXCEEDED:
        return ValidationFailed(
            [{"loc": ["body"], "msg": "hop limit exceeded", "type": "hop_limit"}]
        )
    if err.code in {DEADLINE_EXCEEDED, CANCELLED}:
        return ServiceUnavailable({"agent": agent, "reason": "deadline exceeded"})
    return ServiceUnavailable({"agent": agent, "reason": err.message, "rpc_code": err.code})


async def dispatch(
    *, db: AsyncSession, client: HandoffClient, actor: str, body: DispatchRequest
) -> Dispatch:
    """Call the method and record the call; a failure is recorded, then raised as its AURORA
    error (AURORA-4043 for an unknown agent)."""
    started = time.perf_counter()
    options = CallOptions(
        investigation_id=body.investigation_id,
        timeout=body.timeout_seconds,
        idempotency_key=body.idempotency_key,
    )
    record = Dispatch(
        agent=body.agent,
        method=body.method,
        params=body.params,
        investigation_id=body.investigation_id,
        actor=actor,
    )
    failure: AuroraError | None = None
    try:
        result: Any = await client.call(body.agent, body.method, body.params, options)
    except RpcError as err:
        failure = as_platform_error(err, body.agent, body.method)
    except AuroraError as err:
        failure = err
    else:
        record.status, record.result = "ok", result
    record.duration_ms = round((time.perf_counter() - started) * 1000, 3)
    if failure is not None:
        record.status = "error"
        record.error = {"code": failure.code, "message": failure.message, "detail": failure.detail}
    db.add(record)
    await db.commit()
    if failure is not None:
        raise failure
    return record


async def history(*, db: AsyncSession, query: HistoryQuery) -> tuple[list[Dispatch], int]:
    where: list[Any] = []
    for column, value in (
        (Dispatch.agent, query.agent),
        (Dispatch.method, query.method),
        (Dispatch.status, query.status),
        (Dispatch.investigation_id, query.investigation_id),
    ):
        if value is not None:
            where.append(column == value)
    return await fetch_page(
        db, Dispatch, where=where, sort="-created_at", limit=query.limit, offset=query.offset
    )
