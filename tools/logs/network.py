"""Network sensor logs to :class:`LogEvent`: Zeek JSON logs and Suricata EVE JSON.

Zeek: one JSON object per log line, as Zeek's JSON writer emits it (``id.orig_h`` with literal
dots, or nested ``{"id": {"orig_h": ...}}``; ``ts`` in epoch seconds or ISO 8601). The log type
(``conn``, ``dns``, ``http``, ``ssl``, ``files``, ``notice``, ...) is taken from ``_path`` when
the sender kept it, else inferred from the keys that only that log has; it becomes
``event.code``. ``fields`` holds every leaf under Zeek's own names (``id.orig_h``, ``query``).
A conn log fills the flow columns: ``orig_bytes``/``orig_pkts`` are ``source.bytes``/
``source.packets``, ``resp_bytes``/``resp_pkts`` the ``destination`` ones, and ``duration``
(seconds, in any log that has it) ``event.duration`` in nanoseconds. ``observer.name`` is the
sensor: ``_system_name``, ``_node_name``, ``_node`` or ``peer``, the first present.
``event.outcome`` is set where the log says how an authentication ended: ``auth_success`` (ssh),
``success`` (ntlm, kerberos, mysql...), an rdp ``result`` (``Success``, or one of Zeek's
negotiation failures and refusals; ``encrypted`` says nothing), an ftp ``reply_code`` (230
logged in, 530 not logged in), an smtp ``last_reply`` (235 authenticated, 535 credentials
invalid, RFC 4954), an http ``status_code`` 401 or 407 (credentials refused or missing: a 403
is an authorisation refusal, not a login attempt, and is left alone).

Suricata: one EVE object; ``event_type`` is ``event.code``; ``host`` (its ``sensor-name``) is
``observer.name`` as well as ``host.name``. A ``flow`` record fills the flow columns from its
``flow`` object (``bytes_toserver``/``pkts_toserver`` for the source, ``*_toclient`` for the
destination, ``end`` minus ``start`` for the duration), a ``netflow`` record (one direction)
from its ``netflow`` object; other records (an alert's ``flow`` object counts the flow so far)
leave them empty, so that summing volumes over flows counts each flow once. For alerts
``rule.name`` is ``alert.signature`` and ``event.severity`` is ``alert.severity`` as Suricata
writes it (its scale runs the other way from syslog's: 1 is the most severe). ``fields`` holds
every leaf under EVE's names, nested keys joined with dots (``alert.signature_id``,
``http.hostname``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final

from core.logstore.schema import LogEvent
from tools.logs.common import (
    Fields,
    Values,
    basename,
    first_timestamp,
    make_event,
    parse_timestamp,
)

_MICROSECOND: Final = timedelta(microseconds=1)

# (log type, keys that only it has). Checked in order; the first whose keys are all there wins.
_ZEEK_LOGS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("conn", ("conn_state",)),
    ("conn", ("history", "orig_pkts")),
    ("dns", ("query", "qtype_name")),
    ("dns", ("trans_id", "rcode")),
    ("dns", ("trans_id", "query")),
    ("http", ("trans_depth", "method")),
    ("http", ("trans_depth", "status_code")),
    ("http", ("uri", "user_agent")),
    ("ssl", ("cipher", "established")),
    ("ssl", ("server_name", "established")),
    ("x509", ("certificate.serial",)),
    ("files", ("fuid", "mime_type")),
    ("files", ("fuid", "seen_bytes")),
    ("notice", ("note",)),
    ("weird", ("name", "notice", "peer")),
    ("ssh", ("auth_success",)),
    ("ssh", ("auth_attempts",)),
    ("smtp", ("mailfrom",)),
    ("smtp", ("helo",)),
    ("ftp", ("command", "reply_code")),
    ("rdp", ("security_protocol",)),
    ("rdp", ("cookie",)),
    ("dhcp", ("lease_time",)),
    ("dhcp", ("assigned_addr",)),
    ("kerberos", ("request_type",)),
    ("ntlm", ("domainname", "username")),
    ("smb_files", ("action", "path", "name")),
    ("smb_mapping", ("share_type",)),
    ("dce_rpc", ("endpoint", "operation")),
    ("tunnel", ("tunnel_type",)),
    ("software", ("software_type",)),
)
_ZEEK_CATEGORY: Final[dict[str, tuple[str, str]]] = {
    "conn": ("network", "network_connection"),
    "dns": ("dns", "dns_query"),
    "http": ("network", "http_request"),
    "ssl": ("network", "tls_handshake"),
    "x509": ("network", "certificate"),
    "files": ("file", "file_transfer"),
    "notice": ("intrusion_detection", "notice"),
    "weird": ("network", "protocol_anomaly"),
    "ssh": ("network", "ssh_session"),
    "smtp": ("network", "smtp_transaction"),
    "ftp": ("network", "ftp_command"),
    "rdp": ("network", "rdp_session"),
    "dhcp": ("network", "dhcp_lease"),
    "kerberos": ("authentication", "kerberos_request"),
    "ntlm": ("authentication", "ntlm_authentication"),
    "smb_files": ("file", "smb_file_access"),
    "smb_mapping": ("network", "smb_share_mapping"),
    "dce_rpc": ("network", "dce_rpc_call"),
    "tunnel": ("network", "tunnel"),
    "software": ("host", "software_seen"),
}
# Application protocol of the logs that are about one protocol; "ssl" is TLS.
_ZEEK_PROTOCOL: Final[dict[str, str]] = {
    "dns": "dns",
    "http": "http",
    "ssl": "tls",
    "ssh": "ssh",
    "smtp": "smtp",
    "ftp": "ftp",
    "rdp": "rdp",
    "dhcp": "dhcp",
    "kerberos": "kerberos",
    "ntlm": "ntlm",
    "smb_files": "smb",
    "smb_mapping": "smb",
    "dce_rpc": "dce_rpc",
}
_SURICATA_CATEGORY: Final[dict[str, tuple[str, str]]] = {
    "alert": ("intrusion_detection", "alert"),
    "drop": ("intrusion_detection", "drop"),
    "anomaly": ("network", "protocol_anomaly"),
    "dns": ("dns", "dns_query"),
    "http": ("network", "http_request"),
    "tls": ("network", "tls_handshake"),
    "ssh": ("network", "ssh_session"),
    "smtp": ("network", "smtp_transaction"),
    "flow": ("network", "flow"),
    "netflow": ("network", "flow"),
    "fileinfo": ("file", "file_transfer"),
    "stats": ("configuration", "sensor_stats"),
}


def _zeek_id(obj: Mapping[str, Any]) -> bool:
    nested = obj.get("id")
    return "id.orig_h" in obj or (isinstance(nested, dict) and "orig_h" in nested)


def is_zeek(obj: Mapping[str, Any]) -> bool:
    """Whether ``obj`` looks like a line of a Zeek JSON log."""
    return "ts" in obj and ("_path" in obj or "uid" in obj or "fuid" in obj or _zeek_id(obj))


def is_suricata(obj: Mapping[str, Any]) -> bool:
    """Whether ``obj`` looks like a Suricata EVE record."""
    return isinstance(obj.get("event_type"), str) and (
        "src_ip" in obj or "flow_id" in obj or "timestamp" in obj
    )


def zeek_log_type(flat: Mapping[str, str]) -> str | None:
    """The Zeek log an object (flattened) comes from, or None when no key set matches."""
    path = flat.get("_path")
    if path:
        return path
    for log, keys in _ZEEK_LOGS:
        if all(key in flat for key in keys):
            return log
    if "fuid" in flat:
        return "files"
    if "proto" in flat and "id.orig_h" in flat:
        return "conn"
    return None


def _str(flat: Mapping[str, str], key: str) -> str | None:
    value = flat.get(key)
    return value if value and value != "-" else None


_RDP_SUCCESS: Final = "Success"
_RDP_FAILURES: Final[frozenset[str]] = frozenset(
    {
        # RDP::results (GCC conference create response) other than Success
        "User rejected",
        "Resources not available",
        "Rejected for symmetry breaking",
        "Locked conference",
        # RDP::failure_codes (RDP_NEG_FAILURE, MS-RDPBCGR 2.2.1.2.2)
        "SSL_REQUIRED_BY_SERVER",
        "SSL_NOT_ALLOWED_BY_SERVER",
        "SSL_CERT_NOT_ON_SERVER",
        "INCONSISTENT_FLAGS",
        "HYBRID_REQUIRED_BY_SERVER",
        "SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER",
    }
)
"""The rdp log's ``result`` values that say the session was refused (Zeek's
``base/protocols/rdp/consts.zeek``); ``encrypted`` means Zeek could not see the outcome."""


def _reply_code(text: str | None) -> str | None:
    """The three-digit code that starts an SMTP reply line."""
    if text and len(text) >= 3 and text[:3].isdigit():
        return text[:3]
    return None


def _zeek_outcome(log: str | None, flat: Mapping[str, str]) -> str | None:
    """``success``/``failure`` when a Zeek log line says how an authentication ended."""
    if log == "rdp":
        result = flat.get("result")
        if result == _RDP_SUCCESS:
            return "success"
        return "failure" if result in _RDP_FAILURES else None
    if log == "ftp":
        return {"230": "success", "530": "failure"}.get(flat.get("reply_code", ""))
    if log == "smtp":
        return {"235": "success", "535": "failure"}.get(_reply_code(flat.get("last_reply")) or "")
    if log == "http" and flat.get("status_code") in ("401", "407"):
        return "failure"
    return None


def _seconds_ns(value: Any) -> int | None:
    """A non-negative number of seconds as nanoseconds."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0 or seconds > 1e9:
        return None
    return round(seconds * 1e9)


