"""Start-up of ``aurora up``: how long from the command's start until the gateway answers and
every specialist agent (and the MCP tool server) is ready, and the memory it then holds.

``aurora up`` runs as a user runs it, as a subprocess (its own session, as a shell runs a job) on
a fresh temporary data directory and free loopback ports. Times are taken from just before the
process is spawned: the gateway answering ``GET /api/v1`` (polled every 20 ms), each child's
readiness as ``aurora up`` reports it (``All N agents are ready``, ``the MCP tool server is
ready``), and "everything ready", the latest of them. Once everything is ready, the resident set
(``VmRSS`` of ``/proc/PID/status``) of every process of its tree is read, with the proportional
set (``Pss``, shared pages divided among their sharers) beside it, and summed. Then it is stopped
with SIGINT (SIGKILL to its process group after ``--stop-seconds``) and the time that took is
reported too.

Each run is preceded, in the same run, by the bare interpreter's cost: ``python -c pass`` and
``python -c "import gateway.app"`` (the gateway's imports alone), so the figures read against what
Python itself takes on this machine. Medians over ``--runs`` (default 3) runs.

Target: everything ready in under 10 s (median), with every process's memory reported.

    .venv/bin/python benchmarks/startup.py [--runs 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agents.catalog import SPECIALISTS  # noqa: E402 - after the path is set
from benchmarks.common import HOST, cpu_seconds  # noqa: E402

TARGET_SECONDS = 10.0
READY_SECONDS = 120.0
"""How long a run may take to be ready before it is given up as failed."""
PROBE_SECONDS = 0.02
AGENTS_READY = re.compile(r"All (\d+) agents are ready")
MCP_READY = "the MCP tool server is ready"


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive loopback ports free now (below the kernel's ephemeral
    range, where no outgoing connection lands meanwhile)."""
    for first in range(21_000, 32_000 - count, count + 7):
        sockets: list[socket.socket] = []
        try:
            for port in range(first, first + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind((HOST, port))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        return first
    raise RuntimeError(f"no {count} consecutive free ports on {HOST}")


def environment(data_dir: Path) -> dict[str, str]:
    """This process's environment without its ``AURORA_*`` settings, and the platform's data in
    ``data_dir``, on free loopback ports."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AURORA_")}
    gateway = free_ports(len(SPECIALISTS) + 2)
    env.update(
        AURORA_DATA_DIR=str(data_dir),
        AURORA_HOST=HOST,
        AURORA_PORT=str(gateway),
        AURORA_AGENT_HOST=HOST,
        AURORA_AGENT_BASE_PORT=str(gateway + 2),
        AURORA_MCP_HOST=HOST,
        AURORA_MCP_PORT=str(gateway + 1),
        AURORA_ADMIN_PASSWORD="startup benchmark password 1",
    )
    return env


def timed(cwd: Path, *argv: str) -> float:
    """Seconds ``argv`` takes to run in ``cwd`` to its end (it must succeed)."""
    started = time.perf_counter()
    subprocess.run(argv, check=True, cwd=cwd, stdout=subprocess.DEVNULL)  # noqa: S603 - ours
    return time.perf_counter() - started


@dataclass
class Process:
    pid: int
    name: str
    rss_mib: float
    pss_mib: float | None
    cpu_s: float | None
    """CPU time (user + system) it has used so far."""


@dataclass
class Run:
    python_pass_s: float
    import_gateway_app_s: float
    gateway_answering_s: float | None = None
    agents_ready_s: float | None = None
    mcp_ready_s: float | None = None
    everything_ready_s: float | None = None
    stop_s: float | None = None
    exit_code: int | None = None
    rss_mib: float | None = None
    pss_mib: float | None = None
    cpu_s: float | None = None
    """CPU time the processes up when everything was ready had used: what start-up costs,
    however busy the machine was."""
    processes: list[Process] = field(default_factory=list)
    error: str | None = None


def descendants(root: int) -> list[int]:
    """``root`` and every process below it (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _kib(text: str, key: str) -> float | None:
    match = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) / 1024 if match else None


def process_memory(pid: int, root: int) -> Process | None:
    """One process's resident and proportional set, and what it is; None when it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return None
    try:
        pss = _kib(Path(f"/proc/{pid}/smaps_rollup").read_text(), "Pss")
    except OSError:
        pss = None
    words = [word for word in argv if word]
    if pid == root:
        name = "aurora up (gateway)"
    elif "agent" in words and "run" in words:
        name = f"agent {words[words.index('run') + 1]}"
    elif words[-1:] == ["mcp"]:
        name = "mcp server"
    elif "-c" in words[:-1]:  # multiprocessing's: name the module it runs
        code = words[words.index("-c") + 1]
        name = re.sub(r"^from (?:multiprocessing\.)?(\S+) import.*", r"\1", code)[:24]
    else:
        name = " ".join(Path(word).name for word in words[:3])
    return Process(pid, name, _kib(status, "VmRSS") or 0.0, pss, cpu_seconds(pid))


class Output:
    """What the platform says, read by a thread as it comes, each line with when it came."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[tuple[float, str]] = []
        self.changed = threading.Condition()
        self.ended = False
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            with self.changed:
                self.lines.append((time.monotonic(), line))
                self.changed.notify_all()
        with self.changed:
            self.ended = True
            self.changed.notify_all()

    def first(self, pattern: re.Pattern[str] | str) -> float | None:
        for when, line in self.lines:
            if re.search(pattern, line):
                return when
        return None

    def text(self) -> str:
        return "".join(line for _, line in self.lines)


def probe_gateway(url: str, started: float, result: Run, done: threading.Event) -> None:
    """Set ``result.gateway_answering_s`` once ``GET url`` answers 200."""
    while not done.is_set():
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    result.gateway_answering_s = time.monotonic() - started
                    return
        except (OSError, urllib.error.URLError):
            pass
        done.wait(PROBE_SECONDS)


def one_run(args: argparse.Namespace) -> Run:
    python = sys.executable
    result = Run(
        python_pass_s=timed(args.checkout, python, "-c", "pass"),
        import_gateway_app_s=timed(args.checkout, python, "-c", "import gateway.app"),
    )
    with tempfile.TemporaryDirectory(prefix="aurora-bench-startup-") as tmp:
        env = environment(Path(tmp) / "data")
        url = f"http://{HOST}:{env['AURORA_PORT']}/api/v1"
        logs = (Path(tmp) / "stderr.log").open("w")
        started = time.monotonic()
        process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
            [python, "-m", "gateway.cli", "up"],
            cwd=args.checkout,
            env=env,
            stdout=subprocess.PIPE,
            stderr=None if args.verbose else logs,
            text=True,
            start_new_session=True,
        )
        output = Output(process)
        done = threading.Event()
        prober = threading.Thread(
            target=probe_gateway, args=(url, started, result, done), daemon=True
        )
        prober.start()
        try:
            deadline = started + READY_SECONDS
            with output.changed:
                while not (output.first(AGENTS_READY) and output.first(MCP_READY)):
                    if output.ended or time.monotonic() > deadline:
                        break
                    output.changed.wait(0.5)
            prober.join(max(0.0, deadline - time.monotonic()))
            agents, mcp = output.first(AGENTS_READY), output.first(MCP_READY)
            result.agents_ready_s = agents - started if agents else None
            result.mcp_ready_s = mcp - started if mcp else None
            times = (result.gateway_answering_s, result.agents_ready_s, result.mcp_ready_s)
            if any(t is None for t in times):
                said = output.text()[-3000:]
                logs.flush()
                logged = Path(logs.name).read_text()[-3000:]
                result.error = f"not everything was ready:\n{said}\n(its logs:)\n{logged}"
            else:
                result.everything_ready_s = max(t for t in times if t is not None)
                memory = [process_memory(pid, process.pid) for pid in descendants(process.pid)]
                result.processes = [p for p in memory if p is not None]
                result.rss_mib = round(sum(p.rss_mib for p in result.processes), 1)
                result.cpu_s = round(sum(p.cpu_s or 0.0 for p in result.processes), 2)
                pss = [p.pss_mib for p in result.processes]
                result.pss_mib = None if None in pss else round(sum(filter(None, pss)), 1)
        finally:
            done.set()
            stopping = time.monotonic()
            process.send_signal(signal.SIGINT)
            try:
                result.exit_code = process.wait(args.stop_seconds)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                result.exit_code = process.wait()
            result.stop_s = time.monotonic() - stopping
            with output.changed:
                while not output.ended:
                    output.changed.wait(1.0)
            logs.close()
    return result


