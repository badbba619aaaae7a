"""Network telemetry ingest (``POST /network-telemetry/ingest``): the SIEM ingest path, kept to
network telemetry and storing each record once.

The body is read, parsed and stored exactly as the SIEM ingest does it (the same workers, the
same store, the same per-line rejections: :func:`gateway.siem.parsing.ingest_body`), with three
differences:

- only network telemetry formats are kept (Suricata EVE, Zeek, NetFlow/IPFIX/sFlow flow
  records): any other event (a Windows event, a syslog line, JSON of no known format) is
  rejected, per record, with the reason;
- a telemetry source switched off in the configuration (``NetworkConfig.sources``) has its
  records rejected per record too, saying so; and a record without a time of its own is
  rejected (it could be neither placed in time nor recognised when sent again);
- each record gets an id derived from its content (:func:`tools.logs.rows.content_id`): one
  the body repeats, or that the store holds already, is not stored again, and the answer
  counts it in ``duplicates``. A body made only of duplicates is a success that stores
  nothing.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Collection
from pathlib import Path
from typing import Final

from core.logstore.store import LogStore
from core.validation import field_error
from gateway.network.configuration import TelemetrySource
from gateway.siem.parsing import BodyInfo, IngestParser, ingest_answer, ingest_body
from gateway.siem.schemas import IngestResult
from tools.logs.payload import FormatGate

TELEMETRY_FORMATS: Final[tuple[str, ...]] = tuple(s.value for s in TelemetrySource)
"""The parsers (``format``) of network telemetry: suricata, zeek, netflow."""


class TelemetryIngestResult(IngestResult):
    """What a telemetry ingest stored: the SIEM ingest's answer (``accepted`` counts the new
    records), and the records not stored again."""

    duplicates: int
    """Records not stored because the body repeats them or they were stored before."""


def telemetry_gate(sources: Collection[TelemetrySource]) -> FormatGate:
    """The records a telemetry ingest keeps: those of the enabled ``sources``, each with a time
    of its own."""
    enabled = {TelemetrySource(s) for s in sources}
    return FormatGate(
        allowed=frozenset(s.value for s in enabled),
        reasons=tuple(
            (
                s.value,
                f"telemetry source {s.value!r} is disabled in the network telemetry configuration",
            )
            for s in TelemetrySource
            if s not in enabled
        ),
        other=(
            "format {format!r} is not network telemetry (accepted: "
            + ", ".join(TELEMETRY_FORMATS)
            + ")"
        ),
        own_time=True,
    )


async def ingest_telemetry(
    chunks: AsyncIterator[bytes],
    *,
    parser: IngestParser,
    store: LogStore,
    spool: Path,
    sources: Collection[TelemetrySource],
    content_type: str | None = None,
    source: str | None = None,
    format: str | None = None,
    filename: str | None = None,
) -> TelemetryIngestResult:
    """Read, parse and store a telemetry body as it arrives (see the module docstring); the new
    records are stored, durably, when this returns.

    ``sources`` are the enabled telemetry sources (``NetworkConfig.sources``); ``source`` the
    ingest label, ``format`` one of :data:`TELEMETRY_FORMATS` or None (detect per record).
    Raises AURORA-4220 (:class:`~core.errors.ValidationFailed`): at ``["query", "format"]`` for
    a format that is not network telemetry; at ``["body"]`` for a body without records; at
    ``["body", line or index]`` for each rejection when no record is valid (and none is a
    duplicate). Nothing is stored then."""
    if format is not None and format.strip().lower() not in TELEMETRY_FORMATS:
        raise field_error(
            ["query", "format"],
            f"not a network telemetry format; expected one of {', '.join(TELEMETRY_FORMATS)}",
            "literal_error",
        )
    started = time.perf_counter()
    stored = await ingest_body(
        chunks,
        parser=parser,
        store=store,
        spool=spool,
        info=BodyInfo(
            content_type=content_type,
            source=source,
            format=format,
            filename=filename,
            gate=telemetry_gate(sources),
            ids="content",
        ),
    )
    answer = ingest_answer(stored, started=started, nothing_new=stored.duplicates > 0)
    return TelemetryIngestResult(**dict(answer), duplicates=stored.duplicates)
