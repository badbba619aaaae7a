"""The in-process Sigma engine's speed: 1,000 Windows events against the whole shipped corpus,
as a ratio to normalising the same events (the baseline, measured in the same run).

Run: ``python -m benchmarks.sigma_engine``. The events are written here (process starts,
script blocks, registry, network and logon events in the proportions of a busy host), so the
benchmark needs no shared data.
"""

from __future__ import annotations

import time

from tools.logs.windows import normalise_event
from tools.sigma.corpus import load_engine

SYSMON = "Microsoft-Windows-Sysmon/Operational"


def events(count: int = 1000) -> list[dict[str, object]]:
    shapes: list[dict[str, object]] = [
        {
            "EventID": 1,
            "Channel": SYSMON,
            "Image": "C:\\Windows\\System32\\cmd.exe",
            "CommandLine": "cmd.exe /c echo build step {i} > C:\\build\\log{i}.txt",
            "ParentImage": "C:\\Program Files\\Git\\bin\\bash.exe",
            "User": "CORP\\dev",
        },
        {
            "EventID": 4688,
            "Channel": "Security",
            "NewProcessName": "C:\\Windows\\System32\\svchost.exe",
            "CommandLine": "svchost.exe -k netsvcs -p -s Schedule",
            "ParentProcessName": "C:\\Windows\\System32\\services.exe",
        },
        {
            "EventID": 4104,
            "Channel": "Microsoft-Windows-PowerShell/Operational",
            "ScriptBlockText": (
                "Get-ChildItem C:\\reports | Where-Object Length -gt {i} | Select Name"
            ),
        },
        {
            "EventID": 13,
            "Channel": SYSMON,
            "Image": "C:\\Windows\\explorer.exe",
            "TargetObject": (
                "HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Explorer\\RecentDocs\\{i}"
            ),
            "Details": "Binary Data",
            "EventType": "SetValue",
        },
        {
            "EventID": 3,
            "Channel": SYSMON,
            "Image": "C:\\Program Files\\Mozilla Firefox\\firefox.exe",
            "DestinationIp": "93.184.216.{i}",
            "DestinationPort": "443",
        },
        {
            "EventID": 4624,
            "Channel": "Security",
            "LogonType": "3",
            "TargetUserName": "svc{i}",
            "IpAddress": "10.0.0.{i}",
        },
    ]
    out: list[dict[str, object]] = []
    for i in range(count):
        shape = shapes[i % len(shapes)]
        out.append({k: v.format(i=i % 250) if isinstance(v, str) else v for k, v in shape.items()})
    return out


def main() -> None:
    started = time.perf_counter()
    engine = load_engine()
    load_s = time.perf_counter() - started
    raws = events()
    started = time.process_time()
    normalised = [normalise_event(raw, i) for i, raw in enumerate(raws)]
    baseline = time.process_time() - started
    started = time.process_time()
    matches = engine.match(normalised)
    matched = time.process_time() - started
    print(
        f"corpus: {engine.stats.loaded} rules compiled in {load_s:.1f} s "
        f"({engine.stats.skipped_total} skipped: {dict(engine.stats.skipped)})"
    )
    print(
        f"{len(raws)} events: normalise {baseline:.3f} s CPU (baseline), "
        f"match {matched:.3f} s CPU = {matched / baseline:.1f}x baseline; {len(matches)} match(es)"
    )


if __name__ == "__main__":
    main()
