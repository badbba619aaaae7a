"""Zeek JSON logs and Suricata EVE records (tools.logs.network)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from tools.logs import EventRejected, detect, parse_object
from tools.logs.network import zeek_log_type

from .conftest import RECEIVED

# Lines as Zeek's JSON writer emits them (Zeek documentation, "Zeek Logs").
ZEEK_CONN = (
    '{"ts":1591367999.305988,"uid":"CMdzit1AMNsmfAIiQc","id.orig_h":"192.168.4.76",'
    '"id.orig_p":36844,"id.resp_h":"192.168.4.1","id.resp_p":53,"proto":"udp","service":"dns",'
    '"duration":0.06685185432434082,"orig_bytes":62,"resp_bytes":141,"conn_state":"SF",'
    '"missed_bytes":0,"history":"Dd","orig_pkts":2,"orig_ip_bytes":118,"resp_pkts":2,'
    '"resp_ip_bytes":197}'
)
ZEEK_DNS = (
    '{"ts":1591367999.306059,"uid":"CMdzit1AMNsmfAIiQc","id.orig_h":"192.168.4.76",'
    '"id.orig_p":36844,"id.resp_h":"192.168.4.1","id.resp_p":53,"proto":"udp","trans_id":8555,'
    '"query":"testmyids.com","qclass":1,"qclass_name":"C_INTERNET","qtype":1,"qtype_name":"A",'
    '"rcode":0,"rcode_name":"NOERROR","AA":false,"TC":false,"RD":true,"RA":true,"Z":0,'
    '"answers":["31.3.245.133"],"TTLs":[3600.0],"rejected":false}'
)
ZEEK_HTTP = (
    '{"ts":1591367999.512593,"uid":"C5bLoe2Mvxqhawzqqd","id.orig_h":"192.168.4.76",'
    '"id.orig_p":46378,"id.resp_h":"31.3.245.133","id.resp_p":80,"trans_depth":1,'
    '"method":"GET","host":"testmyids.com","uri":"/","version":"1.1",'
    '"user_agent":"curl/7.47.0","request_body_len":0,"response_body_len":39,'
    '"status_code":200,"status_msg":"OK","tags":[],"resp_fuids":["FEEsZS1w0Z0VJIb5x4"],'
    '"resp_mime_types":["text/plain"]}'
)
ZEEK_FILES = (
    '{"ts":1591367999.5,"fuid":"FEEsZS1w0Z0VJIb5x4","uid":"C5bLoe2Mvxqhawzqqd",'
    '"id.orig_h":"31.3.245.133","id.orig_p":80,"id.resp_h":"192.168.4.76","id.resp_p":46378,'
    '"source":"HTTP","depth":0,"analyzers":["MD5","SHA256"],"mime_type":"text/plain",'
    '"filename":"uid.txt","duration":0.0,"is_orig":false,"seen_bytes":39,"total_bytes":39,'
    '"md5":"' + "a" * 32 + '","sha256":"' + "b" * 64 + '"}'
)
ZEEK_NOTICE = (
    '{"ts":1591367999.9,"note":"Scan::Port_Scan","msg":"192.168.4.76 scanned 25 ports",'
    '"src":"192.168.4.76","dst":"192.168.4.1","p":443,"actions":["Notice::ACTION_LOG"]}'
)


def parse(text: str, **kwargs: Any) -> Any:
    obj = json.loads(text)
    return parse_object(obj, raw=text, received=RECEIVED, **kwargs)


def test_zeek_conn() -> None:
    event = parse(ZEEK_CONN)
    assert detect(json.loads(ZEEK_CONN)) == "zeek"
    assert event.format == "zeek"
    assert event.timestamp == datetime(2020, 6, 5, 14, 39, 59, 305988, tzinfo=UTC)
    assert event.values == {
        "event.code": "conn",
        "event.provider": "zeek",
        "event.category": "network",
        "event.action": "network_connection",
        "source.ip": "192.168.4.76",
        "source.port": 36844,
        "destination.ip": "192.168.4.1",
        "destination.port": 53,
        "network.transport": "udp",
        "network.protocol": "dns",
    }
    assert event.fields["id.orig_h"] == "192.168.4.76"
    assert event.fields["conn_state"] == "SF"
    assert event.fields["duration"] == "0.06685185432434082"
    assert event.raw == ZEEK_CONN


def test_zeek_dns() -> None:
    event = parse(ZEEK_DNS)
    assert event.values["event.code"] == "dns"
    assert event.values["dns.question.name"] == "testmyids.com"
    assert event.values["event.category"] == "dns"
    assert event.fields["answers"] == "31.3.245.133"
    assert event.fields["TTLs"] == "3600.0"
    assert event.fields["RD"] == "true"


def test_zeek_http_files_notice() -> None:
    http = parse(ZEEK_HTTP)
    assert http.values["event.code"] == "http"
    assert http.values["url.full"] == "http://testmyids.com/"
    assert http.values["http.request.method"] == "GET"
    assert http.values["http.response.status_code"] == 200
    assert http.values["user_agent.original"] == "curl/7.47.0"
    assert http.fields["tags"] == ""
    files = parse(ZEEK_FILES)
    assert files.values["event.code"] == "files"
    assert files.values["file.name"] == "uid.txt"
    assert files.values["file.hash.sha256"] == "b" * 64
    assert files.values["file.hash.md5"] == "a" * 32
    notice = parse(ZEEK_NOTICE, format="zeek")  # no uid: named explicitly
    assert notice.values["event.code"] == "notice"
    assert notice.values["rule.name"] == "Scan::Port_Scan"
    assert notice.values["message"] == "192.168.4.76 scanned 25 ports"
    assert notice.values["destination.port"] == 443


def test_zeek_nested_ids_iso_time_and_path() -> None:
    text = json.dumps(
        {
            "_path": "ssl",
            "ts": "2020-06-05T14:39:59.305988Z",
            "uid": "Cx",
            "id": {"orig_h": "10.0.0.1", "orig_p": 5000, "resp_h": "10.0.0.2", "resp_p": 443},
            "server_name": "example.org",
        }
    )
    event = parse(text)
    assert event.values["event.code"] == "ssl"
    assert event.values["network.protocol"] == "tls"
    assert event.values["source.ip"] == "10.0.0.1"
    assert event.values["destination.port"] == 443
    assert event.fields["id.resp_h"] == "10.0.0.2"
    assert event.timestamp == datetime(2020, 6, 5, 14, 39, 59, 305988, tzinfo=UTC)


def test_zeek_log_type_inference() -> None:
    assert zeek_log_type({"uid": "C", "conn_state": "S0"}) == "conn"
    assert zeek_log_type({"uid": "C", "query": "a", "qtype_name": "A"}) == "dns"
    assert zeek_log_type({"uid": "C", "auth_success": "true"}) == "ssh"
    assert zeek_log_type({"uid": "C"}) is None
    assert zeek_log_type({"_path": "weird", "query": "a", "qtype_name": "A"}) == "weird"


def test_zeek_bad_values() -> None:
    obj = json.loads(ZEEK_CONN)
    obj["id.orig_p"] = "abc"
    obj["id.resp_h"] = "-"
    event = parse(json.dumps(obj))
    assert "source.port" not in event.values
    assert "destination.ip" not in event.values
    assert event.fields["id.orig_p"] == "abc"
    obj["ts"] = "not a time"
    with pytest.raises(EventRejected, match="unreadable timestamp in 'ts'"):
        parse(json.dumps(obj))


SURICATA_DNS = {
    "timestamp": "2020-06-05T14:39:59.306059+0000",
    "flow_id": 1,
    "in_iface": "eth0",
    "event_type": "dns",
    "src_ip": "192.168.4.76",
    "src_port": 36844,
    "dest_ip": "192.168.4.1",
    "dest_port": 53,
    "proto": "UDP",
    "dns": {"type": "query", "id": 8555, "rrname": "testmyids.com", "rrtype": "A", "tx_id": 0},
    "host": "sensor-1",
}
SURICATA_HTTP = {
    "timestamp": "2020-06-05T08:39:59.512593-0600",
    "flow_id": 2,
    "event_type": "http",
    "src_ip": "192.168.4.76",
    "src_port": 46378,
    "dest_ip": "31.3.245.133",
    "dest_port": 80,
    "proto": "TCP",
    "app_proto": "http",
    "http": {
        "hostname": "testmyids.com",
        "url": "/uid.txt",
        "http_user_agent": "curl/7.47.0",
        "http_method": "GET",
        "protocol": "HTTP/1.1",
        "status": 200,
        "length": 39,
    },
}


def test_suricata_dns_and_http() -> None:
    dns = parse(json.dumps(SURICATA_DNS))
    assert detect(SURICATA_DNS) == "suricata"
    assert dns.timestamp == datetime(2020, 6, 5, 14, 39, 59, 306059, tzinfo=UTC)
    assert dns.values["event.code"] == "dns"
    assert dns.values["dns.question.name"] == "testmyids.com"
    assert dns.values["host.name"] == "sensor-1"
    assert dns.values["network.transport"] == "udp"
    assert dns.fields["dns.rrtype"] == "A"
    http = parse(json.dumps(SURICATA_HTTP))
    assert http.timestamp == datetime(2020, 6, 5, 14, 39, 59, 512593, tzinfo=UTC)
    assert http.values["url.full"] == "http://testmyids.com/uid.txt"
    assert http.values["http.response.status_code"] == 200
    assert http.values["network.protocol"] == "http"
    assert "rule.name" not in http.values


def test_suricata_alert_with_bad_severity_and_ports() -> None:
    record = dict(SURICATA_DNS)
    record.update(
        event_type="alert",
        src_port=-5,
        dest_port="http",
        alert={"signature": "ET POLICY x", "signature_id": 1, "severity": "high"},
    )
    event = parse(json.dumps(record))
    assert event.values["rule.name"] == "ET POLICY x"
    assert event.values["event.category"] == "intrusion_detection"
    assert "event.severity" not in event.values
    assert "source.port" not in event.values
    assert "destination.port" not in event.values
    assert event.fields["alert.severity"] == "high"
    assert event.fields["src_port"] == "-5"
