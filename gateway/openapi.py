"""The OpenAPI 3.1 document of the gateway, built from its route table, and its HTML reference.

Every operation comes from a :class:`~gateway.routing.Route`: its path and method, its access
rule (the security requirement and ``x-aurora-permission``), its body, query and response models
(JSON Schema from pydantic: validation mode for what clients send, serialization mode for what
they get), its success status and the errors it can answer, each an AURORA error envelope.
Deprecated routes (those with a ``sunset``) are ``deprecated: true``.

WebSocket routes are not operations: OpenAPI cannot describe a socket's messages, and a client
generated from a ``GET`` that expects ``101`` would send a plain request that never upgrades.
They are listed instead under the top-level ``x-aurora-websockets`` extension (path, permission,
query parameters), which SDK generators ignore and the HTML reference shows.

The document and the reference are built once per application, on first request.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from importlib import metadata
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from core.errors import (
    AuroraError,
    AuthenticationRequired,
    BadRequest,
    InvalidCredentials,
    PayloadTooLarge,
    PermissionDenied,
    RequestTimeout,
    TokenExpired,
    ValidationFailed,
)
from core.runtime import SystemMode
from gateway.keys import ROUTE_TABLE, SETTINGS
from gateway.middleware import API_VERSION
from gateway.routing import Access, Route

OPENAPI_VERSION = "3.1.0"
SCHEMAS = "#/components/schemas/"
REF_TEMPLATE = SCHEMAS + "{model}"
JSON = "application/json"
_PATH_PARAMETER = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")


class ErrorBody(BaseModel):
    """What went wrong: a stable AURORA code, a safe message and field-level detail."""

    model_config = ConfigDict(title="ErrorBody")

    code: str = Field(
        pattern=r"^AURORA-\d{4}$",
        examples=["AURORA-4041"],
        description="The AURORA code; its first three digits are the HTTP status",
    )
    message: str = Field(examples=["Case not found"])
    detail: Any = Field(description="Field-level problems, or facts about the error; may be null")
    timestamp: datetime
    request_id: str = Field(description="The X-Request-ID of the request")


class ErrorEnvelope(BaseModel):
    """Every error the API answers, whatever its status."""

    model_config = ConfigDict(title="ErrorEnvelope")

    error: ErrorBody


ENVELOPE = "ErrorEnvelope"

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An access token from POST /api/v1/auth/token, sent as "
        "'Authorization: Bearer <token>'.",
    },
    "apiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "An API key from POST /api/v1/auth/api-keys; it carries the "
        "permissions it was created with.",
    },
}
AUTHENTICATED: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]

HEADERS: dict[str, dict[str, Any]] = {
    "X-API-Version": {
        "description": "The API version.",
        "required": True,
        "schema": {"type": "string", "enum": [API_VERSION]},
    },
    "X-Request-ID": {
        "description": "The request's id: the client's own when it sent a well-formed one.",
        "required": True,
        "schema": {"type": "string"},
    },
    "X-AuroraSOC-Mode": {
        "description": "The system mode: what agents and playbooks may do.",
        "required": True,
        "schema": {"type": "string", "enum": [mode.value for mode in SystemMode]},
    },
    "Deprecation": {
        "description": "Present on a deprecated route.",
        "required": True,
        "schema": {"type": "string", "enum": ["true"]},
    },
    "Sunset": {
        "description": "When a deprecated route will be removed (ISO 8601).",
        "required": True,
        "schema": {"type": "string"},
    },
}
_STANDARD_HEADERS = ("X-API-Version", "X-Request-ID", "X-AuroraSOC-Mode")


def service_version() -> str:
    """The installed package's version (``unknown`` when run from a bare source tree)."""
    try:
        return metadata.version("aurorasoc")
    except metadata.PackageNotFoundError:
        return "unknown"


def path_parameters(path: str) -> list[str]:
    """The names of the ``{name}`` segments of a route path, in order."""
    return _PATH_PARAMETER.findall(path)


