"""A rule whose logsource maps to no events of the log store: refused when it is to be enabled
(AURORA-4222 naming ``logsource`` and why), kept disabled with a warning when saved disabled
(a corpus imported in bulk), and never enabled later; a Sigma hunt of one is refused too."""

from __future__ import annotations

from typing import Any

import pytest

from core.security.permissions import Role
from gateway.detections.models import DetectionRule
from gateway.detections.rules import _SIGMA_LOGSOURCE, _WINDOWS_CATEGORY
from gateway.detections.runs import scoped_condition
from tests.conftest import Gateway
from tools.sigma import convert, scope_of
from tools.sigma.logsource import NOTHING, scope_sql

RULES = "/api/v1/detections/rules"

AZURE = """
title: Azure role assignment deleted
status: test
logsource:
  product: azure
  service: activitylogs
detection:
  selection:
    operationName: MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS/DELETE
  condition: selection
level: medium
"""
PROXY = """
title: HTTP request with an empty User-Agent
status: test
logsource:
  category: proxy
detection:
  selection:
    c-useragent: ''
  condition: selection
level: medium
"""
AZURE_LOGSOURCE = {"product": "azure", "category": None, "service": "activitylogs"}


def refused_for_logsource(status: int, body: dict[str, Any]) -> None:
    assert status == 422, body
    error = body["error"]
    assert error["code"] == "AURORA-4222"
    assert error["detail"]["logsource"] == AZURE_LOGSOURCE
    [issue] = error["detail"]["errors"]
    assert issue["type"] == "logsource"
    assert "product=azure service=activitylogs maps to no events" in issue["message"]


async def test_unmapped_logsource_is_refused_enabled_and_kept_disabled_otherwise(
    gateway: Gateway,
) -> None:
    engineer = await gateway.user(Role.ANALYST)
    response = await gateway.client.post(
        RULES, headers=engineer, json={"sigma": AZURE, "enabled": True}
    )
    refused_for_logsource(response.status, await response.json())
    listed = await (await gateway.client.get(RULES, headers=engineer)).json()
    assert listed["total"] == 0  # nothing half-written

    # Saved disabled (as a bulk import does): kept, with the reason in the answer.
    response = await gateway.client.post(RULES, headers=engineer, json={"sigma": AZURE})
    rule = await response.json()
    assert response.status == 201, rule
    assert rule["enabled"] is False
    assert rule["logsource"]["product"] == "azure"
    assert "maps to no events" in rule["logsource"]["unmapped"]
    assert any("kept disabled" in warning for warning in rule["warnings"])
    assert rule["condition"].startswith("(0) AND (")

    # Enabling it later is refused, and changes nothing.
    response = await gateway.client.patch(
        f"{RULES}/{rule['id']}", headers=engineer, json={"enabled": True, "interval_seconds": 600}
    )
    refused_for_logsource(response.status, await response.json())
    again = await (await gateway.client.get(RULES, headers=engineer)).json()
    [kept] = again["items"]
    assert (kept["enabled"], kept["interval_seconds"], kept["version"]) == (
        False,
        rule["interval_seconds"],
        rule["version"],
    )

    # Given a logsource the store holds, the same rule can be enabled.
    response = await gateway.client.patch(
        f"{RULES}/{rule['id']}", headers=engineer, json={"sigma": PROXY, "enabled": True}
    )
    fixed = await response.json()
    assert response.status == 200, fixed
    assert fixed["enabled"] is True
    assert "unmapped" not in fixed["logsource"]
    assert not any("kept disabled" in warning for warning in fixed["warnings"])
    assert "`format` = 'zeek'" in fixed["condition"]

    # An enabled rule's Sigma cannot be replaced by one that maps to nothing.
    response = await gateway.client.patch(
        f"{RULES}/{rule['id']}", headers=engineer, json={"sigma": AZURE}
    )
    refused_for_logsource(response.status, await response.json())


async def test_a_sigma_hunt_of_an_unmapped_logsource_is_refused(gateway: Gateway) -> None:
    hunter = await gateway.user(Role.ANALYST)
    response = await gateway.client.post(
        "/api/v1/siem/hunts",
        headers=hunter,
        json={"name": "azure", "kind": "sigma", "query": AZURE},
    )
    refused_for_logsource(response.status, await response.json())
    response = await gateway.client.post(
        "/api/v1/siem/hunts",
        headers=hunter,
        json={"name": "proxy", "kind": "sigma", "query": PROXY},
    )
    assert response.status == 201, await response.json()


@pytest.mark.parametrize("format", sorted(_SIGMA_LOGSOURCE))
def test_every_rule_drafted_from_an_event_has_a_logsource_that_maps(format: str) -> None:
    """Promoting a stored event drafts a rule whose logsource covers that event's format."""
    logsource = _SIGMA_LOGSOURCE[format]
    scope = scope_of(logsource.get("product"), logsource.get("category"), logsource.get("service"))
    assert scope is not None
    assert any(branch.format == format for branch in scope.branches)
    if format == "windows":
        for category in _WINDOWS_CATEGORY.values():
            assert scope_of("windows", category, None) is not None


# -- rules saved before conversions scoped themselves -----------------------------------------

LEGACY_DETECTION = "`fields`['cs-user-agent'] = ''"


def stored_rule(condition: str, **logsource: str | None) -> DetectionRule:
    return DetectionRule(condition=condition, logsource=dict(logsource), correlation=None)


def test_a_rule_stored_unscoped_runs_within_its_logsource_scope() -> None:
    unmapped = stored_rule(LEGACY_DETECTION, product=None, category="proxy_typo", service=None)
    assert scoped_condition(unmapped) == f"({NOTHING}) AND ({LEGACY_DETECTION})"
    proxy = stored_rule(LEGACY_DETECTION, product=None, category="proxy", service=None)
    assert scoped_condition(proxy) == f"({scope_sql(None, 'proxy', None)}) AND ({LEGACY_DETECTION})"


def test_a_rule_converted_with_its_scope_is_run_as_stored() -> None:
    conversion = convert(
        "title: t\nlogsource:\n  category: proxy\ndetection:\n"
        "  selection:\n    c-useragent: ''\n  condition: selection\n"
    )
    rule = stored_rule(conversion.condition, product=None, category="proxy", service=None)
    assert scoped_condition(rule) == conversion.condition
    rule.correlation = {"type": "event_count"}
    assert scoped_condition(stored_rule("x", category="proxy")) != "x"
    rule.condition = "x"
    assert scoped_condition(rule) == "x"  # a correlation's bases carry their own scopes
