"""Zeek JSON logs and Suricata EVE records (tools.logs.network)."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from tests.conftest import shared_data_dir
from tools.logs import EventRejected, detect, parse_object
from tools.logs.network import parse_zeek, zeek_log_type
from tools.logs.payload import parse_payload
from tools.logs.zeek_tsv import read_zeek_tsv

from .conftest import RECEIVED, shared

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
        "source.bytes": 62,
        "destination.bytes": 141,
        "source.packets": 2,
        "destination.packets": 2,
        "event.duration": 66851854,
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


# -- flow columns, observers and authentication outcomes ---------------------------------------


def zeek(log: str, **extra: Any) -> Any:
    record = {
        "_path": log,
        "ts": 1521911721.25,
        "uid": "CMwJl820SlYyy434c8",
        "id.orig_h": "10.164.94.120",
        "id.orig_p": 39681,
        "id.resp_h": "10.47.3.155",
        "id.resp_p": 3389,
    } | extra
    return parse(json.dumps(record))


@pytest.mark.parametrize(
    ("log", "extra", "outcome"),
    [
        ("rdp", {"result": "Success"}, "success"),
        ("rdp", {"result": "SSL_NOT_ALLOWED_BY_SERVER"}, "failure"),
        ("rdp", {"result": "User rejected"}, "failure"),
        ("rdp", {"result": "encrypted"}, None),
        ("ftp", {"command": "PASS", "reply_code": 530}, "failure"),
        ("ftp", {"command": "PASS", "reply_code": 230}, "success"),
        ("ftp", {"command": "STOR", "reply_code": 550}, None),
        ("smtp", {"last_reply": "535 5.7.8 Authentication credentials invalid"}, "failure"),
        ("smtp", {"last_reply": "235 2.7.0 Authentication successful"}, "success"),
        ("smtp", {"last_reply": "250 2.0.0 Ok: queued"}, None),
        ("http", {"method": "GET", "status_code": 401}, "failure"),
        ("http", {"method": "GET", "status_code": 403}, None),
        ("ssh", {"auth_success": False, "auth_attempts": 3}, "failure"),
        ("ntlm", {"success": True}, "success"),
        ("kerberos", {"request_type": "AS", "success": False}, "failure"),
    ],
)
def test_zeek_authentication_outcome(log: str, extra: dict[str, Any], outcome: str | None) -> None:
    assert zeek(log, **extra).values.get("event.outcome") == outcome


def test_zeek_observer_is_the_sensor() -> None:
    assert zeek("conn", _system_name="sensor-a").values["observer.name"] == "sensor-a"
    assert zeek("weird", name="bad_TCP_checksum", peer="worker-1").values["observer.name"] == (
        "worker-1"
    )
    assert "observer.name" not in zeek("conn").values


def test_zeek_conn_without_counters_leaves_them_empty() -> None:
    event = zeek("conn", proto="tcp", conn_state="S0", duration=None)
    assert not {"source.bytes", "destination.bytes", "event.duration"} & set(event.values)


SURICATA_FLOW = (
    '{"timestamp":"2018-03-24T14:37:19.037299-0600","flow_id":928532049924531,'
    '"event_type":"flow","src_ip":"10.0.0.5","src_port":51514,"dest_ip":"10.47.8.150",'
    '"dest_port":22,"proto":"TCP","app_proto":"ssh","host":"ids-1","flow":{"pkts_toserver":12,'
    '"pkts_toclient":10,"bytes_toserver":2048,"bytes_toclient":4096,'
    '"start":"2018-03-24T14:37:19.037299-0600","end":"2018-03-24T14:37:21.537299-0600",'
    '"age":2,"state":"closed","reason":"timeout","alerted":false}}'
)
SURICATA_NETFLOW = (
    '{"timestamp":"2018-03-24T14:37:19.037299-0600","flow_id":1,"event_type":"netflow",'
    '"src_ip":"10.47.8.150","src_port":22,"dest_ip":"10.0.0.5","dest_port":51514,"proto":"TCP",'
    '"netflow":{"pkts":10,"bytes":4096,"start":"2018-03-24T14:37:19.037299-0600",'
    '"end":"2018-03-24T14:37:19.537299-0600","age":0,"min_ttl":64,"max_ttl":64}}'
)


def test_suricata_flow_fills_both_directions() -> None:
    event = parse(SURICATA_FLOW)
    assert event.values["source.bytes"] == 2048
    assert event.values["destination.bytes"] == 4096
    assert event.values["source.packets"] == 12
    assert event.values["destination.packets"] == 10
    assert event.values["event.duration"] == 2_500_000_000
    assert event.values["observer.name"] == "ids-1"


def test_suricata_netflow_is_one_direction() -> None:
    event = parse(SURICATA_NETFLOW)
    assert event.values["source.bytes"] == 4096
    assert event.values["source.packets"] == 10
    assert event.values["event.duration"] == 500_000_000
    assert "destination.bytes" not in event.values


def test_suricata_alert_does_not_count_flow_volume() -> None:
    record = json.loads(SURICATA_FLOW) | {"event_type": "alert", "alert": {"signature": "x"}}
    event = parse(json.dumps(record))
    assert "source.bytes" not in event.values
    assert "event.duration" not in event.values


# -- Zeek ASCII (TSV) records fill the same columns as their JSON twins --------------------------

WRCCDC = "network/zeek_wrccdc_2018"


def wrccdc_logs() -> list[str]:
    root = shared_data_dir()
    if root is None or not (root / WRCCDC).is_dir():
        return ["absent"]
    folder = root / WRCCDC / "zeek-default"
    return sorted(p.name.removesuffix(".log.gz") for p in folder.iterdir())


@pytest.mark.parametrize("log", wrccdc_logs())
def test_wrccdc_tsv_and_json_twins_normalise_alike(log: str) -> None:
    """The first 300 records of each log of the shared WRCCDC 2018 capture, in Zeek's ASCII
    and JSON forms: the same normalised columns, the same time."""
    root = shared("network/zeek_wrccdc_2018")
    with gzip.open(root / "zeek-default" / f"{log}.log.gz", "rt", encoding="utf-8") as tsv:
        head = [line for _, line in zip(range(308), tsv, strict=False)]
    records = [r for _, r in read_zeek_tsv(head) if isinstance(r, dict)]
    with gzip.open(root / "zeek-json" / f"{log}.json.gz", "rb") as lines:
        twins = [orjson.loads(line) for _, line in zip(range(len(records)), lines, strict=False)]
    assert records
    assert len(records) == len(twins)
    for record, twin in zip(records, twins, strict=True):
        from_tsv = parse_zeek(record, raw="", source=None, received=RECEIVED)
        from_json = parse_zeek(twin, raw="", source=None, received=RECEIVED)
        assert from_tsv.values == from_json.values, record.get("uid")
        assert abs((from_tsv.timestamp - from_json.timestamp).total_seconds()) < 1e-3


TSV_HEAD = "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n"
TWINS = {
    "conn": (
        ZEEK_CONN,
        "#path\tconn\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice"
        "\tduration\torig_bytes\tresp_bytes\tconn_state\tmissed_bytes\thistory\torig_pkts"
        "\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\n#types\ttime\tstring\taddr\tport\taddr\tport"
        "\tenum\tstring\tinterval\tcount\tcount\tstring\tcount\tstring\tcount\tcount\tcount\tcount\n"
        "1591367999.305988\tCMdzit1AMNsmfAIiQc\t192.168.4.76\t36844\t192.168.4.1\t53\tudp\tdns"
        "\t0.066852\t62\t141\tSF\t0\tDd\t2\t118\t2\t197\n",
    ),
    "http": (
        ZEEK_HTTP,
        "#path\thttp\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\ttrans_depth"
        "\tmethod\thost\turi\tversion\tuser_agent\trequest_body_len\tresponse_body_len"
        "\tstatus_code\tstatus_msg\ttags\tresp_fuids\tresp_mime_types\n#types\ttime\tstring\taddr"
        "\tport\taddr\tport\tcount\tstring\tstring\tstring\tstring\tstring\tcount\tcount\tcount"
        "\tstring\tset[enum]\tvector[string]\tvector[string]\n"
        "1591367999.512593\tC5bLoe2Mvxqhawzqqd\t192.168.4.76\t46378\t31.3.245.133\t80\t1\tGET"
        "\ttestmyids.com\t/\t1.1\tcurl/7.47.0\t0\t39\t200\tOK\t(empty)\tFEEsZS1w0Z0VJIb5x4"
        "\ttext/plain\n",
    ),
    "files": (
        ZEEK_FILES,
        "#path\tfiles\n#fields\tts\tfuid\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tsource"
        "\tdepth\tanalyzers\tmime_type\tfilename\tduration\tis_orig\tseen_bytes\ttotal_bytes\tmd5"
        "\tsha256\n#types\ttime\tstring\tstring\taddr\tport\taddr\tport\tstring\tcount"
        "\tset[string]\tstring\tstring\tinterval\tbool\tcount\tcount\tstring\tstring\n"
        "1591367999.5\tFEEsZS1w0Z0VJIb5x4\tC5bLoe2Mvxqhawzqqd\t31.3.245.133\t80\t192.168.4.76"
        "\t46378\tHTTP\t0\tMD5,SHA256\ttext/plain\tuid.txt\t0.0\tF\t39\t39\t"
        + "a" * 32
        + "\t"
        + "b" * 64
        + "\n",
    ),
}


@pytest.mark.parametrize("log", sorted(TWINS))
def test_tsv_conn_http_files_normalise_like_json(log: str) -> None:
    """Logs the shared capture lacks (conn, http, files), written both ways by hand from the
    same record: the TSV body, read through the ingest payload reader, fills the same
    columns (Zeek's ASCII writer rounds intervals to microseconds)."""
    text, tsv = TWINS[log]
    result = parse_payload((TSV_HEAD + tsv).encode(), content_type=None, source=None, format=None)
    assert result.rejected == []
    (from_tsv,) = result.events
    from_json = parse(text)
    expected = dict(from_json.values)
    if "event.duration" in expected:
        expected["event.duration"] = round(expected["event.duration"], -3)
    assert from_tsv.values == expected
    assert from_tsv.timestamp == from_json.timestamp
