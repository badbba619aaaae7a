"""One ``aurora up`` used as a user would, by every test here: the admin it creates, the agents
joining as they start, the user and token commands beside it, an investigation of the demo's
sample data by its agents; last, stopped.

Starting the platform is what costs (eight processes importing their libraries): the tests that
only use it share this one; those that need a platform of their own (killed, refused, another
configuration) start theirs in the other modules.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest

from agents.catalog import SPECIALISTS
from core.security.tokens import TokenService
from core.settings import Settings
from gateway.demo import ANALYST, load_scenario, walkthrough
from tests.conftest import shared_data_dir
from tests.e2e.aurora import Platform, aurora_env, http, login, run

SECRET = "e2e-platform-secret-e2e-platform-secret-0123456789"
ALL_READY = f"All {len(SPECIALISTS)} agents are ready"
ALERT_ID = r"ALRT-\d{4}-\d{5}"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """The module's ``aurora up`` (with the JWT secret known, so that a test can mint a token as
    an earlier login would have; no authentication cache; two wrong passwords lock a name)."""
    env = aurora_env(
        tmp_path_factory.mktemp("platform") / "var",
        AURORA_JWT_SECRET=SECRET,
        AURORA_AUTH_CACHE_TTL_SECONDS="0",
        AURORA_LOGIN_MAX_FAILURES="2",
    )
    started = Platform(env, "up")
    yield started
    started.close()


def test_up_creates_the_admin_and_serves(platform: Platform) -> None:
    assert platform.lines[0].startswith("Starting AuroraSOC: the gateway, 6 specialist agents")
    assert platform.url == f"http://127.0.0.1:{platform.env['AURORA_PORT']}"
    password = platform.password()
    assert password
    assert len(password) >= 16
    token = login(platform.url, "admin", password)
    status, me = http("GET", f"{platform.url}/api/v1/users/me", token=token)
    assert (status, me["username"], me["role"]) == (200, "admin", "admin")
    # `aurora token` mints a token the running gateway accepts (same key, from the data dir).
    minted = run(platform.env, "token", "admin")
    assert minted.returncode == 0, minted.stderr
    status, me = http("GET", f"{platform.url}/api/v1/users/me", token=minted.stdout.strip())
    assert (status, me["username"]) == (200, "admin")


def test_the_agents_join_as_they_start(platform: Platform) -> None:
    # Each said, with how many of how many are ready, and the MCP tool server beside them.
    platform.wait_for(ALL_READY)
    mcp = f"the MCP tool server is ready at http://127.0.0.1:{platform.env['AURORA_MCP_PORT']}/"
    platform.wait_for(mcp)
    progress = [line for line in platform.lines if re.match(r"  agent \w+ ready \(\d/", line)]
    counts = [re.search(r"\((\d)/(\d)\)", line) for line in progress]
    assert [m.groups() if m else None for m in counts] == [
        (str(n), str(len(SPECIALISTS))) for n in range(1, len(SPECIALISTS) + 1)
    ]
    assert {line.split()[1] for line in progress} == set(SPECIALISTS)
    assert "still starting: " in progress[0]
    assert not platform.crash_reports()


def test_user_and_token_commands_beside_the_running_platform(platform: Platform) -> None:
    env, api = platform.env, f"{platform.url}/api/v1"
    created = run(
        env,
        *("user", "create", "bob", "--role", "analyst", "--password-stdin"),
        stdin="bob's long password\n",
    )
    assert created.returncode == 0, created.stderr
    weak = run(
        env, "user", "create", "eve", "--role", "analyst", "--password-stdin", stdin="short\n"
    )
    assert weak.returncode == 1
    assert "Validation error" in weak.stderr
    duplicate = run(
        env,
        *("user", "create", "bob", "--role", "viewer", "--password-stdin"),
        stdin="another long password\n",
    )
    assert duplicate.returncode == 1
    assert "already exists" in duplicate.stderr
    service = run(env, "user", "create", "svc-intel", "--role", "service_agent")
    assert service.returncode == 0, service.stderr
    listed = run(env, "user", "list").stdout
    assert re.search(r"^bob\s+analyst\s+yes", listed, re.M)
    assert re.search(r"^svc-intel\s+service_agent\s+yes", listed, re.M)
    assert not re.search(r"^eve\s", listed, re.M)
    rows = len(listed.splitlines()) - 2  # the header and the count
    assert listed.splitlines()[-1] == f"{rows} user(s)"

    # The running gateway sees what the commands wrote.
    bob = login(platform.url, "bob", "bob's long password")
    assert http("GET", f"{api}/users/me", token=bob)[1]["role"] == "analyst"
    # A service identity has no password: it cannot log in, but `aurora token` serves it.
    status, body = http(
        "POST", f"{api}/auth/token", {"username": "svc-intel", "password": "anything at all"}
    )
    assert (status, body["error"]["code"]) == (401, "AURORA-4012")
    token = run(env, "token", "svc-intel").stdout.strip()
    status, me = http("GET", f"{api}/users/me", token=token)
    assert (status, me["role"]) == (200, "service_agent")

    deleted = run(env, "user", "delete", "bob")
    assert deleted.returncode == 0
    assert http("GET", f"{api}/users/me", token=bob)[0] == 401
    unknown = run(env, "token", "bob")
    assert unknown.returncode == 1
    assert "Resource not found" in unknown.stderr


def test_user_passwd_resets_unlocks_and_ends_sessions(platform: Platform) -> None:
    env, api = platform.env, f"{platform.url}/api/v1"
    first, second = "the first long password", "the second long password"
    created = run(
        env, "user", "create", "boss", "--role", "admin", "--password-stdin", stdin=f"{first}\n"
    )
    assert created.returncode == 0, created.stderr
    assert run(env, "user", "create", "svc", "--role", "service_agent").returncode == 0

    def login_boss(password: str) -> tuple[int, dict[str, Any]]:
        return http("POST", f"{api}/auth/token", {"username": "boss", "password": password})

    # A session that began before the reset (the token a login a minute ago gave).
    minted = run(env, "token", "boss").stdout.strip()
    boss_id = jwt.decode(minted, options={"verify_signature": False})["sub"]
    old = (
        TokenService.from_settings(Settings(jwt_secret=SECRET))
        .issue(boss_id, now=datetime.now(UTC) - timedelta(minutes=1), claims={"username": "boss"})
        .token
    )
    assert http("GET", f"{api}/users/me", token=old)[0] == 200
    # Locked out by wrong passwords.
    assert [login_boss("a wrong password")[0] for _ in range(2)] == [401, 401]
    assert login_boss(first)[0] == 429

    # Refused resets change nothing.
    unknown = run(env, "user", "passwd", "nobody", "--password-stdin", stdin=f"{second}\n")
    assert (unknown.returncode, "Resource not found" in unknown.stderr) == (1, True)
    weak = run(env, "user", "passwd", "boss", "--password-stdin", stdin="short\n")
    assert (weak.returncode, "Validation error" in weak.stderr) == (1, True)
    service = run(env, "user", "passwd", "svc", "--password-stdin", stdin=f"{second}\n")
    assert (service.returncode, "service identity" in service.stderr) == (1, True)
    # Asked twice, without echo where there is a terminal (here there is none: from stdin).
    mismatch = run(
        env,
        *("user", "passwd", "boss"),
        stdin=f"{second}\nnot the same password\n",
        own_session=True,
    )
    assert mismatch.returncode == 1
    assert "passwords do not match" in mismatch.stderr
    assert http("GET", f"{api}/users/me", token=old)[0] == 200
    assert login_boss(first)[0] == 429

    reset = run(env, "user", "passwd", "boss", stdin=f"{second}\n{second}\n", own_session=True)
    assert reset.returncode == 0, reset.stderr
    assert "every token issued to it before now is refused" in reset.stdout
    assert second not in reset.stdout + reset.stderr
    status, body = http("GET", f"{api}/users/me", token=old)
    assert (status, body["error"]["code"]) == (401, "AURORA-4012")
    assert login_boss(first)[0] == 401
    status, body = login_boss(second)  # unlocked
    assert status == 200, body
    status, me = http("GET", f"{api}/users/me", token=body["access_token"])
    assert (status, me["username"]) == (200, "boss")


async def test_the_demo_data_investigated_by_the_platform(platform: Platform) -> None:
    """The demo's walkthrough of the shared data against this platform: its sample alerts
    seeded, the agents' thoughts streamed, and the verdict they reach (``aurora demo`` itself,
    which starts a platform of its own, runs in test_demo)."""
    root = shared_data_dir()
    if root is None:
        pytest.skip("needs the shared data (../shared/data or AURORA_SHARED_DATA)")
    password = "the demo analyst's password"
    created = run(
        platform.env,
        *("user", "create", ANALYST, "--role", "analyst", "--password-stdin"),
        stdin=f"{password}\n",
    )
    assert created.returncode == 0, created.stderr
    platform.wait_for(ALL_READY)
    said: list[str] = []
    investigation = await walkthrough(
        platform.url, load_scenario(root), password=password, time_limit=120, out=said.append
    )
    out = "\n".join(said)
    assert "system mode dry_run" in out
    seeded = re.findall(rf"^  ({ALERT_ID}) ", out, re.M)
    assert len(seeded) == 4
    assert len(set(seeded)) == 4
    assert re.search(rf"^  {seeded[0]} +high +sysmon +CrackMapExec payload execution", out, re.M)
    assert re.search(rf"^  {seeded[3]} +high +suricata +ET TROJAN ", out, re.M)
    assert f"Investigating {seeded[0]}: CrackMapExec" in out
    # Thoughts streamed while the agents worked.
    thoughts = re.findall(r"^ +\+\d+\.\d\ds  (\w+) +(\w+) ", out, re.M)
    assert ("malware", "assess") in thoughts
    assert "threat_intel" in {agent for agent, _ in thoughts}

    assert (investigation["alert_id"], investigation["status"]) == (seeded[0], "completed")
    receipt = investigation["receipt"]
    # The malware agent decoded the character-code payload down to the Mimikatz download.
    # Corroborated (several rules, a decoded payload, credential dumping observed): malicious,
    # with the calibrated probability of it (orchestrator.verdict).
    assert (receipt["verdict"], receipt["severity"]) == ("malicious", "critical")
    assert 0.85 <= receipt["confidence"] < 1
    techniques = {t["id"]: t["agents"] for t in receipt["techniques"]}
    assert "malware" in techniques["T1003.001"]
    assert {"type": "url", "value": "https://10.23.123.11:443/Invoke-Mimikatz.ps1"} in [
        {"type": i["type"], "value": i["value"]} for i in receipt["iocs"]
    ]
    # Named only by a command line: in active mode a human would decide (a dry run records it).
    assert {
        (a["status"], a["guardrail"]["decision"], a["guardrail"]["outcome"])
        for a in receipt["actions"]
        if a["action"] == "block_url" and a["target"].startswith("https://10.23.123.11:443/")
    } == {("recorded", "require_approval", "record_only")}
    assert re.fullmatch(r"[0-9a-f]{64}", receipt["tool_call_chain"])
    assert not receipt["failures"]


@pytest.mark.skipif(shared_data_dir() is None, reason="the eval suites' data is in shared data")
def test_an_eval_runs_against_the_agents_the_platform_runs(
    platform: Platform, tmp_path: Path
) -> None:
    env = {**platform.env, "AURORA_SHARED_DATA": str(shared_data_dir())}
    figures = tmp_path / "figures.json"
    done = run(
        env,
        *("eval", "run", "technique-sentences", "--subject", "specialist", "--running-agents"),
        *("--limit", "3", "--log-dir", str(tmp_path / "logs"), "--json", str(figures)),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(figures.read_text())
    assert result["cases"] == 3
    log = result["log"]
    assert result["errors"] == 0, log  # the running threat_intel agent took the eval's token
    assert result["figures"]["schema_validity"] == 1.0


def test_sigterm_stops_it_cleanly(platform: Platform) -> None:
    """Last here: it stops the module's platform, as a service manager does. (Ctrl-C, and a
    start again on the same data, are in test_investigation_restart.)"""
    platform.wait_for(ALL_READY)  # each agent has something to stop
    assert platform.stop() == 0
    assert any("aurora: shutting down" in line for line in platform.lines)
    for name in SPECIALISTS:
        assert any(f"[{name}]" in line and "shutting down" in line for line in platform.lines)
    assert not platform.crash_reports()