def _span_ns(start: Any, end: Any) -> int | None:
    """``end`` minus ``start`` (timestamps) in nanoseconds, when both read and are in order."""
    first, last = parse_timestamp(start), parse_timestamp(end)
    if first is None or last is None or last < first:
        return None
    return (last - first) // _MICROSECOND * 1000


def _url(host: str | None, path: str | None) -> str | None:
    if path and path.lower().startswith(("http://", "https://")):
        return path
    if host and path:
        return f"http://{host}{path if path.startswith('/') else '/' + path}"
    return None


def parse_zeek(
    obj: Mapping[str, Any], *, raw: str, source: str | None, received: datetime
) -> LogEvent:
    """A Zeek JSON log line as a :class:`LogEvent` (see the module docstring)."""
    fields = Fields()
    fields.add_tree(obj)
    flat = fields.data
    timestamp, _ = first_timestamp([("ts", obj.get("ts"))], received=received)
    log = zeek_log_type(flat)
    values = Values()
    values.put("event.code", log)
    values.put("event.provider", "zeek")
    if log in _ZEEK_CATEGORY:
        values.put("event.category", _ZEEK_CATEGORY[log][0])
        values.put("event.action", _ZEEK_CATEGORY[log][1])
    values.put("host.name", _str(flat, "_system_name"))
    values.put("source.ip", _str(flat, "id.orig_h"))
    values.put("source.port", _str(flat, "id.orig_p"))
    values.put("destination.ip", _str(flat, "id.resp_h"))
    values.put("destination.port", _str(flat, "id.resp_p"))
    values.put("source.ip", _str(flat, "src"))  # notice.log
    values.put("destination.ip", _str(flat, "dst"))
    values.put("destination.port", _str(flat, "p"))
    proto = _str(flat, "proto")
    values.put("network.transport", proto.lower() if proto else None)
    values.put("network.protocol", _ZEEK_PROTOCOL.get(log or ""))
    service = _str(flat, "service")
    if service:
        values.put("network.protocol", "tls" if service == "ssl" else service.lower())
    values.put("dns.question.name", _str(flat, "query"))
    if log == "http":
        values.put("http.request.method", _str(flat, "method"))
        values.put("url.full", _url(_str(flat, "host"), _str(flat, "uri")))
        values.put("http.response.status_code", _str(flat, "status_code"))
        values.put("user_agent.original", _str(flat, "user_agent"))
    if log in ("files", "smb_files"):
        name = _str(flat, "filename") or _str(flat, "name")
        values.put("file.name", basename(name) if name else None)
        values.put("file.path", _str(flat, "path"))
        values.put("file.hash.sha256", _str(flat, "sha256"))
        values.put("file.hash.md5", _str(flat, "md5"))
    if log == "notice":
        values.put("rule.name", _str(flat, "note"))
        values.put("message", _str(flat, "msg"))
    elif log == "weird":
        values.put("rule.name", _str(flat, "name"))
    for user_key in ("user", "username", "client"):
        user = _str(flat, user_key)
        if user is not None and log in ("ftp", "ntlm", "kerberos"):
            name, _, realm = user.partition("/") if log == "kerberos" else (user, "", "")
            if values.put("user.name", name):
                values.put("user.domain", realm or _str(flat, "domainname"))
    for outcome_key in ("auth_success", "success"):
        outcome = flat.get(outcome_key)
        if outcome in ("true", "false"):
            values.put("event.outcome", "success" if outcome == "true" else "failure")
    values.put("event.outcome", _zeek_outcome(log, flat))
    if log == "conn":
        values.put("source.bytes", flat.get("orig_bytes"))
        values.put("destination.bytes", flat.get("resp_bytes"))
        values.put("source.packets", flat.get("orig_pkts"))
        values.put("destination.packets", flat.get("resp_pkts"))
    values.put("event.duration", _seconds_ns(obj.get("duration")))
    for observer_key in ("_system_name", "_node_name", "_node", "peer"):
        values.put("observer.name", _str(flat, observer_key))
    return make_event(
        timestamp=timestamp,
        format="zeek",
        source=source,
        raw=raw,
        values=values,
        fields=fields.result(),
    )


