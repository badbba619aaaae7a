"""Sigma uploads against logins: what a large multi-document Sigma body costs the gateway, and
what it costs everyone else while it is being converted.

The gateway runs in its own process on loopback, on a fresh data directory. The bodies are built
from real SigmaHQ rules (the shared ``sigma/sigma_rules_all.tgz``, each rule trimmed to its title,
id, status, log source, detection, level and tags and kept only if it stays small, so that the
body fits the API's 256 KiB rule field); without the corpus, generated valid rules stand in (the
report says so).

1. ``big``: one ``POST /api/v1/detections/rules`` of ``--documents`` (400) YAML documents alone:
   its status and AURORA code, wall time and the server's CPU time (the gateway process, its
   conversion workers and every child it reaped; the embedded log store's background threads
   count too, a few tens of ms). A small ``warmup`` upload goes first (a correlation of two
   rules: it may start a conversion worker and load what correlations need) and is reported
   as well.
2. ``correlation``: one body the gateway does convert, a temporal correlation over
   ``--correlated`` (49) of the rules, which come with it in the body: the same measures.
3. Logins: ``--logins`` logins one after another on the idle gateway, then at least as many
   (until each client has had an answer) while ``--uploaders`` clients upload the ``big`` body
   back to back, then the same while they upload the ``correlation`` body; p50 and p90 of each
   phase, and the ratio loaded / idle (1.0: the uploads cost logins nothing).

Each measure starts once the gateway is at rest (under 5 % of a core; the gateway runs without
ingest workers, which play no part here). Only loopback addresses are used; the gateway is
stopped at the end (also on Ctrl-C), and every phase ends by itself (each request has a timeout
of ``--timeout`` seconds).

    .venv/bin/python benchmarks/sigma_upload.py [--documents 400] [--logins 40] [--uploaders 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import statistics
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from aiohttp import ClientSession, ClientTimeout

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (
    ADMIN_PASSWORD,
    HOST,
    free_port,
    gateway_settings,
    login,
    percentile,
    prepare,
    run_gateway,
    shared_data,
)
from core.settings import Settings

KEPT_KEYS = ("title", "id", "status", "logsource", "detection", "level", "tags")
MAX_DOCUMENT_BYTES = 600
"""Trimmed rules larger than this are skipped: 400 of them must fit the 256 KiB rule field."""


def corpus_archive() -> Path | None:
    archive = shared_data() / "sigma" / "sigma_rules_all.tgz"
    return archive if archive.is_file() else None


def real_rules(archive: Path, count: int) -> list[dict[str, Any]]:
    """``count`` SigmaHQ rules (archive order), trimmed, each small once written as YAML."""
    rules: list[dict[str, Any]] = []
    with tarfile.open(archive) as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            if not (member.isfile() and member.name.endswith(".yml")):
                continue
            handle = tar.extractfile(member)
            if handle is None:
                continue
            documents = [d for d in yaml.safe_load_all(handle.read()) if d]
            if len(documents) != 1 or "detection" not in documents[0]:
                continue
            rule = {key: documents[0][key] for key in KEPT_KEYS if key in documents[0]}
            if len(yaml.safe_dump(rule, sort_keys=False)) <= MAX_DOCUMENT_BYTES:
                rules.append(rule)
                if len(rules) == count:
                    break
    return rules


def generated_rules(count: int) -> list[dict[str, Any]]:
    return [
        {
            "title": f"Generated process creation rule {n}",
            "id": f"00000000-0000-4000-8000-{n:012d}",
            "status": "experimental",
            "logsource": {"product": "windows", "category": "process_creation"},
            "detection": {
                "selection": {
                    "Image|endswith": [f"\\tool{n}.exe", f"\\helper{n}.exe"],
                    "CommandLine|contains": [f" -flag{n} ", f"/opt{n}"],
                },
                "filter": {"ParentImage|startswith": "C:\\Program Files\\"},
                "condition": "selection and not filter",
            },
            "level": "medium",
        }
        for n in range(count)
    ]


def dump(documents: list[dict[str, Any]]) -> str:
    return "---\n".join(yaml.safe_dump(d, sort_keys=False, allow_unicode=True) for d in documents)


def correlation_body(rules: list[dict[str, Any]]) -> str:
    """``rules`` (named ``r0``, ``r1``...), then a temporal correlation over them."""
    named = [{**rule, "name": f"r{n}"} for n, rule in enumerate(rules)]
    correlation = {
        "title": f"Temporal correlation of {len(rules)} rules",
        "status": "experimental",
        "correlation": {
            "type": "temporal",
            "rules": [rule["name"] for rule in named],
            "group-by": ["Computer"],
            "timespan": "10m",
        },
        "level": "high",
    }
    return dump([*named, correlation])


def tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of process ``pid``, of the children it has reaped and of those
    still running (Linux /proc); 0 elsewhere."""

    def stat(p: int) -> list[str]:
        return Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()

    ticks = os.sysconf("SC_CLK_TCK")
    try:
        fields = stat(pid)
    except OSError:
        return 0.0
    total = sum(int(fields[i]) for i in (11, 12, 13, 14))
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                with contextlib.suppress(OSError):
                    total += sum(int(f) for f in stat(int(child))[11:13])
    return total / ticks


