"""The endpoint agent runs the newest Sigma archive fetched into ``<data_dir>/sigma`` (what
``aurora rules fetch`` writes) in place of the shipped corpus."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from tests.agents.endpoint.test_agent import SYSMON, ask, server_for, written
from tools.attack import AttackKB

CANARY_RULE = """\
title: Canary Tool Started
id: 6c1f7c1e-0d53-4a49-9d7e-3a1e6c0f0a11
status: test
description: A rule of a newer corpus, shipped nowhere but in this test's archive.
tags:
  - attack.execution
  - attack.t1204.002
logsource:
  product: windows
  category: process_creation
detection:
  selection:
    Image|endswith: '\\\\aurora-canary.exe'
  condition: selection
level: high
"""


def write_archive(folder: Path) -> None:
    folder.mkdir(parents=True)
    data = CANARY_RULE.encode()
    with tarfile.open(folder / "sigma-newer.tar.gz", mode="w:gz") as tar:
        info = tarfile.TarInfo("rules/windows/process_creation/canary.yml")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


async def test_a_fetched_archive_is_the_corpus_the_agent_runs(tmp_path: Path) -> None:
    write_archive(tmp_path / "sigma")
    server = server_for(tmp_path, AttackKB.load())
    event = written(
        1,
        SYSMON,
        Image="C:\\Tools\\aurora-canary.exe",
        CommandLine="aurora-canary.exe --run",
        ParentImage="C:\\Windows\\explorer.exe",
    )
    reply = await ask(server, {"host": {"hostname": "FS03"}, "events": [event]})
    finding = reply["result"]
    said = " ".join(f"{e['ref']} {e['summary']}" for e in finding["evidence"])
    assert "Canary Tool Started" in said
    assert "T1204.002" in finding["mitre_techniques"]