def _errors(route: Route) -> list[type[AuroraError]]:
    """What the route can answer besides success: a request malformed below the API (its
    request line, headers or framing: any route), its access rule's, its input's, its own."""
    found: list[type[AuroraError]] = [BadRequest]
    if route.access is not Access.PUBLIC:
        found += [AuthenticationRequired, TokenExpired, InvalidCredentials]
    if route.permission is not None:
        found.append(PermissionDenied)
    has_body = route.body is not None or route.body_media is not None
    if has_body:
        found += [RequestTimeout, PayloadTooLarge]
    if has_body or route.query is not None or path_parameters(route.path):
        found.append(ValidationFailed)
    found += route.errors
    return list(dict.fromkeys(found))


def _by_status(errors: Iterable[type[AuroraError]]) -> dict[int, list[type[AuroraError]]]:
    grouped: dict[int, list[type[AuroraError]]] = {}
    for error in errors:
        grouped.setdefault(error.status, []).append(error)
    return dict(sorted(grouped.items()))


def _summary(route: Route) -> str:
    if route.summary:
        return route.summary
    doc = (route.handler.__doc__ or "").strip()
    if doc:
        return doc.splitlines()[0].strip()
    return route.handler.__name__.replace("_", " ").strip().capitalize()


def _tag(path: str) -> str:
    """The first segment after the API base (``/api/v1/alerts/{id}`` -> ``alerts``,
    ``/api/v1/openapi.json`` -> ``openapi``); ``index`` for the base itself."""
    rest = path.removeprefix("/api/v1").strip("/")
    return rest.split("/", 1)[0].split(".", 1)[0] or "index"


def _operation_ids(routes: list[Route]) -> list[str]:
    """The handler's name, or for one shared by several routes, one made from the method and
    path: SDK generators name their methods after these."""
    names = [route.handler.__name__ for route in routes]
    taken = {name for name in names if names.count(name) > 1}
    return [
        re.sub(r"\W+", "_", f"{route.method.lower()}{route.path}").strip("_")
        if name in taken
        else name
        for name, route in zip(names, routes, strict=True)
    ]


type _Key = tuple[int, Literal["body", "query", "response"]]


