"""Network telemetry ingest at the service: the SIEM ingest path into a real chDB store, kept to
telemetry formats and enabled sources, each record stored once."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest

from core.errors import ValidationFailed
from core.logstore.store import LogStore
from gateway.network.configuration import TelemetrySource
from gateway.network.telemetry import TelemetryIngestResult, ingest_telemetry
from gateway.siem.parsing import BodyInfo, IngestParser, ingest_body, spool_dir
from tests.conftest import shared_data_dir
from tests.core.logstore.conftest import open_store

ALL = list(TelemetrySource)
SURICATA = (
    '{"timestamp":"2018-03-24T14:37:19.037299-0600","flow_id":1,"event_type":"flow",'
    '"src_ip":"10.0.0.5","src_port":51514,"dest_ip":"10.47.8.150","dest_port":22,'
    '"proto":"TCP","host":"ids-1","flow":{"pkts_toserver":12,"pkts_toclient":10,'
    '"bytes_toserver":2048,"bytes_toclient":4096,"start":"2018-03-24T14:37:19.037299-0600",'
    '"end":"2018-03-24T14:37:21.537299-0600"}}'
)
ZEEK = (
    '{"ts":1591367999.305988,"uid":"CMdzit1AMNsmfAIiQc","id.orig_h":"192.168.4.76",'
    '"id.orig_p":36844,"id.resp_h":"192.168.4.1","id.resp_p":53,"proto":"udp","service":"dns",'
    '"duration":0.06685185432434082,"orig_bytes":62,"resp_bytes":141,"conn_state":"SF",'
    '"history":"Dd","orig_pkts":2,"resp_pkts":2}'
)
NETFLOW = (
    '{"type":"NETFLOW_V9","time_received_ns":1681583295157626000,'
    '"sampler_address":"192.168.0.1","time_flow_start_ns":1681583290000000000,'
    '"time_flow_end_ns":1681583294500000000,"bytes":1500,"packets":3,"src_addr":"10.0.0.1",'
    '"dst_addr":"10.0.0.2","proto":"TCP","src_port":443,"dst_port":50001}'
)
WINDOWS = (
    '{"EventID":4625,"Channel":"Security","Computer":"dc1","TimeCreated":"2024-01-01T00:00:00Z"}'
)
SYSLOG = "<34>Oct 11 22:14:15 host sshd[1]: Failed password for root"


def netflow(n: int) -> str:
    record = json.loads(NETFLOW)
    record["time_flow_start_ns"] += n * 1_000_000
    record["src_port"] = 1024 + n
    return json.dumps(record)


async def chunks_of(body: bytes, size: int = 1 << 16) -> AsyncIterator[bytes]:
    for offset in range(0, len(body), size):
        yield body[offset : offset + size]


def body(lines: Iterable[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
async def store() -> AsyncIterator[LogStore]:
    async with open_store() as opened:
        yield opened


@pytest.fixture
def parser() -> IngestParser:
    return IngestParser(0)


async def ingest(
    store: LogStore,
    parser: IngestParser,
    tmp_path: Path,
    data: bytes,
    *,
    sources: Iterable[TelemetrySource] = ALL,
    **kwargs: str,
) -> TelemetryIngestResult:
    return await ingest_telemetry(
        chunks_of(data),
        parser=parser,
        store=store,
        spool=spool_dir(tmp_path),
        sources=list(sources),
        **kwargs,
    )


async def count(store: LogStore, where: str = "1") -> int:
    result = await store.query(f"SELECT count() FROM {store.table} WHERE {where}")  # noqa: S608
    return int(result.result_rows[0][0])


async def test_each_format_stored_with_its_columns(
    store: LogStore, parser: IngestParser, tmp_path: Path
) -> None:
    result = await ingest(store, parser, tmp_path, body([SURICATA, ZEEK, NETFLOW]), source="lab")
    assert result.accepted == 3
    assert result.duplicates == 0
    assert result.rejected == 0
    assert result.formats == {"suricata": 1, "zeek": 1, "netflow": 1}
    columns = "toString(id), format, source, source_bytes, destination_bytes, observer_name"
    rows = await store.query(f"SELECT {columns} FROM {store.table} ORDER BY format")  # noqa: S608
    assert [row[1:] for row in rows.result_rows] == [
        ("netflow", "lab", 1500, None, "192.168.0.1"),
        ("suricata", "lab", 2048, 4096, "ids-1"),
        ("zeek", "lab", 62, 141, ""),
    ]
    assert sorted(result.ids) == sorted(row[0] for row in rows.result_rows)


async def test_a_record_sent_again_is_not_stored_twice(
    store: LogStore, parser: IngestParser, tmp_path: Path
) -> None:
    first = await ingest(store, parser, tmp_path, body([SURICATA, ZEEK, NETFLOW]))
    # The same records again, re-serialised (key order, spacing) and with a new one.
    again = [json.dumps(json.loads(line), indent=None, sort_keys=True) for line in (ZEEK, NETFLOW)]
    second = await ingest(store, parser, tmp_path, body([*again, netflow(1)]))
    assert first.accepted == 3
    assert second.accepted == 1
    assert second.duplicates == 2
    assert second.formats == {"netflow": 1}
    assert await count(store) == 4
    assert set(first.ids).isdisjoint(second.ids)
    # A body of duplicates only is a success that stores nothing.
    third = await ingest(store, parser, tmp_path, body([SURICATA]))
    assert (third.accepted, third.duplicates, third.ids) == (0, 1, [])
    assert await count(store) == 4


async def test_repeats_within_a_body_and_across_its_pieces(
    store: LogStore, parser: IngestParser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A body cut into several pieces (parsed apart) that repeats records of earlier pieces:
    the first of each is stored, in body order, the rest counted."""
    monkeypatch.setattr("gateway.siem.parsing.PIECE_BYTES", 4096)
    lines = [netflow(n) for n in range(60)]
    data = body([*lines, *lines[:25], lines[3]])
    assert len(data) > 3 * 4096
    result = await ingest(store, parser, tmp_path, data)
    assert result.accepted == 60
    assert result.duplicates == 26
    assert await count(store) == 60
    assert await count(store, "source_port = 1027") == 1
    assert len(set(result.ids)) == 60


