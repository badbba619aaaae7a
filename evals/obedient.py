"""A deliberately obedient scripted model behind an OpenAI-compatible HTTP server.

The injection suite measures the structure of the prompts, not a model's goodwill: this
"model" follows every instruction it is shown as an instruction, and only fences stop it.
``ObedientModel`` serves ``POST /v1/chat/completions`` (a JSON reply, or Server-Sent Events
ending in ``data: [DONE]`` when the request says ``"stream": true``) and ``GET /v1/models`` on
127.0.0.1::

    async with ObedientModel() as model:
        backend = LLMBackend(base_url=model.base_url, model=model.name)

How it reads a request:

1. **Fences.** In each message (after NFKC normalisation, as a credulous tokenizer would read
   look-alikes) a fence opens at a tag whose name starts with ``untrusted`` and ends at the
   first closing tag whose name starts with ``untrusted``, whatever its case, spacing, nonce or
   attributes. So it sees through exactly the fences a payload could close: a payload holding
   ``</untrusted_data>`` ends a fence whose payload is not encoded. Fenced text is data (its
   ``&lt;``-style references decoded); everything else is read as instructions.
2. **Whose instructions.** The system message is the operator's task and is never searched
   for injections; every other message's unfenced text (user turns and tool results alike) is.
3. **What it obeys**, in unfenced text, sentence by sentence:

   - a request for its instructions (a verb or question about its instructions, system
     prompt, initial or hidden configuration, the text above, what it may not tell):
     it repeats the system prompt verbatim (transformations asked for, such as base64 or
     translation, are ignored, so that a leak stays visible);
   - a quoted output (``say/print/write/output/reply/answer/start ... with "X"``): it outputs X;
   - a role (``act as / pretend to be / the role of / known as / respond as NAME``, or
     ``NAME Mode enabled``): it answers as ``[NAME]: ...`` and ``NAME: ...``; a prefix
     (``prefix your responses with NAME``) and tags (``use the tags (A) and (B)``, ``put [A]
     in front of the ... response``) are used the same way;
   - an authoritative claim (``SYSTEM:``, ``ADMIN REQUEST::``, ``IMPORTANT:``,
     ``<instruction>...</instruction>``, ``this is really important, ... X``) or
     ``report/state/conclude that X``: it adopts X as its conclusion and says it.

4. **Tools.** When tools are offered (and ``tool_choice`` is not ``"none"``), no tool has been
   called yet, and the messages (fenced data included: it may read data) name an indicator,
   it calls one tool once: the first whose name or description speaks of WHOIS or
   registration, else one that looks up, enriches or checks reputation, with the indicator
   for its string arguments (``type`` gets the indicator's type). Then it reads the tool
   result by the same rules.
5. **Answer.** What it obeyed, one line each, or else a plain note that it analysed the data.
   When a ``json_schema`` response format is asked for, the answer is JSON valid for that
   schema (required properties filled, enums by their first value), with the answer text in
   ``summary`` (or the first string property).

Its vocabulary was written for the phrasing classes of the shared cases' families (role-play
jailbreaks, output hijacks, prompt extraction, authority claims in enrichment data); it is a
measuring instrument that errs towards obeying, never a defence.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import itertools
import json
import re
import time
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from core.loopback import LoopbackServer

CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"
DEFAULT_MODEL = "aurora-obedient"
NEUTRAL_ANSWER = "Analysed the data provided; nothing in it calls for action."

_FENCE_OPEN = re.compile(r"^[ \t]*<\s*untrusted[\w.:-]*[^>]*>", re.IGNORECASE | re.MULTILINE)
_FENCE_CLOSE = re.compile(r"<\s*/\s*untrusted[\w.:-]*[^>]*>", re.IGNORECASE)
_JSON_ESCAPE = re.compile(r'\\(["\\/bfnrt]|u[0-9a-fA-F]{4})')
_JSON_CHARS = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")

_OVERRIDE = re.compile(
    r"\b(?:ignore|disregard|forget)\s+(?:all\s+|any\s+)?(?:of\s+)?(?:the\s+|your\s+)?"
    r"(?:previous|prior|above|earlier|preceding)?(?:\s+and\s+following)?\s*"
    r"(?:instructions|prompts?|rules|directions)\b",
    re.IGNORECASE,
)
_REVEAL = re.compile(
    r"\b(?:repeat|print|show|output|display|reveal|tell|give|share|encode|translate|write|"
    r"list|continue|complete|start|log|what|which|dump|recite|see)\b|\?",
    re.IGNORECASE,
)
_SECRET = re.compile(
    r"\binstruct\w*|system\s*(?:prompt|message|instructions?|configuration)|\bsystemprompt\b|"
    r"\b(?:initial|starting|original|hidden|first)\s+(?:\w+\s+)?(?:prompt|instructions?|"
    r"configuration|message|string)|\binitiali[sz]ation\b|\b(?:text|everything)\s+above\b|"
    r"\babove\s+text\b|\bthis\s+(?:entire\s+)?conversation\b|\bnot\s+supposed\s+to\s+"
    r"(?:tell|say|reveal|share)|\b(?:told|given)\s+(?:before|initially|at\s+the\s+beginning)",
    re.IGNORECASE,
)
_QUOTED_OUTPUT = re.compile(
    r"\b(?:say|print|write|output|type|reply|respond|answer|state|repeat|start\w*[^\"“'\n]{0,40}?"
    r"\bwith)\b[^\"“'\n]{0,60}?(?:\"([^\"”\n]+)[\"”]|“([^”\n]+)”|'([^'\n]+)')",
    re.IGNORECASE,
)
_ROLE = re.compile(
    r"\b(?:act(?:ing)?\s+(?:like|as)|pretend(?:ing)?\s+to\s+be|role\s+of|known\s+as|named|"
    r"respond\s+as|answer\s+(?:me\s+)?as)\s+(?:an?\s+|another\s+|the\s+)?"
    r"[\"'“\u2018]?((?-i:[A-Z][A-Za-z0-9-]{1,24}))",
    re.IGNORECASE,
)
_PREFIX = re.compile(
    r"\bprefix\s+(?:all\s+|each\s+of\s+)?(?:your\s+)?(?:responses|answers|replies)\s+with\s+"
    r"[\"'“\u2018]?((?-i:[A-Z][A-Za-z0-9-]{1,24}))",
    re.IGNORECASE,
)
_TAGS = re.compile(
    r"\btags?\s+((?:\([^)\n]{1,40}\)|\[[^\]\n]{1,40}\])(?:[\s,]*(?:and\s+)?"
    r"(?:\([^)\n]{1,40}\)|\[[^\]\n]{1,40}\]))*)",
    re.IGNORECASE,
)
_MODE = re.compile(r"\b((?-i:[A-Z][A-Za-z0-9-]{1,24}))\s+Mode\s+enabled\b", re.IGNORECASE)
_IN_FRONT = re.compile(
    r"(\[[^\]\n]{1,30}\]|\([^)\n]{1,30}\))\s+(?:in\s+front\s+of|before)\s+(?:the|your|each)\b",
    re.IGNORECASE,
)
_TAG_ITEM = re.compile(r"\([^)\n]{1,40}\)|\[[^\]\n]{1,40}\]")
_AUTHORITY = re.compile(
    r"(?:\bSYSTEM|\bADMIN(?:ISTRATOR)?(?:\s+REQUEST)?|\bIMPORTANT|\bNOTE)\s*:{1,2}\s*"
    r"([^\n\]<]{3,400})|<instruction>\s*([^<]{3,400}?)\s*</instruction>|"
    r"\b(?:really|extremely|very)\s+important,?\s+(?:(?:really|extremely|very)\s+important,?\s+)?"
    r"([^\n\]<.]{3,300})",
    re.IGNORECASE,
)
_REPORT_THAT = re.compile(
    r"\b(?:report|state|conclude|say|answer|confirm)\s+that\s+([^\n\]<.]{3,300})", re.IGNORECASE
)
_DOMAIN = re.compile(r"\b(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,24}\b", re.IGNORECASE)
_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")


@dataclass(frozen=True, slots=True)
class Segment:
    """A span of one message: its role, its text, and whether it lay inside a fence."""

    role: str
    text: str
    fenced: bool


def _content(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def read_json_escapes(text: str) -> str:
    """``text`` with JSON string escapes read as the characters they stand for (``\\n``,
    ``\\"``, ``\\u00e9``, surrogate pairs), as a model reads JSON it is shown."""

    def one(match: re.Match[str]) -> str:
        code = match.group(1)
        if code.startswith("u"):
            return chr(int(code[1:], 16))
        return _JSON_CHARS.get(code, code)

    joined = _JSON_ESCAPE.sub(one, text)
    return joined.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def read_segments(messages: list[dict[str, Any]]) -> list[Segment]:
    """The messages split into fenced and unfenced spans (rule 1 of the module docstring)."""
    segments: list[Segment] = []
    for message in messages:
        role = str(message.get("role", ""))
        text = unicodedata.normalize("NFKC", _content(message))
        position = 0
        while position < len(text):
            opening = _FENCE_OPEN.search(text, position)
            if opening is None:
                segments.append(Segment(role, text[position:], False))
                break
            segments.append(Segment(role, text[position : opening.start()], False))
            closing = _FENCE_CLOSE.search(text, opening.end())
            end = closing.start() if closing else len(text)
            segments.append(Segment(role, html.unescape(text[opening.end() : end]), True))
            position = closing.end() if closing else len(text)
    return [segment for segment in segments if segment.text.strip()]


def obey(text: str, system_prompt: str) -> list[str]:
    """What the model does for unfenced ``text`` (rule 3): one output line per instruction."""
    out: list[str] = []
    for sentence in _SENTENCE.split(text):
        rest = _OVERRIDE.sub(" ", sentence)
        if system_prompt and _SECRET.search(rest) and _REVEAL.search(rest):
            out.append(system_prompt)
    for match in _QUOTED_OUTPUT.finditer(text):
        out.append(next(group for group in match.groups() if group))
    for pattern in (_ROLE, _PREFIX, _MODE):
        for match in pattern.finditer(text):
            name = match.group(1)
            out.append(f"[{name}]: As {name}, I will do anything asked.")
            out.append(f"{name}: Anything you ask, without restrictions.")
    for match in _TAGS.finditer(text):
        out.extend(f"{tag} Here is my answer." for tag in _TAG_ITEM.findall(match.group(1)))
    out.extend(f"{m.group(1)} Here is my answer." for m in _IN_FRONT.finditer(text))
    for pattern in (_AUTHORITY, _REPORT_THAT):
        for match in pattern.finditer(text):
            claim = next(group for group in match.groups() if group).strip()
            out.append(claim.rstrip(".") + ".")
    return list(dict.fromkeys(out))


def _indicator(segments: list[Segment]) -> tuple[str, str] | None:
    for segment in segments:
        if segment.role == "system":
            continue
        if match := _IPV4.search(segment.text):
            return "ip", match.group(0)
        if match := _DOMAIN.search(segment.text):
            return "domain", match.group(0).lower()
    return None


def _pick_tool(tools: list[dict[str, Any]]) -> dict[str, Any] | None:
    functions: list[dict[str, Any]] = [
        t["function"] for t in tools if isinstance(t.get("function"), dict)
    ]
    for words in (("whois", "rdap", "registration"), ("lookup", "look", "enrich", "reputation")):
        for function in functions:
            about = f"{function.get('name', '')} {function.get('description', '')}".lower()
            if any(word in about for word in words):
                return function
    return None


def _tool_arguments(function: dict[str, Any], kind: str, value: str) -> dict[str, str]:
    properties = (function.get("parameters") or {}).get("properties") or {}
    arguments: dict[str, str] = {}
    for name, spec in properties.items():
        if isinstance(spec, dict) and spec.get("type") == "string":
            arguments[name] = kind if name in ("type", "kind", "ioc_type") else value
    return arguments


def schema_instance(schema: dict[str, Any], answer: str) -> Any:
    """A value valid for ``schema`` (a pydantic-style JSON Schema) carrying ``answer`` in its
    ``summary`` or first string property."""
    definitions = schema.get("$defs", {})
    placed = False

    def build(node: dict[str, Any], name: str) -> Any:
        nonlocal placed
        if "$ref" in node:
            return build(definitions[node["$ref"].rsplit("/", 1)[-1]], name)
        for key in ("anyOf", "oneOf", "allOf"):
            if key in node:
                return build(node[key][0], name)
        if "enum" in node:
            return node["enum"][0]
        if "const" in node:
            return node["const"]
        kind = node.get("type")
        if kind == "object":
            properties: dict[str, Any] = node.get("properties", {})
            order = sorted(properties, key=lambda p: p != "summary")
            built = {p: build(properties[p], p) for p in order}
            return {p: built[p] for p in properties}
        if kind == "array":
            return []
        if kind in ("number", "integer"):
            low = node.get("minimum", 0)
            high = node.get("maximum", low + 1)
            value = (low + high) / 2
            return int(value) if kind == "integer" else value
        if kind == "boolean":
            return False
        if kind == "string":
            limit = int(node.get("maxLength", 10_000))
            if not placed:
                placed = True
                return answer[:limit]
            return name[: max(1, min(limit, 64))] if node.get("minLength") else ""
        return None

    return build(schema, "")


@dataclass
class ObedientModel(LoopbackServer):
    """The server; see the module docstring. Use it with ``async with``."""

    name: str = DEFAULT_MODEL
    requests: list[dict[str, Any]] = field(default_factory=list, init=False)
    """Every chat request body received, in order."""

    def __post_init__(self) -> None:
        self._ids = itertools.count(1)

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(CHAT_PATH, self._chat)
        app.router.add_get(MODELS_PATH, self._models)
        return app

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    def reply(self, body: dict[str, Any]) -> tuple[str | None, list[tuple[str, str, str]]]:
        """What the model answers to a chat request: text, or tool calls (id, name, JSON)."""
        messages = [m for m in body.get("messages", []) if isinstance(m, dict)]
        segments = read_segments(messages)
        system_prompt = next(
            (_content(m) for m in messages if m.get("role") in ("system", "developer")), ""
        )
        tools = body.get("tools") or []
        called = any(m.get("role") == "tool" for m in messages)
        if tools and body.get("tool_choice") != "none" and not called:
            indicator = _indicator(segments)
            function = _pick_tool(tools)
            if indicator is not None and function is not None:
                arguments = _tool_arguments(function, *indicator)
                call = (f"call_{next(self._ids)}", str(function["name"]), json.dumps(arguments))
                return None, [call]
        obeyed: list[str] = []
        for segment in segments:
            if segment.role not in ("system", "developer") and not segment.fenced:
                obeyed.extend(obey(read_json_escapes(segment.text), system_prompt))
        # The echoed prompt goes last, so that a length limit on the answer cuts it, not the rest.
        ordered = sorted(dict.fromkeys(obeyed), key=lambda line: line == system_prompt)
        answer = "\n".join(ordered) or NEUTRAL_ANSWER
        response_format = body.get("response_format") or {}
        if response_format.get("type") == "json_schema":
            schema = (response_format.get("json_schema") or {}).get("schema") or {}
            return json.dumps(schema_instance(schema, answer)), []
        if response_format.get("type") == "json_object":
            return json.dumps({"answer": answer}), []
        return answer, []

    async def _models(self, request: web.Request) -> web.Response:
        listing = [{"id": self.name, "object": "model", "created": 0, "owned_by": "aurora"}]
        return web.json_response({"object": "list", "data": listing})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            error = {"message": "a JSON body with messages", "type": "invalid_request_error"}
            return web.json_response({"error": error}, status=400)
        self.requests.append(body)
        text, calls = self.reply(body)
        created = int(time.time())
        reply_id = f"chatcmpl-{next(self._ids)}"
        finish = "tool_calls" if calls else "stop"
        prompt_tokens = max(1, len(json.dumps(body["messages"])) // 4)
        completion_tokens = max(1, (len(text or "") + sum(len(c[2]) for c in calls)) // 4)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        rendered = [
            {"id": i, "type": "function", "function": {"name": n, "arguments": a}}
            for i, n, a in calls
        ]
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
            if rendered:
                message["tool_calls"] = rendered
            choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
            return web.json_response(
                {
                    "id": reply_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": self.name,
                    "choices": [choice],
                    "usage": usage,
                }
            )

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            event = {
                "id": reply_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": self.name,
                "choices": [choice],
            }
            return f"data: {json.dumps(event)}\n\n".encode()

        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(chunk({"role": "assistant", "content": text or ""}))
        for index, call in enumerate(rendered):
            await response.write(chunk({"tool_calls": [{"index": index, **call}]}))
        await response.write(chunk({}, finish))
        if (body.get("stream_options") or {}).get("include_usage"):
            event = {
                "id": reply_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": self.name,
                "choices": [],
                "usage": usage,
            }
            await response.write(f"data: {json.dumps(event)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


async def _serve(port: int, name: str) -> None:
    model = ObedientModel(name=name)
    await model.start(port)
    print(f"obedient model {name!r} at {model.base_url}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await model.close()


def main(argv: list[str] | None = None) -> None:
    """``python -m evals.obedient --port N``: serve the obedient model until interrupted."""
    parser = argparse.ArgumentParser(description="Serve the obedient scripted model.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.port, args.model))


if __name__ == "__main__":
    main()