def _models(routes: list[Route]) -> tuple[dict[_Key, dict[str, Any]], dict[str, Any]]:
    """The JSON Schema of each route's body, query and response (one definitions table for
    all, so a model used by several routes is described once)."""
    inputs: list[tuple[_Key | str, Literal["validation", "serialization"], TypeAdapter[Any]]] = [
        (ENVELOPE, "serialization", TypeAdapter(ErrorEnvelope))
    ]
    for index, route in enumerate(routes):
        if route.body is not None:
            inputs.append(((index, "body"), "validation", TypeAdapter(route.body)))
        if route.query is not None:
            inputs.append(((index, "query"), "validation", TypeAdapter(route.query)))
        if route.response is not None:
            inputs.append(((index, "response"), "serialization", TypeAdapter(route.response)))
    schemas, definitions = TypeAdapter.json_schemas(inputs, ref_template=REF_TEMPLATE)
    components: dict[str, Any] = definitions.get("$defs", {})
    by_key: dict[_Key, dict[str, Any]] = {}
    for (key, _mode), schema in schemas.items():
        if isinstance(key, tuple):
            by_key[key] = schema
    return by_key, components


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith(SCHEMAS):
        resolved: dict[str, Any] = components[ref.removeprefix(SCHEMAS)]
        return resolved
    return schema


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema: an absent parameter is the model's ``None``, and a query
    string has no null to send."""
    schema = {key: value for key, value in schema.items() if key != "default" or value is not None}
    branches = schema.get("anyOf")
    if isinstance(branches, list):
        kept = [branch for branch in branches if branch != {"type": "null"}]
        rest = {key: value for key, value in schema.items() if key != "anyOf"}
        if len(kept) == 1:
            return {**rest, **kept[0]}
        schema = {**rest, "anyOf": kept}
    return schema


def _parameters(
    route: Route, query: dict[str, Any] | None, components: dict[str, Any]
) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in path_parameters(route.path)
    ]
    if query is not None:
        model = _resolve(query, components)
        required = set(model.get("required", ()))
        for name, schema in model.get("properties", {}).items():
            parameter: dict[str, Any] = {
                "name": name,
                "in": "query",
                "required": name in required,
                "schema": _without_null(schema),
            }
            if "description" in schema:
                parameter["description"] = schema["description"]
            parameters.append(parameter)
    return parameters


def _media_schema(media: str) -> dict[str, Any]:
    """The schema of a body that is not described by a model: each event of a Server-Sent
    Events stream (its name and its data, a JSON document as text), text, or bytes."""
    if media == "text/event-stream":
        return {
            "type": "object",
            "description": "one event of the stream",
            "properties": {
                "event": {"type": "string"},
                "data": {"type": "string", "contentMediaType": JSON},
                "id": {"type": "string"},
                "retry": {"type": "integer"},
            },
            "required": ["data"],
        }
    if media.startswith("text/") or media.endswith(("json", "yaml", "+xml")):
        return {"type": "string"}
    return {"type": "string", "contentMediaType": media}


def _request_body(
    route: Route, body: dict[str, Any] | None, max_body_bytes: int | None
) -> dict[str, Any] | None:
    content: dict[str, Any] = {}
    if body is not None:
        content[JSON] = {"schema": body}
    if route.body_media is not None:
        # An urlencoded form carries the JSON model's fields; a multipart body has its own
        # parts (files), and any other medium is a document of its own.
        if route.body_media == "application/x-www-form-urlencoded" and body is not None:
            schema = body
        elif route.body_media == "multipart/form-data":
            schema = {"type": "object"}
        else:
            schema = _media_schema(route.body_media)
        content[route.body_media] = {"schema": schema}
    if not content:
        return None
    request_body: dict[str, Any] = {"required": True, "content": content}
    limit = route.max_body_bytes or max_body_bytes
    if limit is not None:
        request_body["x-aurora-max-body-bytes"] = limit
    return request_body


def _headers(route: Route, *, routed: bool = True) -> dict[str, Any]:
    """The headers a response carries: the standard ones, and a deprecated route's own, which
    a malformed request (400) may lack: refused before it was routed (a request line too long
    to read), it is no route's."""
    deprecated = route.sunset is not None and routed
    names = [*_STANDARD_HEADERS, *(("Deprecation", "Sunset") if deprecated else ())]
    return {name: {"$ref": f"#/components/headers/{name}"} for name in names}


def _redirect(route: Route, status: int) -> dict[str, Any]:
    """A redirect: no body, where to go in ``Location``."""
    location = {"description": "Where the browser goes next", "schema": {"type": "string"}}
    return {
        "description": HTTPStatus(status).phrase,
        "headers": {**_headers(route), "Location": location},
    }


def _responses(route: Route, response: dict[str, Any] | None) -> dict[str, Any]:
    headers = _headers(route)
    success: dict[str, Any] = {"description": HTTPStatus(route.status).phrase, "headers": headers}
    media = route.response_media or JSON
    if response is not None:
        success["content"] = {media: {"schema": response}}
    elif route.response_media is not None:
        success["content"] = {media: {"schema": _media_schema(media)}}
    if 300 <= route.status < 400:
        success = _redirect(route, route.status)
    responses: dict[str, Any] = {str(route.status): success}
    for status in route.also:
        responses[str(status)] = (
            _redirect(route, status)
            if 300 <= status < 400
            else {**success, "description": HTTPStatus(status).phrase}
        )
    for status, errors in _by_status(_errors(route)).items():
        responses[str(status)] = {
            "description": "; ".join(f"{error.code}: {error.message}" for error in errors),
            "headers": headers if status != 400 else _headers(route, routed=False),
            "content": {JSON: {"schema": {"$ref": SCHEMAS + ENVELOPE}}},
        }
    return responses