def parse_suricata(
    obj: Mapping[str, Any], *, raw: str, source: str | None, received: datetime
) -> LogEvent:
    """A Suricata EVE record as a :class:`LogEvent` (see the module docstring)."""
    fields = Fields()
    fields.add_tree(obj)
    flat = fields.data
    timestamp, _ = first_timestamp([("timestamp", obj.get("timestamp"))], received=received)
    event_type = _str(flat, "event_type")
    values = Values()
    values.put("event.code", event_type)
    values.put("event.provider", "suricata")
    if event_type in _SURICATA_CATEGORY:
        values.put("event.category", _SURICATA_CATEGORY[event_type][0])
        values.put("event.action", _SURICATA_CATEGORY[event_type][1])
    host = obj.get("host")
    values.put("host.name", host if isinstance(host, str) else None)
    values.put("observer.name", host if isinstance(host, str) else None)
    values.put("observer.name", _str(flat, "sensor_name"))
    if event_type == "flow":
        values.put("source.bytes", flat.get("flow.bytes_toserver"))
        values.put("destination.bytes", flat.get("flow.bytes_toclient"))
        values.put("source.packets", flat.get("flow.pkts_toserver"))
        values.put("destination.packets", flat.get("flow.pkts_toclient"))
        values.put("event.duration", _span_ns(flat.get("flow.start"), flat.get("flow.end")))
    elif event_type == "netflow":
        values.put("source.bytes", flat.get("netflow.bytes"))
        values.put("source.packets", flat.get("netflow.pkts"))
        values.put("event.duration", _span_ns(flat.get("netflow.start"), flat.get("netflow.end")))
    values.put("source.ip", _str(flat, "src_ip"))
    values.put("source.port", _str(flat, "src_port"))
    values.put("destination.ip", _str(flat, "dest_ip"))
    values.put("destination.port", _str(flat, "dest_port"))
    proto = _str(flat, "proto")
    values.put("network.transport", proto.lower() if proto else None)
    app_proto = _str(flat, "app_proto")
    if app_proto and app_proto != "failed":
        values.put("network.protocol", app_proto.lower())
    values.put("rule.name", _str(flat, "alert.signature"))
    values.put("event.severity", _str(flat, "alert.severity"))
    for key in ("dns.rrname", "dns.queries.0.rrname", "dns.query.0.rrname"):
        values.put("dns.question.name", _str(flat, key))
    values.put("http.request.method", _str(flat, "http.http_method"))
    values.put("url.full", _url(_str(flat, "http.hostname"), _str(flat, "http.url")))
    values.put("http.response.status_code", _str(flat, "http.status"))
    values.put("user_agent.original", _str(flat, "http.http_user_agent"))
    filename = _str(flat, "fileinfo.filename")
    values.put("file.name", basename(filename) if filename else None)
    values.put("file.hash.sha256", _str(flat, "fileinfo.sha256"))
    values.put("file.hash.md5", _str(flat, "fileinfo.md5"))
    return make_event(
        timestamp=timestamp,
        format="suricata",
        source=source,
        raw=raw,
        values=values,
        fields=fields.result(),
    )