SETTLE_SECONDS = 180.0


async def settle(pid: int) -> None:
    """Wait (up to :data:`SETTLE_SECONDS`) until the gateway's processes use under 5 % of a
    core, so that start-up work is not counted as an upload's."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline:
        before = tree_cpu_seconds(pid)
        await asyncio.sleep(0.5)
        if tree_cpu_seconds(pid) - before < 0.025:
            return


async def upload(
    session: ClientSession, base: str, token: str, body: str, pid: int
) -> dict[str, Any]:
    """One upload alone: status, AURORA code, wall and server CPU seconds."""
    cpu = tree_cpu_seconds(pid)
    started = time.perf_counter()
    async with session.post(
        f"{base}/api/v1/detections/rules",
        json={"sigma": body},
        headers={"Authorization": f"Bearer {token}"},
    ) as response:
        answer = await response.json()
        status = response.status
    wall = time.perf_counter() - started
    error = answer.get("error") if isinstance(answer, dict) else None
    return {
        "documents": body.count("\n---\n") + 1,
        "bytes": len(body.encode()),
        "status": status,
        "code": error.get("code") if isinstance(error, dict) else None,
        "message": error.get("message") if isinstance(error, dict) else None,
        "wall_s": round(wall, 3),
        "server_cpu_s": round(tree_cpu_seconds(pid) - cpu, 3),
    }


async def timed_logins(
    session: ClientSession,
    base: str,
    username: str,
    count: int,
    until: Callable[[], bool] = lambda: True,
) -> list[float]:
    """``count`` logins one after another, and more until ``until()``: their latencies in ms,
    sorted."""
    latencies: list[float] = []
    while len(latencies) < count or not until():
        started = time.perf_counter()
        async with session.post(
            f"{base}/api/v1/auth/token",
            json={"username": username, "password": ADMIN_PASSWORD},
        ) as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"a login answered {response.status}")
        latencies.append((time.perf_counter() - started) * 1000)
    return sorted(latencies)


def summary(latencies: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(latencies), 1),
        "p90_ms": round(percentile(latencies, 0.9), 1),
        "max_ms": round(latencies[-1], 1),
    }


async def logins_while_uploading(
    args: argparse.Namespace,
    session: ClientSession,
    base: str,
    username: str,
    token: str,
    body: str,
) -> dict[str, Any]:
    """``--logins`` logins while ``--uploaders`` clients upload ``body`` back to back, and
    more until every client has had an answer (so that the logins span whole uploads)."""
    statuses: dict[str, int] = {}
    answered = [0] * args.uploaders
    stop = asyncio.Event()

    async def uploader(n: int) -> None:
        while not stop.is_set():
            async with session.post(
                f"{base}/api/v1/detections/rules",
                json={"sigma": body},
                headers={"Authorization": f"Bearer {token}"},
            ) as response:
                await response.read()
                statuses[str(response.status)] = statuses.get(str(response.status), 0) + 1
                answered[n] += 1

    uploaders = [asyncio.create_task(uploader(n)) for n in range(args.uploaders)]
    try:
        loaded = await timed_logins(
            session, base, username, args.logins, until=lambda: min(answered) > 0
        )
    finally:
        stop.set()
        for task in uploaders:
            task.cancel()
        await asyncio.gather(*uploaders, return_exceptions=True)
    return {**summary(loaded), "logins": len(loaded), "uploads_answered": statuses}


async def logins(
    args: argparse.Namespace,
    session: ClientSession,
    base: str,
    username: str,
    token: str,
    bodies: dict[str, str],
    pid: int,
) -> dict[str, Any]:
    """Logins on the idle gateway, then while the big body, then the correlation body, are
    uploaded; each loaded phase with its ratio to the idle one."""
    idle = summary(await timed_logins(session, base, username, args.logins))
    report: dict[str, Any] = {"logins": args.logins, "uploaders": args.uploaders, "idle": idle}
    for name in ("big", "correlation"):
        await settle(pid)
        print(f"logins while uploading the {name} body", file=sys.stderr)
        loaded = await logins_while_uploading(args, session, base, username, token, bodies[name])
        loaded["ratio_p50"] = round(loaded["p50_ms"] / idle["p50_ms"], 2)
        loaded["ratio_p90"] = round(loaded["p90_ms"] / idle["p90_ms"], 2)
        report[f"during_{name}"] = loaded
    return report


async def measure(
    args: argparse.Namespace,
    settings: Settings,
    process: multiprocessing.process.BaseProcess,
    bodies: dict[str, str],
) -> dict[str, Any]:
    base = f"http://{HOST}:{settings.port}"
    async with ClientSession(timeout=ClientTimeout(total=args.timeout)) as session:
        token = await login(
            session, base, settings.admin_username, ADMIN_PASSWORD, process.is_alive
        )
        pid = process.pid or 0
        report: dict[str, Any] = {}
        for name in ("warmup", "big", "correlation"):
            await settle(pid)
            print(f"uploading the {name} body", file=sys.stderr)
            report[name] = await upload(session, base, token, bodies[name], pid)
        await settle(pid)
        print("logins on the idle gateway", file=sys.stderr)
        report["logins"] = await logins(
            args, session, base, settings.admin_username, token, bodies, pid
        )
    return report


def print_report(report: dict[str, Any]) -> None:
    print(f"rules: {report['rules']}")
    print(f"{'body':12}{'docs':>6}{'KiB':>7}{'status':>8}  {'code':12}{'wall s':>9}{'CPU s':>9}")
    for name in ("warmup", "big", "correlation"):
        row = report[name]
        print(
            f"{name:12}{row['documents']:>6}{row['bytes'] / 1024:>7.0f}{row['status']:>8}  "
            f"{row['code'] or '-':12}{row['wall_s']:>9.3f}{row['server_cpu_s']:>9.3f}"
        )
        if row["message"]:
            print(f"{'':14}{row['message']}")
    logins = report["logins"]
    print(
        f"logins (one after another, {logins['logins']} idle; {logins['uploaders']} clients"
        " uploading back to back in the loaded phases, which last until each had an answer):"
    )
    for name in ("idle", "during_big", "during_correlation"):
        row = logins[name]
        line = (
            f"  {name:20} p50 {row['p50_ms']:>8.1f} ms  p90 {row['p90_ms']:>8.1f} ms"
            f"  max {row['max_ms']:>8.1f} ms"
        )
        if name != "idle":
            line += (
                f"  ratio to idle p50 {row['ratio_p50']}, p90 {row['ratio_p90']};"
                f" {row['logins']} logins, uploads answered {row['uploads_answered']}"
            )
        print(line)


async def run(args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    archive = corpus_archive()
    wanted = max(args.documents, args.correlated)
    rules = real_rules(archive, wanted) if archive is not None else []
    described = f"SigmaHQ ({archive.name})" if archive is not None else "generated"
    if len(rules) < wanted:
        rules, described = generated_rules(wanted), "generated (no SigmaHQ corpus found)"
    bodies = {
        "warmup": correlation_body(rules[:2]),
        "big": dump(rules[: args.documents]),
        "correlation": correlation_body(rules[: args.correlated]),
    }
    # Log parsing plays no part here, and its workers take seconds to start.
    settings = gateway_settings(data_dir, free_port(), ingest_workers=0)
    await prepare(settings)
    # Not daemonic: the gateway may start worker processes of its own.
    process = multiprocessing.get_context("spawn").Process(target=run_gateway, args=(settings,))
    process.start()
    try:
        report = await measure(args, settings, process, bodies)
    finally:
        process.terminate()
        await asyncio.to_thread(process.join, 30)
        if process.is_alive():
            process.kill()
    report["rules"] = described
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=400, help="documents of the big body")
    parser.add_argument("--correlated", type=int, default=49, help="rules of the correlation body")
    parser.add_argument("--logins", type=int, default=40, help="logins idle and under load")
    parser.add_argument("--uploaders", type=int, default=2, help="clients uploading at once")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per request")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    if min(args.documents, args.correlated, args.logins, args.uploaders) < 1:
        parser.error("the counts must be at least 1")
    with tempfile.TemporaryDirectory(prefix="aurora-bench-") as tmp:
        try:
            report = asyncio.run(run(args, Path(tmp)))
        except KeyboardInterrupt:
            return 130  # the gateway was stopped on the way out
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