def _permission(route: Route) -> str:
    """The permission the route needs, as API keys name it; else ``public`` or
    ``authenticated``."""
    needed = route.permission
    return needed.value if needed is not None else route.access.value


def _operation(
    route: Route,
    operation_id: str,
    schemas: dict[_Key, dict[str, Any]],
    components: dict[str, Any],
    index: int,
    max_body_bytes: int | None,
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": _summary(route),
        "tags": [_tag(route.path)],
        "x-aurora-permission": _permission(route),
        "security": [] if route.access is Access.PUBLIC else AUTHENTICATED,
    }
    if parameters := _parameters(route, schemas.get((index, "query")), components):
        operation["parameters"] = parameters
    if body := _request_body(route, schemas.get((index, "body")), max_body_bytes):
        operation["requestBody"] = body
    operation["responses"] = _responses(route, schemas.get((index, "response")))
    if route.sunset is not None:
        operation["deprecated"] = True
        operation["x-aurora-sunset"] = route.sunset
    return operation


def _stream(
    route: Route, schemas: dict[_Key, dict[str, Any]], components: dict[str, Any], index: int
) -> dict[str, Any]:
    return {
        "path": route.path,
        "summary": _summary(route),
        "x-aurora-permission": _permission(route),
        "parameters": _parameters(route, schemas.get((index, "query")), components),
    }


