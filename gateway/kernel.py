"""The gateway half of the kernel every domain is written on: the list route and the call of a
service for the request's caller.

The other half lives in ``core``: pages, severity and tags (:mod:`core.schemas`), lookups and
versioned commits (:mod:`core.db`), field errors (:mod:`core.validation`). A new domain is
written the same way as the others, and the route table can describe it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from core.errors import AuroraError
from core.schemas import Page, PageQuery
from core.security.permissions import Permission
from gateway.http import json_response, parse_query, principal
from gateway.keys import DATABASE
from gateway.routing import Access, Route

Fetch = Callable[..., Awaitable[tuple[Sequence[Any], int]]]
"""A service's list function: ``fetch(db=..., query=..., **path_params) -> (rows, total)``."""


async def as_caller[R](
    request: web.Request, call: Callable[..., Awaitable[R]], /, **kwargs: Any
) -> R:
    """``call(db=<a session>, actor=<the caller's username>, **path_params, **kwargs)``: a
    service function that changes something, called for the request's caller in a session of
    its own, with the path's parameters by name (``case_id=``, ``alert_id=``)."""
    async with request.app[DATABASE].session() as db:
        return await call(db=db, actor=principal(request).username, **request.match_info, **kwargs)


def list_route[T: BaseModel](
    path: str,
    fetch: Fetch,
    item: type[T],
    access: Access | Permission,
    *,
    query: type[PageQuery] = PageQuery,
    read: Callable[[Any], T] | None = None,
    errors: tuple[type[AuroraError], ...] = (),
    summary: str = "",
    by_caller: bool = False,
) -> Route:
    """``GET path``: one page of what ``fetch`` finds, as ``Page[item]``.

    The query string is validated into ``query``; the path's parameters are passed to
    ``fetch`` by name (and with ``by_caller``, the authenticated caller as ``caller``, for a
    list that is the caller's own); each row becomes an item through ``read`` (by default
    ``item`` validates it, from its attributes where the model allows)."""
    page_model = Page[item]  # type: ignore[valid-type]
    convert = read if read is not None else item.model_validate

    async def handler(request: web.Request) -> web.Response:
        parsed = parse_query(request, query)
        scope: dict[str, Any] = dict(request.match_info)
        if by_caller:
            scope["caller"] = principal(request)
        async with request.app[DATABASE].session() as db:
            rows, total = await fetch(db=db, query=parsed, **scope)
        return json_response(page_model.of(rows, total, parsed, convert))

    handler.__name__ = handler.__qualname__ = f"list_{item.__name__}"
    return Route(
        "GET",
        path,
        handler,
        access,
        query=query,
        response=page_model,
        errors=errors,
        summary=summary or f"A page of {item.__name__} items",
    )
