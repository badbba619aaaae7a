"""ArcSight Common Event Format (CEF) to :class:`LogEvent`, alone or inside a syslog line.

``CEF:Version|Device Vendor|Device Product|Device Version|Device Event Class ID|Name|Severity|
Extension``. Escaping follows the CEF specification: in the header ``\\|`` is a pipe and
``\\\\`` a backslash; in the extension ``\\=`` is an equals sign, ``\\\\`` a backslash and
``\\n``/``\\r`` line breaks. Extension values run to the space before the next ``key=``, so they
may hold spaces. An unknown escape is kept as written (sloppy producers leave Windows paths
unescaped).

``fields``: the header as ``cefVersion``, ``deviceVendor``, ``deviceProduct``,
``deviceVersion``, ``deviceEventClassId``, ``name``, ``severity`` (the ArcSight dictionary's
names), every extension key as written (``src``, ``suser``, ``cs1``, ``cs1Label``...), and each
labelled custom field under its label too (``cs1Label=Threat`` gives ``fields['Threat']``)
unless that name is taken. Inside syslog, the syslog header's ``syslog.*`` fields come too.

Normalised values: ``event.code`` the Device Event Class ID, ``rule.name`` the Name,
``event.provider`` vendor and product, ``event.severity`` the Severity (0-10; the words Low,
Medium, High, Very-High read as 3, 6, 8, 10), and from the extension src/spt/dst/dpt, suser
(else duser) and sntdom, dvchost (else the syslog host, else shost), dvc, request,
requestMethod, requestClientApplication, act, outcome, proto, app, fname, filePath, fileHash,
sproc/spid, msg (else the Name). The time is ``rt``, else ``start``, else ``end`` (epoch
milliseconds, ISO 8601, or ``MMM dd [yyyy] HH:mm:ss[.SSS] [UTC|GMT|Z|+hh:mm]``), else the syslog
header's, else the ingest time.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Final

from core.logstore.schema import LogEvent
from tools.logs.common import (
    EventRejected,
    Fields,
    Values,
    basename,
    first_timestamp,
    make_event,
    parse_timestamp,
)
from tools.logs.syslog import SyslogHeader, add_header, infer_year

HEADER_NAMES: Final[tuple[str, ...]] = (
    "cefVersion",
    "deviceVendor",
    "deviceProduct",
    "deviceVersion",
    "deviceEventClassId",
    "name",
    "severity",
)
_KEY: Final[re.Pattern[str]] = re.compile(r"(?:^|(?<=\s))([A-Za-z0-9_.\[\]-]+)=")
_ESCAPE: Final[re.Pattern[str]] = re.compile(r"\\(.)", re.DOTALL)
_EXTENSION_ESCAPES: Final[dict[str, str]] = {
    "\\": "\\",
    "=": "=",
    "n": "\n",
    "r": "\r",
    "|": "|",
}
_SEVERITY_WORDS: Final[dict[str, int]] = {"low": 3, "medium": 6, "high": 8, "very-high": 10}
_LABELLED: Final[re.Pattern[str]] = re.compile(r"(c[sn]\d|cfp\d|flexString\d|flexNumber\d)Label")
_CEF_TIME: Final[re.Pattern[str]] = re.compile(
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (\d{1,2})(?: (\d{4}))? "
    r"(\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?(?: (UTC|GMT|Z|[+-]\d\d:?\d\d))?"
)
_MONTHS: Final[tuple[str, ...]] = (
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
)  # fmt: skip


def is_cef(text: str) -> bool:
    """Whether ``text`` starts a CEF record."""
    return text.startswith("CEF:")


def split_header(text: str) -> tuple[list[str], str]:
    """The seven header fields of a CEF record (unescaped) and the raw extension text.

    Raises :class:`EventRejected` when fewer than seven unescaped pipes end the header."""
    parts: list[str] = []
    current: list[str] = []
    pos, size = 0, len(text)
    while pos < size and len(parts) < 7:
        char = text[pos]
        if char == "\\" and pos + 1 < size and text[pos + 1] in "|\\":
            current.append(text[pos + 1])
            pos += 2
            continue
        if char == "|":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        pos += 1
    if len(parts) < 7:
        raise EventRejected(f"CEF header has {len(parts)} of its 7 '|'-separated fields")
    return parts, text[pos:]


def _unescape(value: str) -> str:
    return _ESCAPE.sub(lambda m: _EXTENSION_ESCAPES.get(m.group(1), m.group(0)), value)


def parse_extension(text: str) -> dict[str, str]:
    """The ``key=value`` pairs of a CEF extension, values unescaped (later duplicates win)."""
    matches = list(_KEY.finditer(text))
    found: dict[str, str] = {}
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        found[match.group(1)] = _unescape(text[match.end() : end].rstrip(" \t"))
    return found


def _cef_time(value: str | None, received: datetime) -> datetime | str | None:
    """A CEF time value as a datetime; the text itself when it is not readable."""
    if value is None or not value.strip():
        return None
    moment = parse_timestamp(value)
    if moment is not None:
        return moment
    match = _CEF_TIME.fullmatch(value.strip())
    if match is None:
        return value
    month, day = _MONTHS.index(match.group(1)) + 1, int(match.group(2))
    clock = (
        int(match.group(4)),
        int(match.group(5)),
        int(match.group(6)),
        int((match.group(7) or "0").ljust(6, "0")),
    )
    if match.group(3):
        try:
            result = datetime(int(match.group(3)), month, day, *clock, tzinfo=UTC)
        except ValueError:
            return value
    else:
        inferred = infer_year(month, day, clock, received)
        if inferred is None:
            return value
        result = inferred
    zone = match.group(8)
    if zone and zone[0] in "+-":
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        result -= offset if zone[0] == "+" else -offset
    return result


def _severity(text: str) -> int | None:
    word = text.strip().lower()
    if word in _SEVERITY_WORDS:
        return _SEVERITY_WORDS[word]
    return int(word) if word.isdigit() and int(word) <= 10 else None


def _outcome(text: str | None) -> str | None:
    if not text:
        return None
    word = text.strip().lower()
    if word.startswith(("succ", "allow", "ok")):
        return "success"
    if word.startswith(("fail", "den", "block", "reject")):
        return "failure"
    return "unknown"


def parse_cef(
    text: str,
    *,
    raw: str,
    source: str | None,
    received: datetime,
    header: SyslogHeader | None = None,
) -> LogEvent:
    """A CEF record (``text`` starts with ``CEF:``) as a :class:`LogEvent`; ``header`` is the
    syslog header it came in, if any. Raises :class:`EventRejected` for a malformed header."""
    if not is_cef(text):
        raise EventRejected("not a CEF record: it does not start with 'CEF:'")
    parts, extension_text = split_header(text)
    parts[0] = parts[0][4:]
    extension = parse_extension(extension_text)
    values = Values()
    fields = Fields()
    if header is not None:
        add_header(header, values, fields)
    for name, value in zip(HEADER_NAMES, parts, strict=True):
        fields.add(name, value)
    for key, value in extension.items():
        fields.add(key, value)
    for key, label in extension.items():
        match = _LABELLED.fullmatch(key)
        if match and label and match.group(1) in extension:
            fields.add(label, extension[match.group(1)], replace=False)

    def ext(key: str) -> str | None:
        value = extension.get(key)
        return value if value else None

    vendor, product = parts[1], parts[2]
    # The CEF header speaks for the event; the syslog header only fills what it leaves empty.
    overrides = Values()
    overrides.put("event.code", parts[4])
    overrides.put("rule.name", parts[5])
    overrides.put("event.provider", f"{vendor} {product}".strip())
    overrides.put("event.severity", _severity(parts[6]))
    overrides.put("host.name", ext("dvchost"))
    overrides.put("host.ip", ext("dvc"))
    overrides.put("process.name", ext("sproc"))
    overrides.put("process.pid", ext("spid"))
    values.data.update(overrides.data)
    values.put("host.name", ext("shost"))
    values.put("source.ip", ext("src"))
    values.put("source.port", ext("spt"))
    values.put("destination.ip", ext("dst"))
    values.put("destination.port", ext("dpt"))
    for user_key, domain_key in (("suser", "sntdom"), ("duser", "dntdom")):
        if values.put("user.name", ext(user_key)):
            values.put("user.domain", ext(domain_key))
    values.put("url.full", ext("request"))
    values.put("http.request.method", ext("requestMethod"))
    values.put("user_agent.original", ext("requestClientApplication"))
    values.put("event.action", ext("act"))
    values.put("event.outcome", _outcome(ext("outcome")))
    transport = ext("proto")
    values.put("network.transport", transport.lower() if transport else None)
    protocol = ext("app")
    values.put("network.protocol", protocol.lower() if protocol else None)
    file_path = ext("filePath")
    values.put("file.path", file_path)
    values.put("file.name", ext("fname") or (basename(file_path) if file_path else None))
    file_hash = ext("fileHash")
    if file_hash and len(file_hash) == 64:
        values.put("file.hash.sha256", file_hash)
    elif file_hash and len(file_hash) == 32:
        values.put("file.hash.md5", file_hash)
    values.put("process.name", ext("dproc"))
    values.put("process.pid", ext("dpid"))
    values.put("message", ext("msg") or parts[5])

    candidates = [(key, _cef_time(ext(key), received)) for key in ("rt", "start", "end")]
    if header is not None and header.timestamp is not None:
        candidates.append(("syslog timestamp", header.timestamp))
    timestamp, _ = first_timestamp(candidates, received=received)
    return make_event(
        timestamp=timestamp,
        format="cef",
        source=source,
        raw=raw,
        values=values,
        fields=fields.result(),
    )