def median(runs: list[Run], name: str) -> float | None:
    values = [getattr(run, name) for run in runs if getattr(run, name) is not None]
    return round(float(statistics.median(values)), 3) if values else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--stop-seconds", type=float, default=30.0, help="SIGKILL after this long stopping"
    )
    parser.add_argument("--verbose", action="store_true", help="relay the platform's logs")
    parser.add_argument(
        "--checkout",
        type=Path,
        default=ROOT,
        help="run the platform of this source tree (e.g. an older revision's `git archive`, "
        "to compare on the same machine; its modules come before the installed ones)",
    )
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()

    runs: list[Run] = []
    for number in range(1, args.runs + 1):
        run = one_run(args)
        runs.append(run)
        if run.error:
            print(f"run {number}: {run.error}", file=sys.stderr)
    columns = (
        ("python -c pass", "python_pass_s"),
        ("import gateway.app", "import_gateway_app_s"),
        ("gateway answering", "gateway_answering_s"),
        ("all agents ready", "agents_ready_s"),
        ("MCP server ready", "mcp_ready_s"),
        ("everything ready", "everything_ready_s"),
        ("CPU used by then", "cpu_s"),
        ("stopped in", "stop_s"),
    )
    print(f"aurora up, {len(SPECIALISTS)} agents, {args.runs} runs; seconds")
    print(f"{'':22}" + "".join(f"{f'run {i}':>9}" for i in range(1, len(runs) + 1)) + "   median")
    for label, name in columns:
        cells = "".join(
            f"{getattr(r, name):>9.2f}" if getattr(r, name) is not None else f"{'-':>9}"
            for r in runs
        )
        value = median(runs, name)
        print(f"{label:22}{cells}{value if value is not None else '-':>9}")
    print("once everything was ready: memory (MiB) and CPU used (s) of each process")
    for number, run in enumerate(runs, 1):
        if not run.processes:
            continue
        print(f"  run {number}: {'RSS':>13}{'PSS':>9}{'CPU':>9}")
        for proc in run.processes:
            pss = f"{proc.pss_mib:.1f}" if proc.pss_mib is not None else "-"
            cpu = f"{proc.cpu_s:.2f}" if proc.cpu_s is not None else "-"
            print(f"    {proc.name:22}{proc.rss_mib:>9.1f}{pss:>9}{cpu:>9}")
        print(f"    {'total':22}{run.rss_mib:>9.1f}{run.pss_mib or '-':>9}{run.cpu_s:>9.2f}")
    ready = median(runs, "everything_ready_s")
    imports = median(runs, "import_gateway_app_s")
    failed = [run for run in runs if run.error]
    report = {
        "runs": [asdict(run) for run in runs],
        "median": {name: median(runs, name) for _, name in columns}
        | {name: median(runs, name) for name in ("rss_mib", "pss_mib")},
        "target_seconds": TARGET_SECONDS,
    }
    ok = not failed and ready is not None and ready < TARGET_SECONDS
    if ready is not None and imports:
        print(f"everything ready / import gateway.app: {ready / imports:.2f}x")
    print(
        f"{'PASS' if ok else 'FAIL'}: everything ready in {ready} s (median), target "
        f"< {TARGET_SECONDS:g} s; {len(failed)} of {len(runs)} runs failed"
    )
    mem = all(run.processes for run in runs if not run.error)
    print(f"{'PASS' if mem else 'FAIL'}: memory of every process reported")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0 if ok and mem else 1


if __name__ == "__main__":
    sys.exit(main())
