"""Decoders for what attackers encode: base64, PowerShell ``-EncodedCommand``, URL and hex.

Two ways in:

- one decoder named by the caller (:func:`decode_base64`, :func:`decode_powershell_command`,
  :func:`decode_url`, :func:`decode_hex`): it returns the decoded text or raises
  :class:`~core.errors.ValidationFailed` saying why it could not;
- :func:`decode_layers`, which peels nested encodings one layer at a time and reports each
  with the method used; it never raises, and returns no layer for text it cannot decode;
- :func:`unfold`, the deobfuscation the detection rules run on: the layers ``decode_layers``
  peels, and what it does not decode (character-code arrays, ``'Sys'+'tem'`` concatenation,
  ``^`` and backtick escapes), recursively.

A decode counts only when it yields text, mostly printable (:data:`PRINTABLE_SHARE`): bytes
that decode to noise are how random words pass for base64, and are dropped.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import unquote, unquote_plus

from pydantic import BaseModel, ConfigDict

from core.errors import ValidationFailed

DecodeMethod = Literal["powershell_encoded_command", "base64", "url", "hex"]

PRINTABLE_SHARE: Final[float] = 0.85
"""Least share of printable characters (tabs and line breaks count) in a decoded text."""
MAX_INPUT_CHARS: Final[int] = 1_000_000
"""Longest input decoded; longer input is refused (explicit decoders) or left alone."""
MIN_EMBEDDED_BASE64: Final[int] = 16
"""Shortest base64 run looked for inside a longer text (shorter ones are mostly words)."""


class DecodeLayer(BaseModel):
    """One peeled layer: how it was decoded, what was decoded, and what came out."""

    model_config = ConfigDict(frozen=True)

    depth: int
    """1 for the first layer decoded from the input."""
    method: DecodeMethod
    encoded: str
    """The encoded part of the previous layer's text (the whole of it, or a run inside it)."""
    text: str
    """The decoded text, the input of the next layer."""


_BASE64_RUN = re.compile(rf"[A-Za-z0-9+/_-]{{{MIN_EMBEDDED_BASE64},}}={{0,2}}")
_BASE64_WHOLE = re.compile(r"^[A-Za-z0-9+/_-]+={0,3}$")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_HEX_ESCAPES = re.compile(r"(?:\\x[0-9A-Fa-f]{2}){2,}")
_HEX_LITERALS = re.compile(r"(?:0x[0-9A-Fa-f]{2}(?:\s*,\s*|\s+)?){2,}")
_HEX_PLAIN = re.compile(r"^(?:0x)?(?:[0-9A-Fa-f]{2}[\s:,-]?)+$")
# A PowerShell parameter: "-", "/" or one of the dashes PowerShell also accepts (U+2013,
# U+2014, U+2015, which attackers use to dodge naive matching), a name, then the value after a
# space or a colon, possibly quoted.
_PS_PARAMETER = re.compile(
    r"(?:^|[\s\"'])[-/\u2013\u2014\u2015](?P<name>[A-Za-z]+)(?::|\s+)"
    r"(?P<quote>[\"']?)(?P<value>[A-Za-z0-9+/=]+)(?P=quote)"
)


def _invalid(where: str, message: str) -> ValidationFailed:
    return ValidationFailed([{"loc": [where], "msg": message, "type": "decode_failed"}])


def is_mostly_printable(text: str, share: float = PRINTABLE_SHARE) -> bool:
    """Whether at least ``share`` of ``text`` is printable (tab, CR and LF included); False
    for empty text."""
    if not text:
        return False
    printable = sum(1 for char in text if char.isprintable() or char in "\t\r\n")
    return printable >= share * len(text) and "\ufffd" not in text


