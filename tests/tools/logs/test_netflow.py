"""Flow records as goflow2 and nfdump write them (tools.logs.netflow), detected and normalised
through the same entry points as every other format."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from tools.logs import EventRejected, detect, parse_object
from tools.logs.netflow import flow_collector, transport
from tools.logs.payload import parse_payload

from .conftest import RECEIVED

# goflow2 v2 (README.md "Get started", the JSON formatter's default renderers: names for proto
# and etype, text for addresses), a NetFlow v9 record.
GOFLOW2 = (
    '{"type":"NETFLOW_V9","time_received_ns":1681583295157626000,"sequence_num":2999,'
    '"sampling_rate":100,"sampler_address":"192.168.0.1",'
    '"time_flow_start_ns":1681583290000000000,"time_flow_end_ns":1681583294500000000,'
    '"bytes":1500,"packets":3,"src_addr":"fd01::1","dst_addr":"fd01::2","etype":"IPv6",'
    '"proto":"TCP","src_port":443,"dst_port":50001,"in_if":1,"out_if":2}'
)
# goflow2 with the proto renderer off writes the number; sFlow has start = end = received.
GOFLOW2_SFLOW = (
    '{"type":"SFLOW_5","time_received_ns":1681583295157626000,"sampler_address":"10.0.0.254",'
    '"time_flow_start_ns":1681583295157626000,"time_flow_end_ns":1681583295157626000,'
    '"bytes":70,"packets":1,"src_addr":"10.0.0.5","dst_addr":"10.0.0.9","proto":17,'
    '"src_port":5353,"dst_port":53}'
)
# goflow2 v1.x (README.md of v1.3.7): Go field names, times in epoch seconds.
GOFLOW1 = (
    '{"Type":"IPFIX","TimeFlowEnd":1621820010,"TimeFlowStart":1621820000,'
    '"TimeReceived":1621820011,"Bytes":70,"Packets":1,"SamplingRate":100,'
    '"SamplerAddress":"192.168.1.254","DstAddr":"10.0.0.1","SrcAddr":"192.168.1.1",'
    '"InIf":1,"OutIf":2,"Etype":2048,"EtypeName":"IPv4","Proto":6,"ProtoName":"TCP",'
    '"SrcPort":46344,"DstPort":443,"IPTTL":64,"TCPFlags":16}'
)
# nfdump 1.7 `-o json` (src/output/output_json.c), a bidirectional (IPFIX biflow) record.
NFDUMP17 = """{
  "cnt" : 1,
  "type" : "FLOW",
  "export_sysid" : 1,
  "first" : "2024-05-31T23:59:58.250",
  "last" : "2024-06-01T00:00:01.750",
  "received" : "2024-06-01T00:00:05.000",
  "in_packets" : 12,
  "in_bytes" : 1024,
  "proto" : 6,
  "tcp_flags" : "...AP.SF",
  "src_port" : 51514,
  "dst_port" : 22,
  "fwd_status" : 0,
  "src_tos" : 0,
  "src4_addr" : "10.1.2.3",
  "dst4_addr" : "192.0.2.10",
  "src4_geo" : "",
  "dst4_geo" : "",
  "out_packets" : 10,
  "out_bytes" : 4096,
  "aggr_flows" : 1,
  "ip4_router" : "172.16.0.1",
  "sampled" : 0
}"""
# nfdump 1.6 (bin/output_json.c): t_first / t_last, ICMP without ports.
NFDUMP16 = (
    '{"type":"FLOW","sampled":0,"export_sysid":3,"t_first":"2019-01-02T03:04:05.006",'
    '"t_last":"2019-01-02T03:04:05.006","proto":58,"src6_addr":"2001:db8::1",'
    '"dst6_addr":"2001:db8::2","icmp_type":128,"icmp_code":0,"fwd_status":0,'
    '"tcp_flags":"........","src_tos":0,"in_packets":1,"in_bytes":104}'
)


def parse(text: str, **kwargs: Any) -> Any:
    return parse_object(json.loads(text), raw=text, received=RECEIVED, **kwargs)


def test_goflow2_netflow_v9() -> None:
    assert detect(json.loads(GOFLOW2)) == "netflow"
    event = parse(GOFLOW2)
    assert event.format == "netflow"
    assert event.timestamp == datetime(2023, 4, 15, 18, 28, 10, tzinfo=UTC)  # the flow start
    assert event.values == {
        "event.code": "NETFLOW_V9",
        "event.provider": "goflow2",
        "event.category": "network",
        "event.action": "flow",
        "source.ip": "fd01::1",
        "destination.ip": "fd01::2",
        "source.port": 443,
        "destination.port": 50001,
        "network.transport": "tcp",
        "source.bytes": 1500,
        "source.packets": 3,
        "event.duration": 4_500_000_000,
        "observer.name": "192.168.0.1",
    }
    assert event.fields["sampling_rate"] == "100"
    assert event.fields["in_if"] == "1"
    assert event.source == "netflow"


def test_goflow2_protocol_number_and_sflow() -> None:
    event = parse(GOFLOW2_SFLOW)
    assert event.values["network.transport"] == "udp"
    assert event.values["event.duration"] == 0
    assert event.values["observer.name"] == "10.0.0.254"
    assert event.timestamp == datetime(2023, 4, 15, 18, 28, 15, 157626, tzinfo=UTC)


def test_goflow2_v1_layout() -> None:
    assert flow_collector(json.loads(GOFLOW1)) == "goflow2"
    event = parse(GOFLOW1)
    assert event.timestamp == datetime(2021, 5, 24, 1, 33, 20, tzinfo=UTC)
    assert event.values["event.code"] == "IPFIX"
    assert event.values["source.ip"] == "192.168.1.1"
    assert event.values["destination.port"] == 443
    assert event.values["network.transport"] == "tcp"
    assert event.values["source.bytes"] == 70
    assert event.values["event.duration"] == 10_000_000_000
    assert event.values["observer.name"] == "192.168.1.254"
    assert "destination.bytes" not in event.values


def test_goflow2_without_flow_times_uses_time_received() -> None:
    record = {"type": "NETFLOW_V5", "time_received_ns": 1681583295000000000, "bytes": 5}
    event = parse(json.dumps(record))
    assert event.timestamp == datetime(2023, 4, 15, 18, 28, 15, tzinfo=UTC)
    assert "event.duration" not in event.values


def test_nfdump_17_bidirectional() -> None:
    assert detect(json.loads(NFDUMP17)) == "netflow"
    event = parse(NFDUMP17)
    assert event.timestamp == datetime(2024, 5, 31, 23, 59, 58, 250000, tzinfo=UTC)
    assert event.values == {
        "event.code": "FLOW",
        "event.provider": "nfdump",
        "event.category": "network",
        "event.action": "flow",
        "source.ip": "10.1.2.3",
        "destination.ip": "192.0.2.10",
        "source.port": 51514,
        "destination.port": 22,
        "network.transport": "tcp",
        "source.bytes": 1024,
        "source.packets": 12,
        "destination.bytes": 4096,
        "destination.packets": 10,
        "event.duration": 3_500_000_000,
        "observer.name": "172.16.0.1",
    }
    assert event.fields["tcp_flags"] == "...AP.SF"


def test_nfdump_16_icmpv6() -> None:
    event = parse(NFDUMP16)
    assert event.timestamp == datetime(2019, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)
    assert event.values["network.transport"] == "ipv6-icmp"
    assert event.values["source.ip"] == "2001:db8::1"
    assert event.values["event.duration"] == 0
    assert "source.port" not in event.values
    assert "observer.name" not in event.values  # no router address, no ident


def test_nfdump_ident_is_the_observer_without_a_router_address() -> None:
    record = json.loads(NFDUMP16) | {"ident": "edge-rtr"}
    assert parse(json.dumps(record)).values["observer.name"] == "edge-rtr"


def test_nfdump_json_array_document() -> None:
    """`nfdump -o json` writes one array, pretty-printed: read as a document."""
    body = ("[\n" + NFDUMP17 + ",\n" + NFDUMP16 + "\n]\n").encode()
    result = parse_payload(body, content_type=None, source="edge", format=None)
    assert result.rejected == []
    assert [e.format for e in result.events] == ["netflow", "netflow"]
    assert [e.values["source.bytes"] for e in result.events] == [1024, 104]
    assert {e.source for e in result.events} == {"edge"}


def test_named_format_reads_records_that_detection_would_not() -> None:
    record = {"src_addr": "10.0.0.1", "dst_addr": "10.0.0.2", "bytes": 10, "proto": "UDP"}
    assert detect(record) == "json"
    event = parse(json.dumps(record), format="netflow")
    assert event.format == "netflow"
    assert event.values["network.transport"] == "udp"
    assert event.timestamp == RECEIVED


@pytest.mark.parametrize(
    "record",
    [
        {"type": "IPFIX", "time_flow_start_ns": "soon", "src_addr": "10.0.0.1"},
        {"type": "FLOW", "first": "yesterday", "src4_addr": "10.0.0.1"},
    ],
)
def test_unreadable_flow_time_is_rejected(record: dict[str, Any]) -> None:
    with pytest.raises(EventRejected, match="unreadable flow time"):
        parse(json.dumps(record))


def test_bad_values_stay_in_fields_only() -> None:
    record = json.loads(GOFLOW2) | {"src_addr": "not-an-ip", "bytes": -5, "src_port": 70000}
    event = parse(json.dumps(record))
    assert "source.ip" not in event.values
    assert "source.bytes" not in event.values
    assert "source.port" not in event.values
    assert event.fields["src_addr"] == "not-an-ip"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (6, "tcp"),
        ("17", "udp"),
        (1, "icmp"),
        (47, "gre"),
        (132, "sctp"),
        ("IPv6-ICMP", "ipv6-icmp"),
    ],
)
def test_transport_names(given: object, expected: str) -> None:
    assert transport(given) == expected


def test_unassigned_protocol_number_leaves_transport_empty() -> None:
    assert transport(253) is None
    assert transport(300) is None
    assert transport(None) is None


def test_other_json_is_not_a_flow() -> None:
    assert flow_collector({"type": "FLOW", "bytes": 1}) is None
    assert detect({"src_ip": "10.0.0.1", "bytes": 1}) == "json"