async def test_disabled_source_and_other_formats_rejected_per_record(
    store: LogStore, parser: IngestParser, tmp_path: Path
) -> None:
    data = body([ZEEK, NETFLOW, WINDOWS, SYSLOG, SURICATA])
    result = await ingest(
        store, parser, tmp_path, data, sources=[TelemetrySource.ZEEK, TelemetrySource.SURICATA]
    )
    assert result.accepted == 2
    assert result.formats == {"zeek": 1, "suricata": 1}
    reasons = {r.line: r.reason for r in result.rejections}
    assert (
        reasons[2]
        == "telemetry source 'netflow' is disabled in the network telemetry configuration"
    )
    assert reasons[3].startswith("format 'windows' is not network telemetry")
    assert reasons[4].startswith("invalid JSON")  # a text line among JSON lines, as in SIEM
    assert result.rejected == 3
    assert await count(store) == 2
    assert await count(store, "format = 'netflow'") == 0
    with pytest.raises(ValidationFailed) as text:
        await ingest(store, parser, tmp_path, body([SYSLOG, "CEF:0|a|b|1|2|n|5|src=10.0.0.1"]))
    assert [d["msg"] for d in text.value.detail] == [
        "format 'syslog' is not network telemetry (accepted: suricata, zeek, netflow)",
        "format 'cef' is not network telemetry (accepted: suricata, zeek, netflow)",
    ]


async def test_a_record_without_its_own_time_is_rejected(
    store: LogStore, parser: IngestParser, tmp_path: Path
) -> None:
    untimed = '{"uid":"C1","id.orig_h":"10.0.0.1","id.resp_h":"10.0.0.2","proto":"tcp","ts":""}'
    result = await ingest(store, parser, tmp_path, body([untimed, ZEEK]), format="zeek")
    assert result.accepted == 1
    assert [r.reason for r in result.rejections] == ["the record carries no time of its own"]


