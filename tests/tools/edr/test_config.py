"""load_connectors: the lab first, the file's connectors, secrets from the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from core.errors import ValidationFailed
from tests.fakes.edr_apis import FakeDefender, FakeWazuh
from tools.edr import config as config_module
from tools.edr.base import EdrAction, EndpointState
from tools.edr.config import load_connectors
from tools.edr.defender import DEFAULT_API_URL, DefenderConnector
from tools.edr.lab import LabConnector
from tools.edr.wazuh import DEFAULT_ISOLATE_COMMAND, WazuhConnector

WAZUH_PASSWORD = "wz-SECRET-e1f2a3b4c5d6e7f8a9b0"
MDE_SECRET = "mde-SECRET-Zq7~kL3.xN8_pV2-rT5m"
ENV = {"AURORA_WAZUH_PASSWORD": WAZUH_PASSWORD, "AURORA_MDE_SECRET": MDE_SECRET}


def write(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "edr.yaml"
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document))
    return path


def wazuh_entry(**extra: Any) -> dict[str, Any]:
    return {
        "name": "wazuh-prod",
        "product": "wazuh",
        "base_url": "https://wazuh.example.org:55000/",
        "username": "aurora-api",
        "password_env": "AURORA_WAZUH_PASSWORD",
        **extra,
    }


def defender_entry(**extra: Any) -> dict[str, Any]:
    return {
        "name": "mde",
        "product": "defender",
        "tenant_id": "8c1b2f4e-5a6d-4e7f-8a9b-0c1d2e3f4a5b",
        "client_id": "2f9a6c1d-3b4e-4f5a-9b8c-7d6e5f4a3b2c",
        "client_secret_env": "AURORA_MDE_SECRET",
        **extra,
    }


def faults(error: pytest.ExceptionInfo[ValidationFailed]) -> list[tuple[list[Any], str]]:
    return [(fault["loc"], fault["type"]) for fault in error.value.detail]


async def test_without_a_file_only_the_lab() -> None:
    [lab] = load_connectors(None, {})
    assert isinstance(lab, LabConnector)
    assert (lab.name, lab.product) == ("lab", "lab")


async def test_the_documented_example(tmp_path: Path) -> None:
    doc = config_module.__doc__ or ""
    example = doc.split("The format::", 1)[1].split("\n\nEvery HTTP entry", 1)[0]
    connectors = load_connectors(
        write(tmp_path, example),
        {
            "AURORA_WAZUH_PASSWORD": "p",
            "AURORA_DEFENDER_CLIENT_SECRET": "s",
            "AURORA_ELASTIC_API_KEY": "k",
        },
    )
    assert [(c.name, c.product) for c in connectors] == [
        ("lab", "lab"),
        ("wazuh-prod", "wazuh"),
        ("mde", "defender"),
        ("elastic", "elastic"),
        ("training-range", "lab"),
    ]


async def test_connectors_are_built_with_their_options(tmp_path: Path) -> None:
    document = {
        "connectors": [
            wazuh_entry(page_size=200, release_command="!release-host", verify_tls=False),
            defender_entry(isolation_type="Selective", timeout_seconds=5),
        ]
    }
    lab, wazuh, mde = load_connectors(write(tmp_path, document), ENV)
    assert isinstance(lab, LabConnector)
    assert isinstance(wazuh, WazuhConnector)
    assert (wazuh.base_url, wazuh.page_size) == ("https://wazuh.example.org:55000", 200)
    assert (wazuh.isolate_command, wazuh.release_command) == (
        DEFAULT_ISOLATE_COMMAND,
        "!release-host",
    )
    assert isinstance(mde, DefenderConnector)
    assert (mde.base_url, mde.isolation_type, mde.scan_type) == (
        DEFAULT_API_URL,
        "Selective",
        "Quick",
    )
    assert mde.timeout.total == 5
    for connector in (wazuh, mde):
        assert WAZUH_PASSWORD not in repr(vars(connector))
        assert MDE_SECRET not in repr(vars(connector))
        await connector.aclose()


async def test_built_connectors_reach_the_products(tmp_path: Path) -> None:
    async with (
        FakeWazuh(username="aurora-api", password=WAZUH_PASSWORD) as wazuh,
        FakeDefender(
            tenant_id="8c1b2f4e-5a6d-4e7f-8a9b-0c1d2e3f4a5b",
            client_id="2f9a6c1d-3b4e-4f5a-9b8c-7d6e5f4a3b2c",
            client_secret=MDE_SECRET,
        ) as mde,
    ):
        wazuh.add_agent("001", "ws-1", ip="10.0.0.1")
        mde.add_machine("ws-2", last_ip="10.0.0.2")
        document = {
            "connectors": [
                wazuh_entry(base_url=wazuh.base_url),
                defender_entry(base_url=mde.base_url, login_url=mde.base_url),
            ]
        }
        lab, *products = load_connectors(
            write(tmp_path, document), ENV, lab_state_path=tmp_path / "lab.json"
        )
        names = []
        for connector in products:
            async with connector:
                names += [e.hostname for e in await connector.inventory()]
        assert names == ["ws-1", "ws-2"]
        assert isinstance(lab, LabConnector)
        await lab.act(EdrAction.ISOLATE, lab.enrol("ws-3"), comment="x")
        [again, *_] = load_connectors(None, {}, lab_state_path=tmp_path / "lab.json")
        assert isinstance(again, LabConnector)
        assert again.state_of("ws-3") is EndpointState.ISOLATED


@pytest.mark.parametrize(
    ("entry", "loc", "kind"),
    [
        (wazuh_entry(base_url="http://wazuh.example.org:55000"), "base_url", "value_error"),
        (wazuh_entry(base_url="ftp://wazuh.example.org"), "base_url", "value_error"),
        (wazuh_entry(password_env="not a name"), "password_env", "string_pattern_mismatch"),
        (wazuh_entry(password="hunter2"), "password", "extra_forbidden"),
        (wazuh_entry(page_size=0), "page_size", "greater_than_equal"),
        (wazuh_entry(username="a:b"), "username", "string_pattern_mismatch"),
        (wazuh_entry(name="Wazuh Prod"), "name", "string_pattern_mismatch"),
        (wazuh_entry(name="lab"), "name", "value_error"),
        (defender_entry(isolation_type="Partial"), "isolation_type", "literal_error"),
        (defender_entry(login_url="http://login.example"), "login_url", "value_error"),
        ({"name": "x", "product": "crowdstrike"}, "product", "union_tag_invalid"),
        (
            {"name": "x", "product": "elastic", "base_url": "https://kibana.example.org"},
            "api_key_env",
            "missing",
        ),
    ],
)
def test_invalid_entries_name_the_field(
    tmp_path: Path, entry: dict[str, Any], loc: str, kind: str
) -> None:
    document = {"connectors": [defender_entry(name="first"), entry]}
    with pytest.raises(ValidationFailed) as invalid:
        load_connectors(write(tmp_path, document), ENV)
    expected = ["connectors", 1] if loc == "product" else ["connectors", 1, loc]
    assert (expected, kind) in faults(invalid)
    assert "hunter2" not in str(invalid.value.detail)


def test_http_on_loopback_is_allowed(tmp_path: Path) -> None:
    document = {"connectors": [wazuh_entry(base_url="http://127.0.0.1:55000")]}
    assert len(load_connectors(write(tmp_path, document), ENV)) == 2


def test_missing_secret_variable(tmp_path: Path) -> None:
    document = {"connectors": [wazuh_entry(), defender_entry()]}
    with pytest.raises(ValidationFailed) as invalid:
        load_connectors(write(tmp_path, document), {"AURORA_WAZUH_PASSWORD": "p"})
    [fault] = invalid.value.detail
    assert fault["loc"] == ["connectors", 1, "client_secret_env"]
    assert fault["msg"] == "environment variable AURORA_MDE_SECRET is not set"


def test_duplicate_names(tmp_path: Path) -> None:
    document = {"connectors": [wazuh_entry(), wazuh_entry()]}
    with pytest.raises(ValidationFailed) as invalid:
        load_connectors(write(tmp_path, document), ENV)
    assert faults(invalid) == [(["connectors", 1, "name"], "duplicate")]


def test_unreadable_or_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed) as missing:
        load_connectors(tmp_path / "absent.yaml", ENV)
    assert faults(missing) == [(["file"], "os")]
    with pytest.raises(ValidationFailed) as broken:
        load_connectors(write(tmp_path, "connectors:\n  - name: [unclosed\n"), ENV)
    assert faults(broken) == [(["file"], "yaml")]
    assert "line" in broken.value.detail[0]["msg"]
    with pytest.raises(ValidationFailed) as wrong_top:
        load_connectors(write(tmp_path, {"connector": []}), ENV)
    assert (["connector"], "extra_forbidden") in faults(wrong_top)
    with pytest.raises(ValidationFailed) as bad_ca:
        load_connectors(write(tmp_path, {"connectors": [wazuh_entry(ca_file="/no/ca.pem")]}), ENV)
    assert faults(bad_ca) == [(["connectors", 0, "ca_file"], "ca_file")]
    assert len(load_connectors(write(tmp_path, ""), ENV)) == 1
