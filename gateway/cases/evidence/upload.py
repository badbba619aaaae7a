"""Evidence upload bodies read as they arrive, the content streamed into a staged blob.

A JSON upload (``{"name": ..., "content_base64": "...", ...}``) is parsed incrementally: the
``content_base64`` string is base64-decoded piece by piece into the blob while it is read, the
other fields (small: at most :data:`FIELD_BYTES` each) are kept. Nothing holds the whole body or
the whole content, so the memory an upload takes does not grow with its size.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

from core.errors import ValidationFailed
from core.validation import field_error

FIELD_BYTES: Final = 65_536
"""The most a JSON field other than the content may take (the schema's own limits are lower)."""
CONTENT_FIELD: Final = "content_base64"
_WHITESPACE: Final = b" \t\r\n"
_PLAIN: Final = re.compile(rb'[^"\\\x00-\x1f]+')
_BASE64: Final = re.compile(rb"[A-Za-z0-9+/]*")
_SCALAR_END: Final = re.compile(rb"[,}\] \t\r\n]")
_SIMPLE_ESCAPES: Final = {
    ord('"'): b'"',
    ord("\\"): b"\\",
    ord("/"): b"/",
    ord("b"): b"\b",
    ord("f"): b"\f",
    ord("n"): b"\n",
    ord("r"): b"\r",
    ord("t"): b"\t",
}


def _malformed(msg: str, loc: list[str | int] | None = None) -> ValidationFailed:
    return field_error(loc or ["body"], msg, "json_invalid")


def _load(text: bytes) -> Any:
    try:
        return json.loads(text)
    except ValueError as err:  # UnicodeDecodeError included
        raise _malformed("invalid JSON value") from err


class _Base64Sink:
    """Decodes base64 text fed in pieces, as ``b64decode(text, validate=True)`` would decode
    the whole of it, writing the bytes out as whole quanta are complete."""

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self.write = write
        self.pending = b""

    def feed(self, text: bytes) -> None:
        data = self.pending + text
        padding = data.find(b"=")
        decodable = len(data) if padding < 0 else padding
        whole = decodable - decodable % 4
        if _BASE64.fullmatch(data, 0, whole) is None:
            raise binascii.Error("not a base64 character")
        if whole:
            self.write(base64.b64decode(data[:whole]))
        self.pending = data[whole:]
        if len(self.pending) > 8:  # padding is only ever the end
            raise binascii.Error("padding before the end")

    def close(self) -> None:
        if self.pending:
            self.write(base64.b64decode(self.pending, validate=True))
            self.pending = b""


class JsonUpload:
    """Reads a flat JSON object from ``chunks``: the content field into ``write``, the others
    into :attr:`fields`. Malformed JSON, a field that is not a scalar, or content that is not
    base64 is AURORA-4220."""

    def __init__(self, chunks: AsyncIterator[bytes], write: Callable[[bytes], None]) -> None:
        self.chunks = chunks
        self.write = write
        self.buffer = b""
        self.pos = 0
        self.ended = False
        self.fields: dict[str, Any] = {}
        self.has_content = False

    async def _fill(self) -> bool:
        """Read more of the body; False at its end."""
        if self.ended:
            return False
        chunk = await anext(self.chunks, None)
        if chunk is None:
            self.ended = True
            return False
        self.buffer = self.buffer[self.pos :] + chunk
        self.pos = 0
        return True

    async def _peek(self) -> int | None:
        """The next byte that is not whitespace, not consumed (None at the end)."""
        while True:
            while self.pos < len(self.buffer):
                byte = self.buffer[self.pos]
                if byte not in _WHITESPACE:
                    return byte
                self.pos += 1
            if not await self._fill():
                return None

    async def _expect(self, allowed: bytes, what: str) -> int:
        byte = await self._peek()
        if byte is None or byte not in allowed:
            found = "the end of the body" if byte is None else repr(chr(byte))
            raise _malformed(f"invalid JSON: expected {what}, found {found}")
        self.pos += 1
        return byte

    async def _string(self, sink: Callable[[bytes], None] | None, cap: int) -> bytes:
        """The string starting at the current ``"``: its raw JSON text (quotes included) when
        ``sink`` is None, else its decoded bytes handed to ``sink`` piece by piece."""
        await self._expect(b'"', "a string")
        raw = bytearray(b'"')
        while True:
            if self.pos >= len(self.buffer) and not await self._fill():
                raise _malformed("invalid JSON: unterminated string")
            match = _PLAIN.match(self.buffer, self.pos)
            if match is not None:
                piece = match.group()
                self.pos = match.end()
                if sink is not None:
                    sink(piece)
                else:
                    raw += piece
                    if len(raw) > cap:
                        raise field_error(
                            ["body"], f"a field is limited to {cap} bytes", "too_long"
                        )
                continue
            byte = self.buffer[self.pos]
            if byte == ord('"'):
                self.pos += 1
                raw += b'"'
                return bytes(raw)
            if byte != ord("\\"):
                raise _malformed("invalid JSON: control character in a string")
            while len(self.buffer) - self.pos < 6 and await self._fill():
                pass
            escape = self.buffer[self.pos : self.pos + 6]
            if len(escape) < 2:
                raise _malformed("invalid JSON: unterminated string")
            if escape[1] == ord("u"):
                if re.fullmatch(rb"\\u[0-9a-fA-F]{4}", escape) is None:
                    raise _malformed("invalid JSON: bad \\u escape")
                self.pos += 6
                if sink is not None:
                    code = int(escape[2:], 16)
                    sink(
                        chr(code).encode("utf-8", "surrogatepass") if code > 127 else bytes([code])
                    )
                else:
                    raw += escape
                continue
            simple = _SIMPLE_ESCAPES.get(escape[1])
            if simple is None:
                raise _malformed("invalid JSON: bad escape")
            self.pos += 2
            if sink is not None:
                sink(simple)
            else:
                raw += escape[:2]

    async def _scalar(self) -> Any:
        """A number, ``true``, ``false`` or ``null``."""
        while (match := _SCALAR_END.search(self.buffer, self.pos)) is None:
            if len(self.buffer) - self.pos > 64 or not await self._fill():
                break
        end = match.start() if match is not None else len(self.buffer)
        text = self.buffer[self.pos : end]
        self.pos = end
        if len(text) > 64:
            raise _malformed("invalid JSON value")
        return _load(text)

    async def read(self) -> None:
        """Read the whole object (and nothing after it)."""
        await self._expect(b"{", "an object")
        if await self._peek() == ord("}"):
            self.pos += 1
        else:
            while True:
                name = _load(await self._string(None, FIELD_BYTES))
                await self._expect(b":", "':'")
                await self._value(name)
                if await self._expect(b",}", "',' or '}'") == ord("}"):
                    break
        if await self._peek() is not None:
            raise _malformed("invalid JSON: data after the object")

    async def _value(self, name: str) -> None:
        byte = await self._peek()
        if name == CONTENT_FIELD:
            if self.has_content:
                raise _malformed("content_base64 is given twice", ["body", CONTENT_FIELD])
            if byte != ord('"'):
                raise field_error(
                    ["body", CONTENT_FIELD], "Input should be a valid string", "string_type"
                )
            sink = _Base64Sink(self.write)
            try:
                await self._string(sink.feed, 0)
                sink.close()
            except (binascii.Error, ValueError) as err:
                raise field_error(["body", CONTENT_FIELD], "not valid base64") from err
            self.has_content = True
        elif byte == ord('"'):
            self.fields[name] = _load(await self._string(None, FIELD_BYTES))
        elif byte in (ord("{"), ord("[")):
            raise field_error(["body", name], "expected a string", "string_type")
        else:
            self.fields[name] = await self._scalar()