async def test_nothing_valid_is_aurora_4220_and_stores_nothing(
    store: LogStore, parser: IngestParser, tmp_path: Path
) -> None:
    with pytest.raises(ValidationFailed) as raised:
        await ingest(store, parser, tmp_path, body([WINDOWS, SYSLOG]))
    locs = [d["loc"] for d in raised.value.detail]
    assert locs == [["body", 1], ["body", 2]]
    with pytest.raises(ValidationFailed) as empty:
        await ingest(store, parser, tmp_path, b"\n\n")
    assert empty.value.detail[0]["loc"] == ["body"]
    with pytest.raises(ValidationFailed) as wrong:
        await ingest(store, parser, tmp_path, body([ZEEK]), format="windows")
    assert wrong.value.detail[0]["loc"] == ["query", "format"]
    assert await count(store) == 0
    assert list(spool_dir(tmp_path).iterdir()) == []  # no temporary file left behind


async def test_siem_ingest_is_unchanged(
    store: LogStore, parser: IngestParser, tmp_path: Path
) -> None:
    """The SIEM path keeps random ids, every format, and stores what it is sent each time."""
    data = body([ZEEK, WINDOWS, ZEEK])
    info = BodyInfo(content_type="application/x-ndjson")
    first = await ingest_body(
        chunks_of(data), parser=parser, store=store, spool=spool_dir(tmp_path), info=info
    )
    second = await ingest_body(
        chunks_of(data), parser=parser, store=store, spool=spool_dir(tmp_path), info=info
    )
    assert first.accepted == second.accepted == 3
    assert first.duplicates == second.duplicates == 0
    assert len(set(first.ids) | set(second.ids)) == 6
    assert await count(store) == 6


async def test_zeek_tsv_body_and_json_array_document(
    store: LogStore, parser: IngestParser, tmp_path: Path
) -> None:
    """Bodies read whole (a Zeek ASCII log, nfdump's JSON array) are stored once too."""
    tsv = (
        b"#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n"
        b"#path\tconn\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto"
        b"\torig_bytes\tresp_bytes\n#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tcount"
        b"\tcount\n1521911721.25\tC1\t10.0.0.1\t5000\t10.0.0.2\t22\ttcp\t100\t200\n"
        b"1521911722.25\tC2\t10.0.0.1\t5001\t10.0.0.2\t22\ttcp\t300\t400\n"
    )
    first = await ingest(store, parser, tmp_path, tsv)
    again = await ingest(store, parser, tmp_path, tsv)
    assert (first.accepted, first.duplicates) == (2, 0)
    assert (again.accepted, again.duplicates) == (0, 2)
    array = ("[" + ",\n".join([netflow(1), netflow(2), netflow(1)]) + "]").encode()
    flows = await ingest(store, parser, tmp_path, array)
    assert (flows.accepted, flows.duplicates) == (2, 1)
    assert await count(store) == 4


async def test_shared_wrccdc_rdp_log_twice(
    store: LogStore, parser: IngestParser, tmp_path: Path
) -> None:
    """The shared WRCCDC 2018 rdp log (Zeek JSON): every record stored, failures marked, and
    nothing stored again when it is sent a second time."""
    root = shared_data_dir()
    path = None if root is None else root / "network/zeek_wrccdc_2018/zeek-json/rdp.json.gz"
    if path is None or not path.is_file():
        pytest.skip("shared data absent: the WRCCDC 2018 Zeek capture (../shared/data)")
    data = gzip.decompress(path.read_bytes())
    lines = data.count(b"\n")
    first = await ingest(store, parser, tmp_path, data, source="wrccdc")
    second = await ingest(store, parser, tmp_path, data, source="wrccdc")
    assert first.accepted == lines
    assert (second.accepted, second.duplicates) == (0, lines)
    assert await count(store) == lines
    assert await count(store, "event_outcome = 'failure'") == 2  # SSL_NOT_ALLOWED_BY_SERVER
    assert await count(store, "event_outcome = 'success'") == 44


async def test_in_a_worker_process(store: LogStore, tmp_path: Path) -> None:
    """The gate, the content ids and the excluded ids travel to a worker process."""
    worker = IngestParser(1)
    try:
        first = await ingest(store, worker, tmp_path, body([NETFLOW, ZEEK, WINDOWS]))
        second = await ingest(store, worker, tmp_path, body([netflow(5), NETFLOW, netflow(5)]))
    finally:
        await worker.close()
    assert (first.accepted, first.rejected) == (2, 1)
    assert (second.accepted, second.duplicates) == (1, 2)
    assert await count(store) == 3
