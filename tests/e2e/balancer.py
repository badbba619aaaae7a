"""HAProxy in front of gateway processes on loopback, configured from the compose deployment's
own ``deploy/haproxy/haproxy.cfg``: the same defaults, health check and WebSocket handling, with
the Docker DNS discovery (``resolvers``, ``server-template``) replaced by one ``server`` line per
gateway, and the log routes sent to one designated store owner when the gateways keep the
embedded log store (chDB is one process's; see docs/scaling.md).

Each rewrite looks for the text it replaces and fails loudly when the deployment's file no
longer has it, so the test cannot drift away from what compose runs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Final

import pytest

from tests.ports import free_port
from tests.waiting import until

CONFIG: Final = Path(__file__).resolve().parents[2] / "deploy" / "haproxy" / "haproxy.cfg"
LOG_ROUTES: Final = (
    "/api/v1/siem/",
    "/api/v1/network-telemetry/",
    "/api/v1/network-security/",
    "/api/v1/detections",
)
"""What reads or writes the log store: with the embedded store, the owner's."""


def haproxy() -> str:
    """The ``haproxy`` binary; skips (or fails where CI requires it) when there is none."""
    found = shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if Path(p).exists()), None
    )
    if found is None:
        reason = "HAProxy is not installed (.ci/run installs the Debian package haproxy)"
        if os.environ.get("AURORA_REQUIRE_HAPROXY") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def _replace(config: str, pattern: str, new: str, *, flags: int = re.MULTILINE) -> str:
    changed, count = re.subn(pattern, new, config, flags=flags)
    assert count, f"deploy/haproxy/haproxy.cfg no longer has {pattern!r}"
    return changed


def render(*, port: int, monitor_port: int, gateways: list[str], owner: str | None) -> str:
    """The deployment's configuration for gateways at ``gateways`` (``host:port``) behind
    ``127.0.0.1:port``; ``owner``: the one the log routes go to."""
    config = CONFIG.read_text()
    config = _replace(config, r"^resolvers docker\n(?:[ \t]+.*\n)+", "")
    # Two file descriptors a connection: within the open-file limit a test process has.
    config = _replace(config, r"^(\s+)maxconn \d+$", r"\1maxconn 2000")
    config = _replace(config, r"^(\s+)bind :8080$", rf"\1bind 127.0.0.1:{port}")
    config = _replace(config, r"^(\s+)bind :8405$", rf"\1bind 127.0.0.1:{monitor_port}")
    config = _replace(config, r" resolvers docker init-addr none$", "")
    servers = "".join(
        f"    server gateway{i} {address}\n" for i, address in enumerate(gateways, start=1)
    )
    config = _replace(config, r"^\s+server-template gateway \d+ gateway:8080\n", servers)
    if owner is not None:
        rule = (
            f"    use_backend store_owner if {{ path_beg {' '.join(LOG_ROUTES)} }}\n"
            "    default_backend gateways"
        )
        config = _replace(config, r"^    default_backend gateways$", rule)
        check = re.search(r"^backend gateways\n((?:[ \t]+.*\n)+)", config, re.MULTILINE)
        assert check is not None
        kept = "".join(
            line + "\n"
            for line in check.group(1).splitlines()
            if line.split()[0] in {"option", "http-check", "default-server"}
        )
        config += f"\nbackend store_owner\n{kept}    server owner {owner}\n"
    return config


class Balancer:
    """HAProxy running :func:`render`'s configuration, in the foreground, its log in a file."""

    def __init__(
        self,
        directory: Path,
        gateways: list[str],
        *,
        owner: str | None = None,
        port: int | None = None,
    ) -> None:
        binary = haproxy()
        directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.monitor_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = directory / "haproxy.cfg"
        config.write_text(
            render(port=self.port, monitor_port=self.monitor_port, gateways=gateways, owner=owner)
        )
        checked = subprocess.run(
            [binary, "-c", "-f", str(config)], capture_output=True, text=True, check=False
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        self.log = directory / "haproxy.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [binary, "-db", "-f", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def ready(self) -> None:
        """Wait until it serves a gateway's public probe."""
        until(
            lambda: self._probe() == 200,
            within=60,
            interval=0.1,
            what=f"HAProxy serving on {self.url} ({self.log})",
        )

    def _probe(self) -> int:
        if self.process.poll() is not None:
            raise AssertionError(f"HAProxy exited: {self.log.read_text()}")
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/auth/providers", timeout=5) as r:
                return int(r.status)
        except urllib.error.HTTPError as err:
            return err.code
        except OSError:
            return 0

    def metrics(self) -> str:
        """Its Prometheus exporter's page (the monitoring frontend)."""
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.monitor_port}/metrics", timeout=10
        ) as response:
            return str(response.read().decode())

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