def bytes_to_text(data: bytes) -> str | None:
    """``data`` as text when it is text: UTF-16 (by BOM, or little-endian when every other
    byte is zero, as Windows writes it), UTF-8, or single-byte ASCII-like text; None for binary
    or mostly unprintable content."""
    if not data:
        return None
    candidates: list[str] = []
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        candidates.append("utf-16")
    elif len(data) >= 2 and data[1::2].count(0) >= 0.4 * (len(data) // 2):
        candidates.append("utf-16-le")
    candidates += ["utf-8-sig"]
    for encoding in candidates:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if is_mostly_printable(text):
            return text
    # Single-byte text (cp1252 and the like) passes only when nearly all of it is ASCII.
    text = data.decode("latin-1")
    ascii_printable = sum(1 for char in text if " " <= char <= "~" or char in "\t\r\n")
    return text if ascii_printable >= 0.95 * len(text) else None


def _base64_bytes(token: str) -> bytes | None:
    """The bytes of a standard or URL-safe base64 token, padding optional; None if not one."""
    compact = re.sub(r"\s+", "", token).rstrip("=")
    if not compact or not _BASE64_WHOLE.match(compact) or len(compact) % 4 == 1:
        return None
    if "-" in compact or "_" in compact:
        if "+" in compact or "/" in compact:
            return None  # both alphabets at once: not base64
        compact = compact.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _check_size(text: object, where: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise _invalid(where, "nothing to decode")
    if len(text) > MAX_INPUT_CHARS:
        raise _invalid(where, f"input longer than {MAX_INPUT_CHARS} characters")
    return text.strip()


def decode_base64(text: str) -> str:
    """Decode standard or URL-safe base64 (padding optional, whitespace ignored) to text.
    Raises ValidationFailed when ``text`` is not base64 or does not decode to text."""
    token = _check_size(text, "text")
    data = _base64_bytes(token)
    if data is None:
        raise _invalid("text", "not base64 (standard or URL-safe alphabet)")
    decoded = bytes_to_text(data)
    if decoded is None:
        raise _invalid("text", "base64 decodes to binary data, not text")
    return decoded


def find_encoded_command(command_line: str) -> str | None:
    """The value of PowerShell's ``-EncodedCommand`` in ``command_line``, under any name
    PowerShell accepts for it (``-e``, ``-ec``, ``-en``, ``-enc`` ... ``-encodedcommand``,
    any case, ``-``, ``/`` or a Unicode dash), or None."""
    for match in _PS_PARAMETER.finditer(command_line):
        name = match["name"].lower()
        # PowerShell takes any prefix of "encodedcommand" ("encodeda" and longer prefixes of
        # "-EncodedArguments" are another parameter), and the alias "ec".
        if name == "ec" or "encodedcommand".startswith(name):
            return match["value"]
    return None


def _decode_powershell(value: str) -> str | None:
    data = _base64_bytes(value)
    # UTF-16LE of a script is mostly ASCII: every other byte zero. Without that test, any
    # base64 of 8-bit text "decodes" to printable CJK characters.
    if data is None or len(data) < 2 or data[1::2].count(0) < 0.5 * (len(data) // 2):
        return None
    try:
        text = data.decode("utf-16-le")
    except UnicodeDecodeError:
        return None
    return text if is_mostly_printable(text) else None


def decode_powershell_command(command_line: str) -> str:
    """The script of a PowerShell ``-EncodedCommand`` (base64 of UTF-16LE), found inside a
    full command line, or given alone. Raises ValidationFailed when there is none or it does
    not decode to text."""
    line = _check_size(command_line, "command_line")
    value = find_encoded_command(line)
    if value is None and _BASE64_WHOLE.match(line):
        value = line
    if value is None:
        raise _invalid("command_line", "no -EncodedCommand (or -enc, -e, -ec ...) argument")
    decoded = _decode_powershell(value)
    if decoded is None:
        raise _invalid("command_line", "the encoded command is not base64 of UTF-16LE text")
    return decoded


def decode_url(text: str, *, max_rounds: int = 5, plus_as_space: bool = False) -> str:
    """Percent-decode ``text`` repeatedly (``%2541`` → ``%41`` → ``A``) until nothing changes
    or ``max_rounds`` passes; ``plus_as_space`` also reads ``+`` as a space (form encoding).
    Raises ValidationFailed when ``text`` has no percent-encoding or decodes to non-text."""
    current = _check_size(text, "text")
    if not _PERCENT.search(current):
        raise _invalid("text", "no percent-encoding (%XX) in the text")
    for _ in range(max(1, max_rounds)):
        decoded = _unquote(current, plus_as_space=plus_as_space)
        if decoded == current:
            break
        current = decoded
    if not is_mostly_printable(current):
        raise _invalid("text", "percent-decoding yields non-printable data")
    return current


def _unquote(text: str, *, plus_as_space: bool = False) -> str:
    """One round of percent-decoding: escapes read as UTF-8, or as single bytes (Latin-1)
    when they are not valid UTF-8."""
    unquoter = unquote_plus if plus_as_space else unquote
    try:
        return unquoter(text, errors="strict")
    except UnicodeDecodeError:
        return unquoter(text, encoding="latin-1")


def _hex_bytes(text: str) -> bytes | None:
    compact = re.sub(r"\\x|0x|[\s:,-]", "", text, flags=re.IGNORECASE)
    if len(compact) < 4 or len(compact) % 2 or not re.fullmatch(r"[0-9A-Fa-f]+", compact):
        return None
    return bytes.fromhex(compact)


def decode_hex(text: str) -> str:
    """Decode hex to text: ``\\x41\\x42``, ``0x41 0x42``, ``0x4142`` or plain ``4142`` (spaces,
    colons, commas or dashes between bytes allowed). Raises ValidationFailed when ``text`` is
    not hex or does not decode to text."""
    value = _check_size(text, "text")
    data = _hex_bytes(value)
    if data is None:
        raise _invalid("text", "not hex: expected an even number of hex digits (2 bytes or more)")
    decoded = bytes_to_text(data)
    if decoded is None:
        raise _invalid("text", "hex decodes to binary data, not text")
    return decoded


# -- layers --------------------------------------------------------------------------------


def _peel_powershell(text: str) -> tuple[str, str] | None:
    value = find_encoded_command(text)
    decoded = _decode_powershell(value) if value else None
    return (value, decoded) if value and decoded else None


def _peel_url(text: str) -> tuple[str, str] | None:
    if not _PERCENT.search(text):
        return None
    decoded = _unquote(text)
    return (text, decoded) if decoded != text and is_mostly_printable(decoded) else None


def _peel_hex(text: str) -> tuple[str, str] | None:
    stripped = text.strip()
    if _HEX_PLAIN.match(stripped) and len(re.sub(r"[^0-9A-Fa-f]", "", stripped)) >= 8:
        data = _hex_bytes(stripped)
        decoded = bytes_to_text(data) if data else None
        # Plain hex must also look like more than a number or a hash: decoded text with a
        # letter in it, not a digest that happens to decode to printable bytes.
        if decoded and re.search(r"[A-Za-z]{2}", decoded):
            return stripped, decoded
    for pattern in (_HEX_ESCAPES, _HEX_LITERALS):
        runs = list(pattern.finditer(text))
        pieces: list[str] = []
        last = 0
        for run in runs:
            data = _hex_bytes(run.group())
            decoded = bytes_to_text(data) if data else None
            if decoded is None:
                continue
            pieces += [text[last : run.start()], decoded]
            last = run.end()
        if pieces:
            return text, "".join([*pieces, text[last:]])
    return None


def _peel_base64(text: str) -> tuple[str, str] | None:
    stripped = text.strip()
    candidates = [stripped] if _BASE64_WHOLE.match(re.sub(r"\s+", "", stripped)) else []
    candidates += sorted((run.group() for run in _BASE64_RUN.finditer(text)), key=len, reverse=True)
    for candidate in dict.fromkeys(candidates):
        compact = re.sub(r"\s+", "", candidate)
        # A run of letters alone is more likely a word or an identifier than base64.
        if len(compact) < 8 or compact.isalpha():
            continue
        data = _base64_bytes(compact)
        decoded = bytes_to_text(data) if data else None
        if decoded is not None and decoded.strip():
            return candidate, decoded
    return None


_PEELERS: Final[tuple[tuple[DecodeMethod, Callable[[str], tuple[str, str] | None]], ...]] = (
    ("powershell_encoded_command", _peel_powershell),
    ("url", _peel_url),
    ("hex", _peel_hex),
    ("base64", _peel_base64),
)


def decode_layers(text: str, max_depth: int = 5) -> list[DecodeLayer]:
    """Peel up to ``max_depth`` nested encodings off ``text``, outermost first.

    At each layer the first method that yields printable text wins, in this order: a
    PowerShell ``-EncodedCommand`` in a command line, percent-encoding, hex (the whole text,
    or ``\\x..`` / ``0x..`` runs decoded in place), base64 (the whole text, or the longest run
    of 16+ base64 characters inside it). Stops when nothing decodes or a text repeats. Never
    raises; returns [] for text that is not encoded, not a string, or too long.
    """
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_INPUT_CHARS:
        return []
    layers: list[DecodeLayer] = []
    seen = {text}
    current = text
    for depth in range(1, max(0, max_depth) + 1):
        for method, peel in _PEELERS:
            found = peel(current)
            if found is not None and found[1] not in seen:
                encoded, decoded = found
                layers.append(
                    DecodeLayer(depth=depth, method=method, encoded=encoded, text=decoded)
                )
                seen.add(decoded)
                current = decoded
                break
        else:
            break
    return layers


# -- deobfuscation: encodings and what decode_layers does not decode -----------------------

MAX_LAYERS: Final[int] = 8
"""Most layers :func:`unfold` recovers from one text."""
MAX_UNFOLD_CHARS: Final[int] = 200_000
"""Longest text :func:`unfold` decodes; the rest of a longer one is left alone."""


@dataclass(frozen=True, slots=True)
class Layer:
    """Text recovered from obfuscation: how (``method``, e.g. ``base64 > char_codes``)."""

    method: str
    text: str


_CHAR_CODE_RUN = re.compile(r"\d{1,3}(?:[^\d\s'\"()]{1,3}\d{1,3}){7,}")
_CHAR_CALLS = re.compile(r"\[char\]\s*\(?\s*(\d{1,3})\s*\)?", re.IGNORECASE)
_CONCAT = re.compile(r"(['\"])\s*\+\s*\1")
_CARET = re.compile(r"(?<=[^\s^])\^(?=[^\s^])")
_BACKTICK = re.compile(r"(?<=\w)`(?=[a-zA-Z])")


def decode_char_codes(text: str) -> str | None:
    """Text spelled as decimal character codes (``'73A69H88'.split(...)``, ``[char]73+...``),
    decoded in place; None when ``text`` holds no such run of printable text."""
    pieces: list[str] = []
    last = 0
    for run in _CHAR_CODE_RUN.finditer(text):
        codes = [int(c) for c in re.findall(r"\d{1,3}", run.group())]
        if not all(c in (9, 10, 13) or 32 <= c <= 126 for c in codes):
            continue
        decoded = "".join(chr(c) for c in codes)
        if not re.search(r"[A-Za-z]{3}", decoded):
            continue
        pieces += [text[last : run.start()], decoded]
        last = run.end()
    calls = _CHAR_CALLS.findall(text)
    if not pieces and len(calls) >= 4:
        codes = [int(c) for c in calls]
        if all(32 <= c <= 126 for c in codes):
            return "".join(chr(c) for c in codes)
    if not pieces:
        return None
    result = "".join([*pieces, text[last:]])
    return result if is_mostly_printable(result) else None


def normalise_escapes(text: str) -> str | None:
    """``text`` without string concatenation (``'Sys'+'tem'``), cmd carets and PowerShell
    backtick escapes; None when there were none."""
    result = _BACKTICK.sub("", _CARET.sub("", _CONCAT.sub("", text)))
    return result if result != text else None


def unfold(text: str) -> list[Layer]:
    """The texts hidden in ``text``: each encoding layer ``decode_layers`` peels, character
    codes, and the text with escapes and concatenations undone, recursively, at most
    :data:`MAX_LAYERS` of them, outermost first. [] when nothing is hidden."""
    layers: list[Layer] = []
    seen = {text}
    queue: list[tuple[str, str]] = [("", text)]
    while queue and len(layers) < MAX_LAYERS:
        method, current = queue.pop(0)
        found: list[tuple[str, str]] = []
        # decode_layers peels nested layers itself, each from the one before.
        peeled = ""
        for layer in decode_layers(current[:MAX_UNFOLD_CHARS]):
            peeled = f"{peeled} > {layer.method}" if peeled else layer.method
            found.append((peeled, layer.text))
        codes = decode_char_codes(current)
        if codes is not None:
            found.append(("char_codes", codes))
        escaped = normalise_escapes(current)
        if escaped is not None:
            found.append(("unescape", escaped))
        for how, decoded in found:
            if decoded in seen or not decoded.strip() or len(layers) >= MAX_LAYERS:
                continue
            seen.add(decoded)
            chain = f"{method} > {how}" if method else how
            layers.append(Layer(chain, decoded))
            queue.append((chain, decoded))
    return layers