def _references(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        ref = value.get("$ref")
        if isinstance(ref, str) and ref.startswith(SCHEMAS):
            yield ref.removeprefix(SCHEMAS)
        for child in value.values():
            yield from _references(child)
    elif isinstance(value, list):
        for child in value:
            yield from _references(child)


def _used(roots: Any, components: dict[str, Any]) -> dict[str, Any]:
    """The components reachable from ``roots`` (a query model, inlined as parameters, is not
    kept unless something else refers to it)."""
    seen: set[str] = set()
    pending = list(_references(roots))
    while pending:
        name = pending.pop()
        if name not in seen:
            seen.add(name)
            pending.extend(_references(components[name]))
    return {name: components[name] for name in sorted(seen)}


def build_document(
    routes: Iterable[Route], *, version: str, max_body_bytes: int | None = None
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes`` (WebSocket routes under
    ``x-aurora-websockets``), those not ``published`` left out; ``max_body_bytes`` is the
    limit of a route that sets none."""
    table = [route for route in routes if route.published]
    schemas, components = _models(table)
    http = [(index, route) for index, route in enumerate(table) if not route.is_websocket]
    ids = _operation_ids([route for _, route in http])
    paths: dict[str, dict[str, Any]] = {}
    for (index, route), operation_id in zip(http, ids, strict=True):
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(
            route, operation_id, schemas, components, index, max_body_bytes
        )
    streams = [
        _stream(route, schemas, components, index)
        for index, route in enumerate(table)
        if route.is_websocket
    ]
    tags = sorted({_tag(path) for path in paths})
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "AuroraSOC API",
            "version": version,
            "description": "The AuroraSOC gateway's REST API (API version "
            f"{API_VERSION}). Errors are one envelope whose code is an AURORA code; every "
            "response carries X-API-Version, X-Request-ID and X-AuroraSOC-Mode.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": [{"name": tag} for tag in tags],
        "paths": paths,
        "components": {
            "schemas": _used([paths, streams, {"$ref": SCHEMAS + ENVELOPE}], components),
            "securitySchemes": SECURITY_SCHEMES,
            "headers": HEADERS,
        },
        "x-aurora-websockets": streams,
    }


# The HTML reference: rendered on the server from the document, no script, one inline style
# allowed by its hash.

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;"
    "line-height:1.45;color:#1d1d1f}code{font-family:ui-monospace,monospace}"
    "table{border-collapse:collapse;margin:.4rem 0 1rem}td,th{border:1px solid #ccc;"
    "padding:.2rem .5rem;text-align:left;vertical-align:top}"
    "section{border-top:1px solid #ddd;padding-top:.4rem}"
    ".method{font-weight:700;margin-right:.4rem}.deprecated{color:#a00}"
)
CSP = (
    "default-src 'none'; style-src 'sha256-"
    + base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
    + "'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def _e(text: Any) -> str:
    return html.escape(str(text))


def _type(schema: dict[str, Any]) -> str:
    """A schema as a short type expression, with links to the named schemas."""
    if "$ref" in schema:
        name = str(schema["$ref"]).removeprefix(SCHEMAS)
        return f'<a href="#schema-{_e(name)}">{_e(name)}</a>'
    for combinator in ("anyOf", "oneOf"):
        if combinator in schema:
            return " | ".join(_type(branch) for branch in schema[combinator])
    if "allOf" in schema:
        return " &amp; ".join(_type(branch) for branch in schema["allOf"])
    if "const" in schema:
        return f"<code>{_e(json.dumps(schema['const']))}</code>"
    if "enum" in schema:
        return "one of " + ", ".join(f"<code>{_e(json.dumps(v))}</code>" for v in schema["enum"])
    kind = schema.get("type")
    if kind == "array":
        return "array of " + _type(schema.get("items", {}))
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return "object of " + _type(schema["additionalProperties"])
    if isinstance(kind, list):
        return " | ".join(_e(k) for k in kind)
    if kind is None:
        return "any"
    fmt = schema.get("format") or schema.get("contentMediaType")
    return _e(kind) + (f" ({_e(fmt)})" if fmt else "")


_CONSTRAINTS = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "pattern",
    "default",
)


def _notes(schema: dict[str, Any]) -> str:
    notes = [_e(schema["description"])] if "description" in schema else []
    notes += [
        f"{name}: <code>{_e(json.dumps(schema[name]))}</code>"
        for name in _CONSTRAINTS
        if name in schema
    ]
    return "<br>".join(notes)


def _table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    head = "".join(f"<th>{_e(cell)}</th>" for cell in header)
    body = "\n".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>"


def _parameter_table(parameters: list[dict[str, Any]]) -> str:
    if not parameters:
        return ""
    rows = (
        [
            f"<code>{_e(p['name'])}</code>",
            _e(p["in"]),
            "yes" if p.get("required") else "no",
            _type(p["schema"]),
            _notes(
                {**p["schema"], **({"description": p["description"]} if "description" in p else {})}
            ),
        ]
        for p in parameters
    )
    return "<h4>Parameters</h4>" + _table(["Name", "In", "Required", "Type", "Notes"], rows)


def _content(content: dict[str, Any]) -> str:
    return "<br>".join(
        f"<code>{_e(media)}</code>: {_type(item.get('schema', {}))}"
        for media, item in content.items()
    )


def _render_operation(method: str, path: str, operation: dict[str, Any]) -> str:
    anchor = _e(operation["operationId"])
    deprecated = (
        f'<p class="deprecated">Deprecated: removed on {_e(operation["x-aurora-sunset"])}.</p>'
        if operation.get("deprecated")
        else ""
    )
    body = ""
    if "requestBody" in operation:
        request_body = operation["requestBody"]
        limit = request_body.get("x-aurora-max-body-bytes")
        size = f" (at most {limit:,} bytes)" if limit is not None else ""
        body = f"<h4>Request body{size}</h4><p>" + _content(request_body["content"]) + "</p>"
    responses = _table(
        ["Status", "Description", "Body"],
        (
            [_e(status), _e(response["description"]), _content(response.get("content", {}))]
            for status, response in operation["responses"].items()
        ),
    )
    return (
        f'<section id="op-{anchor}"><h3><span class="method">{_e(method.upper())}</span>'
        f"<code>{_e(path)}</code></h3>\n<p>{_e(operation['summary'])}</p>{deprecated}\n"
        f"<p>Permission: <code>{_e(operation['x-aurora-permission'])}</code></p>\n"
        f"{_parameter_table(operation.get('parameters', []))}{body}"
        f"<h4>Responses</h4>{responses}</section>"
    )


def _render_schema(name: str, schema: dict[str, Any]) -> str:
    required = set(schema.get("required", ()))
    properties = schema.get("properties")
    if properties:
        detail = _table(
            ["Field", "Type", "Required", "Notes"],
            (
                [
                    f"<code>{_e(field)}</code>",
                    _type(sub),
                    "yes" if field in required else "no",
                    _notes(sub),
                ]
                for field, sub in properties.items()
            ),
        )
    else:
        detail = f"<p>{_type(schema)}</p>"
    about = f"<p>{_e(schema['description'])}</p>" if "description" in schema else ""
    return f'<section id="schema-{_e(name)}"><h3>{_e(name)}</h3>{about}{detail}</section>'


def render_reference(document: dict[str, Any]) -> str:
    """The HTML reference of an OpenAPI document built by :func:`build_document`."""
    info = document["info"]
    by_tag: dict[str, list[str]] = {}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            by_tag.setdefault(operation["tags"][0], []).append(
                _render_operation(method, path, operation)
            )
    sections = "\n".join(
        f'<h2 id="tag-{_e(tag)}">{_e(tag)}</h2>\n' + "\n".join(by_tag[tag])
        for tag in sorted(by_tag)
    )
    contents = " · ".join(f'<a href="#tag-{_e(tag)}">{_e(tag)}</a>' for tag in sorted(by_tag))
    streams = "\n".join(
        f'<section><h3><span class="method">WS</span><code>{_e(s["path"])}</code></h3>'
        f"<p>{_e(s['summary'])}</p><p>Permission: <code>{_e(s['x-aurora-permission'])}</code>"
        f"</p>{_parameter_table(s['parameters'])}</section>"
        for s in document.get("x-aurora-websockets", [])
    )
    schemas = "\n".join(
        _render_schema(name, schema) for name, schema in document["components"]["schemas"].items()
    )
    auth = _table(
        ["Scheme", "How"],
        (
            [f"<code>{_e(name)}</code>", _e(scheme.get("description", ""))]
            for name, scheme in document["components"]["securitySchemes"].items()
        ),
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(info["title"])} reference</title>
<style>{_STYLE}</style></head>
<body>
<h1>{_e(info["title"])} {_e(info["version"])}</h1>
<p>{_e(info["description"])}</p>
<p>The machine-readable document: <a href="openapi.json"><code>/api/v1/openapi.json</code></a>
(OpenAPI {_e(document["openapi"])}).</p>
<h2>Authentication</h2>
<p>Routes with a permission other than <code>public</code> take either scheme.</p>
{auth}
<p>{contents} · <a href="#streams">streams</a> · <a href="#schemas">schemas</a></p>
{sections}
<h2 id="streams">Streams (WebSocket)</h2>
<p>Upgrade with a credential in a header, or <code>?access_token=</code> from a browser.</p>
{streams}
<h2 id="schemas">Schemas</h2>
{schemas}
</body></html>
"""


@dataclass(frozen=True, slots=True)
class Published:
    """The serialised document and its HTML reference."""

    document: bytes
    reference: bytes


_PUBLISHED: weakref.WeakKeyDictionary[web.Application, Published] = weakref.WeakKeyDictionary()
"""Built on the first request and kept as long as the application lives (a started
application's state cannot take new keys)."""


def published(app: web.Application) -> Published:
    """The document of ``app``'s route table, built once."""
    found = _PUBLISHED.get(app)
    if found is None:
        document = build_document(
            app[ROUTE_TABLE].values(),
            version=service_version(),
            max_body_bytes=app[SETTINGS].max_body_bytes,
        )
        found = Published(
            document=json.dumps(document, ensure_ascii=False).encode(),
            reference=render_reference(document).encode(),
        )
        _PUBLISHED[app] = found
    return found


async def show_openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document of this gateway."""
    return web.Response(body=published(request.app).document, content_type=JSON)


async def show_reference(request: web.Request) -> web.Response:
    """The API reference, as a page."""
    response = web.Response(body=published(request.app).reference, content_type="text/html")
    response.headers["Content-Security-Policy"] = CSP
    return response
