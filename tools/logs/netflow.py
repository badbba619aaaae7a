"""Flow records (NetFlow v5/v9, IPFIX, sFlow) as the JSON that common collectors write, to
:class:`LogEvent`.

Two collectors, each in its current and older layouts (field names read from their sources):

- **goflow2** (github.com/netsampler/goflow2), its JSON formatter: from v2.0 snake-case keys
  (``pb/flow.proto``, ``README.md``): ``type`` (``NETFLOW_V5``, ``NETFLOW_V9``, ``IPFIX``,
  ``SFLOW_5``), ``time_received_ns``, ``time_flow_start_ns``, ``time_flow_end_ns`` (epoch
  nanoseconds), ``sampler_address``, ``src_addr``, ``dst_addr``, ``src_port``, ``dst_port``,
  ``proto`` (a name such as ``TCP`` by its default renderer, the number without it), ``bytes``,
  ``packets``, ``sampling_rate``; v1.x wrote the Go field names: ``Type``, ``TimeReceived``,
  ``TimeFlowStart``, ``TimeFlowEnd`` (epoch seconds), ``TimeFlowStartMs``/``TimeFlowEndMs``,
  ``SamplerAddress``, ``SrcAddr``, ``DstAddr``, ``SrcPort``, ``DstPort``, ``Proto`` (number),
  ``ProtoName``, ``Bytes``, ``Packets``. goflow2 exports one direction per record.
- **nfdump** (github.com/phaag/nfdump), ``nfdump -o json`` (and ``-o ndjson``): 1.7
  (``src/output/output_json.c``) writes ``first``, ``last``, ``received``, ``src4_addr`` /
  ``src6_addr``, ``dst4_addr`` / ``dst6_addr``, ``src_port``, ``dst_port``, ``proto`` (number),
  ``in_bytes``, ``in_packets``, ``out_bytes``, ``out_packets`` (the reverse direction of a
  bidirectional flow: nfcapd stores IPFIX reverse elements, RFC 5103 PEN 29305, and NSEL's
  counters there), ``ip4_router`` / ``ip6_router`` (the exporter), ``export_sysid``, ``ident``;
  1.6 (``bin/output_json.c``) wrote ``t_first`` and ``t_last`` instead of ``first`` and
  ``last``. nfdump writes its times in the local time of the machine running it, without an
  offset: they are read as UTC, so run it with ``TZ=UTC``.

Normalised: ``timestamp`` is the flow's **start** (goflow2's flow start, else its end, else the
time received; nfdump's ``first``); ``event.duration`` end minus start in nanoseconds;
``source.*`` the record's (forward) addresses, port, ``bytes``/``packets`` as the exporter
counted them (sampled flows are not scaled: ``sampling_rate`` stays in ``fields``);
``destination.bytes``/``packets`` the reverse counters where the record has them;
``network.transport`` the IANA keyword of the protocol number, lower case (``tcp``,
``ipv6-icmp``); ``observer.name`` the exporter's address (goflow2's sampler address, nfdump's
router address, else its ``ident``). ``event.code`` is the record type as the collector wrote it
(``NETFLOW_V9``, ``IPFIX``, ``FLOW``); ``fields`` holds every key under its own name.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final

from core.logstore.schema import LogEvent
from tools.logs.common import (
    EARLIEST,
    EventRejected,
    Fields,
    Values,
    make_event,
    parse_timestamp,
    to_int,
)

IANA_PROTOCOLS: Final[dict[int, str]] = {
    0: "hopopt",
    1: "icmp",
    2: "igmp",
    4: "ipv4",
    6: "tcp",
    8: "egp",
    9: "igp",
    17: "udp",
    27: "rdp",
    33: "dccp",
    41: "ipv6",
    43: "ipv6-route",
    44: "ipv6-frag",
    46: "rsvp",
    47: "gre",
    50: "esp",
    51: "ah",
    58: "ipv6-icmp",
    59: "ipv6-nonxt",
    60: "ipv6-opts",
    88: "eigrp",
    89: "ospfigp",
    94: "ipip",
    103: "pim",
    112: "vrrp",
    115: "l2tp",
    132: "sctp",
    136: "udplite",
    137: "mpls-in-ip",
}
"""Keywords of the IANA Assigned Internet Protocol Numbers registry (lower case, as ECS's
``network.transport`` wants them) for the protocols flows carry in practice; another number
leaves ``network.transport`` empty (it stays in ``fields``)."""

_GOFLOW2: Final = frozenset({"time_received_ns", "time_flow_start_ns", "sampler_address"})
_GOFLOW1: Final = frozenset({"TimeReceived", "TimeFlowStart", "SamplerAddress"})
_NFDUMP: Final = frozenset({"src4_addr", "src6_addr", "dst4_addr", "dst6_addr", "export_sysid"})
_NS: Final = 1_000_000_000
_MICROSECOND: Final = timedelta(microseconds=1)
_TIME_KEYS: Final = (
    "time_flow_start_ns",
    "time_flow_end_ns",
    "time_received_ns",
    "TimeFlowStart",
    "TimeFlowEnd",
    "TimeFlowStartMs",
    "TimeFlowEndMs",
    "TimeReceived",
    "first",
    "last",
    "t_first",
    "t_last",
    "received",
)


def flow_collector(obj: Mapping[str, Any]) -> str | None:
    """``goflow2`` or ``nfdump`` when ``obj`` is a flow record as that collector writes it
    (see the module docstring), else None."""
    if not _NFDUMP.isdisjoint(obj):
        return "nfdump"
    if not _GOFLOW2.isdisjoint(obj) or not _GOFLOW1.isdisjoint(obj):
        return "goflow2"
    return None


def is_netflow(obj: Mapping[str, Any]) -> bool:
    """Whether ``obj`` is a flow record of goflow2 or nfdump."""
    return flow_collector(obj) is not None


def transport(proto: Any) -> str | None:
    """The IANA keyword (lower case) of a protocol given as its number or its name."""
    number = to_int(proto, bits=8)
    if number is not None:
        return IANA_PROTOCOLS.get(number)
    if isinstance(proto, str) and proto.strip() and len(proto) <= 32:
        return proto.strip().lower()
    return None


def _first(obj: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = obj.get(key)
        if value not in (None, ""):
            return value
    return None


def _epoch_ns(value: Any, scale: int) -> int | None:
    """A positive epoch count in units of ``1/scale`` s as nanoseconds (0 means unset)."""
    number = to_int(value, bits=64)
    if not number:
        return None
    return number * (_NS // scale)


def _goflow2(obj: Mapping[str, Any], values: Values) -> tuple[int | None, int | None, int | None]:
    """Fill ``values`` from a goflow2 record; its (start, end, received) in epoch ns."""
    start = _epoch_ns(obj.get("time_flow_start_ns"), _NS) or _epoch_ns(
        obj.get("TimeFlowStartMs"), 1000
    )
    start = start or _epoch_ns(obj.get("TimeFlowStart"), 1)
    end = _epoch_ns(obj.get("time_flow_end_ns"), _NS) or _epoch_ns(obj.get("TimeFlowEndMs"), 1000)
    end = end or _epoch_ns(obj.get("TimeFlowEnd"), 1)
    received = _epoch_ns(obj.get("time_received_ns"), _NS) or _epoch_ns(obj.get("TimeReceived"), 1)
    values.put("event.code", _first(obj, "type", "Type"))
    values.put("event.provider", "goflow2")
    values.put("source.ip", _first(obj, "src_addr", "SrcAddr"))
    values.put("destination.ip", _first(obj, "dst_addr", "DstAddr"))
    values.put("source.port", _first(obj, "src_port", "SrcPort"))
    values.put("destination.port", _first(obj, "dst_port", "DstPort"))
    values.put("network.transport", transport(_first(obj, "proto", "Proto", "ProtoName")))
    values.put("source.bytes", _first(obj, "bytes", "Bytes"))
    values.put("source.packets", _first(obj, "packets", "Packets"))
    values.put("observer.name", _first(obj, "sampler_address", "SamplerAddress"))
    return start, end, received


def _nfdump_time(value: Any) -> int | None:
    moment = parse_timestamp(value) if isinstance(value, str) else None
    if moment is None:
        return None
    return (moment - EARLIEST) // _MICROSECOND * 1000


def _nfdump(obj: Mapping[str, Any], values: Values) -> tuple[int | None, int | None, int | None]:
    """Fill ``values`` from an nfdump record; its (start, end, received) in epoch ns."""
    start = _nfdump_time(_first(obj, "first", "t_first"))
    end = _nfdump_time(_first(obj, "last", "t_last"))
    received = _nfdump_time(obj.get("received"))
    values.put("event.code", obj.get("type"))
    values.put("event.provider", "nfdump")
    values.put("source.ip", _first(obj, "src4_addr", "src6_addr"))
    values.put("destination.ip", _first(obj, "dst4_addr", "dst6_addr"))
    values.put("source.port", obj.get("src_port"))
    values.put("destination.port", obj.get("dst_port"))
    values.put("network.transport", transport(obj.get("proto")))
    values.put("source.bytes", obj.get("in_bytes"))
    values.put("source.packets", obj.get("in_packets"))
    values.put("destination.bytes", obj.get("out_bytes"))
    values.put("destination.packets", obj.get("out_packets"))
    values.put("observer.name", _first(obj, "ip4_router", "ip6_router", "ident"))
    return start, end, received


def parse_netflow(
    obj: Mapping[str, Any], *, raw: str, source: str | None, received: datetime
) -> LogEvent:
    """A goflow2 or nfdump flow record as a :class:`LogEvent` (see the module docstring).

    A record that carries no time at all is stamped with ``received`` (the ingest time); one
    whose times are all unreadable is :class:`~tools.logs.common.EventRejected`."""
    fields = Fields()
    if not fields.add_leaves(obj):
        fields.add_tree(obj)
    values = Values()
    read = _nfdump if flow_collector(obj) == "nfdump" else _goflow2
    start, end, at = read(obj, values)
    values.put("event.category", "network")
    values.put("event.action", "flow")
    if start is not None and end is not None and end >= start:
        values.put("event.duration", end - start)
    moment = start or end or at
    timestamp = parse_timestamp(moment) if moment is not None else None
    if timestamp is None:
        present = [k for k in _TIME_KEYS if obj.get(k) not in (None, "", 0, "0")]
        if present:
            raise EventRejected(f"unreadable flow time in {present[0]!r}")
    return make_event(
        timestamp=timestamp or received,
        format="netflow",
        source=source,
        raw=raw,
        values=values,
        fields=fields.result(),
    )
