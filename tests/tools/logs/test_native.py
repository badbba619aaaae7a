"""The parser's compiled modules (``setup.py``) parse exactly as their sources: every event,
rejection and encoded block of the same inputs, byte for byte, compiled and not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT, shared_data_dir
from tools.logs import native

# Run twice in fresh interpreters: as installed, and with every compiled module of the package
# taken from its source (a SourceFinder ahead of the import system, as a stale build would get).
SCRIPT = r"""
import hashlib, json, sys
from datetime import UTC, datetime
from pathlib import Path

from core.native import sources_of

if sys.argv[1] == "sources":
    sys.meta_path.insert(0, sources_of("tools.logs", Path("tools/logs")))

from core.logstore.store import encode_events
from tools.logs import native, parse_payload

RECEIVED = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
EDGES = [
    {"EventID": 1, "Channel": "Microsoft-Windows-Sysmon/Operational", "Computer": "ws-1",
     "TimeCreated": "2024-05-01T10:00:00.1234567Z", "Image": "C:\\Windows\\System32\\cmd.exe",
     "CommandLine": "cmd /c \"whoami\" \ud83d\ude00 caf\u00e9", "ProcessId": "0x1a4",
     "ParentProcessId": 99999999999999999999, "User": "DOMAIN\\alice",
     "Hashes": "SHA256=" + "a" * 64 + ",MD5=" + "b" * 32},
    {"Event": {"System": {"EventID": {"#text": "4688"}, "Computer": "dc-1",
     "TimeCreated": {"@SystemTime": "2024-05-01 10:00:01.5"}},
     "EventData": {"Data": [{"@Name": "NewProcessName", "#text": "C:\\x\\p.exe"},
     {"@Name": "SubjectUserName", "#text": "bob"}, {"@Name": "IpAddress", "#text": "::1"}]}}},
    {"EventID": "4624", "Computer": "h", "TimeCreated": "not a time", "Data": ["a", 1, None],
     "LogonType": 3, "IpPort": "70000", "Nested": {"deep": {"list": [1, {"x": "y"}]}}},
    {"EventID": 3, "Computer": "h", "DestinationIp": "2001:db8::1", "DestinationPort": 443,
     "SourceIp": "10.0.0.1", "SourcePort": "-1", "Protocol": "tcp"},
]
bodies = [
    (b"\n".join(json.dumps(e).encode() for e in EDGES)
     + b'\n{"EventID": 1, broken\n["not", "an", "object"]\n"\\ud800 lone"\n',
     "application/x-ndjson", None),
]
for path in sys.argv[2:]:
    path = Path(path)
    kind = "application/x-ndjson" if path.suffix == ".jsonl" else None
    bodies.append((path.read_bytes(), kind, path.name))

digest, events, rejected = hashlib.sha256(), 0, 0
for body, content_type, name in bodies:
    result = parse_payload(body, content_type=content_type, source=None, format=None,
                           filename=name, received=RECEIVED)
    if result.events:
        digest.update(encode_events(result.events, range(len(result.events)), RECEIVED))
    digest.update(repr([(e.timestamp, e.values, e.fields, e.raw, e.format, e.source)
                        for e in result.events]).encode())
    digest.update(repr(result.rejected).encode())
    events += len(result.events)
    rejected += len(result.rejected)
print(json.dumps({"compiled": native.compiled(), "digest": digest.hexdigest(),
                  "events": events, "rejected": rejected}))
"""


def parse_all(mode: str, inputs: list[Path]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode, *map(str, inputs)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    answer: dict[str, object] = json.loads(done.stdout)
    return answer


def test_the_compiled_parser_parses_as_its_source() -> None:
    import tools.logs.windows  # noqa: F401  (imported: compiled() sees how)

    if not native.compiled():
        if os.environ.get("AURORA_REQUIRE_NATIVE") == "1":
            pytest.fail("AURORA_REQUIRE_NATIVE=1 but the parser's modules are not compiled")
        pytest.skip("the parser's modules are not compiled here (no C compiler at install?)")
    root = shared_data_dir()
    corpus = root / "logs/evtx_to_mitre_attack" if root else None
    # The shared corpus where it is (every JSON line and EVTX file), beside the edge cases.
    inputs = sorted(corpus.rglob("*.jsonl")) + sorted(corpus.rglob("*.evtx")) if corpus else []
    built, source = parse_all("build", inputs), parse_all("sources", inputs)
    assert built["compiled"] == ["common", "windows"]
    assert source["compiled"] == []
    assert built["rejected"] == source["rejected"] >= 3
    assert built["events"] == source["events"] >= 4
    assert built["digest"] == source["digest"]
