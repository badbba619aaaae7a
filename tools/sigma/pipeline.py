"""The pySigma processing pipeline that maps Sigma field names onto AuroraSOC's log table.

Mapping targets are ECS names (``process.command_line``), the names the log table's schema
speaks; the backend turns an ECS name into its column and any other name into
``fields['<name>']``, the flattened leaves of the original event. A Sigma field is mapped onto a
column only where the column holds exactly the same text the field would (``Image`` is copied to
``process.executable`` verbatim): ``User`` stays in ``fields`` for Windows because ``user.name``
is split from ``DOMAIN\\user``. Everything unmapped still matches through ``fields``, which holds
every leaf under its original name.

The pipeline maps fields only: :func:`tools.sigma.convert` scopes every rule, of any product,
to its log source by the log table's own columns (:mod:`tools.sigma.logsource`), which also
tells the Sysmon channel's event 1 from another log's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from sigma.processing.conditions import LogsourceCondition
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import FieldMappingTransformation

WINDOWS_FIELDS: Final[Mapping[str, str]] = {
    "EventID": "event.code",
    "Computer": "host.name",
    "Image": "process.executable",
    "CommandLine": "process.command_line",
    "ProcessId": "process.pid",
    "ParentImage": "process.parent.executable",
    "ParentCommandLine": "process.parent.command_line",
    "ParentProcessId": "process.parent.pid",
    "TargetFilename": "file.path",
    "TargetObject": "registry.path",
    "Details": "registry.value",
    "QueryName": "dns.question.name",
    "SourceIp": "source.ip",
    "SourcePort": "source.port",
    "DestinationIp": "destination.ip",
    "DestinationPort": "destination.port",
}
"""Windows (Sysmon / Security) names whose column is an exact copy of the field."""

UNIX_FIELDS: Final[Mapping[str, str]] = {
    "Image": "process.executable",
    "CommandLine": "process.command_line",
    "ProcessId": "process.pid",
    "ParentImage": "process.parent.executable",
    "ParentCommandLine": "process.parent.command_line",
    "ParentProcessId": "process.parent.pid",
    "User": "user.name",
    "TargetFilename": "file.path",
    "SourceIp": "source.ip",
    "SourcePort": "source.port",
    "DestinationIp": "destination.ip",
    "DestinationPort": "destination.port",
}
"""Linux and macOS (Sysmon for Linux, auditd-derived) names: the same taxonomy as Windows, but
user names carry no domain there."""

NETWORK_FIELDS: Final[Mapping[str, str]] = {
    "src_ip": "source.ip",
    "src_port": "source.port",
    "dst_ip": "destination.ip",
    "dst_port": "destination.port",
    "id.orig_h": "source.ip",
    "id.orig_p": "source.port",
    "id.resp_h": "destination.ip",
    "id.resp_p": "destination.port",
    "proto": "network.transport",
}
"""Firewall, DNS, generic network and Zeek connection fields."""

DNS_FIELDS: Final[Mapping[str, str]] = {"query": "dns.question.name"}

WEB_FIELDS: Final[Mapping[str, str]] = {
    "c-uri": "url.full",
    "cs-method": "http.request.method",
    "c-useragent": "user_agent.original",
    "cs-user-agent": "user_agent.original",
    "sc-status": "http.response.status_code",
    "c-ip": "source.ip",
    "user_agent": "user_agent.original",
    "method": "http.request.method",
    "status_code": "http.response.status_code",
}
"""Proxy and web-server (W3C names) fields with a column of the same meaning. ``cs-host``,
``cs-uri-query``, ``cs-uri-stem`` and the other parts of a URL stay in ``fields``: no column holds
just that part, and matching them against the full URL would change what ``startswith`` and
equality mean."""

NETWORK_CATEGORIES: Final[tuple[str, ...]] = ("firewall", "dns", "network_connection")
WEB_CATEGORIES: Final[tuple[str, ...]] = ("proxy", "webserver")


def field_mapping(product: str | None, category: str | None, service: str | None) -> dict[str, str]:
    """Sigma field name → ECS name for a log source (the same table the pipeline applies);
    names not in it go to ``fields``. Used for correlation ``group-by`` fields too."""
    mapping: dict[str, str] = {}
    if product == "windows":
        mapping.update(WINDOWS_FIELDS)
    elif product in ("linux", "macos"):
        mapping.update(UNIX_FIELDS)
    if category in NETWORK_CATEGORIES or product == "zeek":
        mapping.update(NETWORK_FIELDS)
    if category in ("dns", "dns_query") or service == "dns":
        mapping.update(DNS_FIELDS)
    if category in WEB_CATEGORIES or service == "http":
        mapping.update(WEB_FIELDS)
    return mapping


def _widened(mapping: Mapping[str, str]) -> dict[str | None, str | list[str]]:
    # FieldMappingTransformation's parameter type is wider than (and invariant with) ours.
    widened: dict[str | None, str | list[str]] = {}
    widened.update(mapping)
    return widened


def _mapping_items(
    identifier: str, mapping: Mapping[str, str], conditions: list[LogsourceCondition]
) -> ProcessingItem:
    return ProcessingItem(
        identifier=identifier,
        transformation=FieldMappingTransformation(_widened(mapping)),
        rule_conditions=list(conditions),
        rule_condition_linking=any,
    )


def aurora_pipeline() -> ProcessingPipeline:
    """A fresh pipeline (pySigma pipelines keep state per conversion: build one per rule)."""
    items = [
        _mapping_items(
            "aurora_windows_fields", WINDOWS_FIELDS, [LogsourceCondition(product="windows")]
        ),
        _mapping_items(
            "aurora_unix_fields",
            UNIX_FIELDS,
            [LogsourceCondition(product="linux"), LogsourceCondition(product="macos")],
        ),
        _mapping_items(
            "aurora_network_fields",
            NETWORK_FIELDS,
            [LogsourceCondition(category=c) for c in NETWORK_CATEGORIES]
            + [LogsourceCondition(product="zeek")],
        ),
        _mapping_items(
            "aurora_dns_fields",
            DNS_FIELDS,
            [
                LogsourceCondition(category="dns"),
                LogsourceCondition(category="dns_query"),
                LogsourceCondition(service="dns"),
            ],
        ),
        _mapping_items(
            "aurora_web_fields",
            WEB_FIELDS,
            [LogsourceCondition(category=c) for c in WEB_CATEGORIES]
            + [LogsourceCondition(service="http")],
        ),
    ]
    return ProcessingPipeline(name="AuroraSOC log table", priority=20, items=items)
