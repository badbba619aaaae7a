"""SIEM ingest parsers: Windows/Sysmon events (JSON or ``.evtx``), Zeek, Suricata EVE, syslog
(RFC 3164 and 5424), CEF and generic JSON, to the log table's
:class:`~core.logstore.schema.LogEvent`.

:func:`parse_payload` reads a whole request body; :func:`parse_object` and :func:`parse_line`
read one event; :func:`detect` and :func:`detect_line` tell a format. The ``fields`` naming rule
is in :mod:`tools.logs.common` (all formats) and :mod:`tools.logs.windows` (Windows names).

Some modules run compiled where the install could build them (``setup.py``);
:mod:`tools.logs.native`, imported first, keeps a stale build from shadowing its edited source.
"""

from tools.logs import native  # noqa: F401  (first: before the compiled modules are imported)
from tools.logs.common import EventRejected
from tools.logs.parse import (
    check_format,
    detect,
    detect_line,
    parse_line,
    parse_object,
)
from tools.logs.payload import ParseResult, Rejected, parse_payload

__all__ = [
    "EventRejected",
    "ParseResult",
    "Rejected",
    "check_format",
    "detect",
    "detect_line",
    "parse_line",
    "parse_object",
    "parse_payload",
]
