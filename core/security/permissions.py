"""Roles and permissions: the one table every check reads, and the README documents.

The permission strings are those of the Permission column of ``spec/API.md``; ``admin`` stands
for the spec's "Admin" (user management) and only the admin role holds it.
"""

from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    ALERTS_READ = "alerts:read"
    ALERTS_WRITE = "alerts:write"
    CASES_READ = "cases:read"
    CASES_WRITE = "cases:write"
    SIEM_READ = "siem:read"
    SIEM_WRITE = "siem:write"
    EDR_READ = "edr:read"
    EDR_WRITE = "edr:write"
    PLAYBOOKS_READ = "playbooks:read"
    SOAR_READ = "soar:read"
    SOAR_WRITE = "soar:write"
    INVESTIGATIONS_READ = "investigations:read"
    INVESTIGATIONS_WRITE = "investigations:write"
    NETWORK_READ = "network:read"
    NETWORK_WRITE = "network:write"
    AGENTS_READ = "agents:read"
    CHAT_READ = "chat:read"
    CHAT_WRITE = "chat:write"
    SYSTEM_READ = "system:read"
    SYSTEM_WRITE = "system:write"
    ADMIN = "admin"


class Role(StrEnum):
    ADMIN = "admin"
    ANALYST = "analyst"
    RESPONDER = "responder"
    HUNTER = "hunter"
    ML_ENGINEER = "ml_engineer"
    OPERATOR = "operator"
    VIEWER = "viewer"
    SERVICE_AGENT = "service_agent"
    SERVICE_RESPONDER = "service_responder"


P = Permission
_READ = frozenset(p for p in P if p.value.endswith(":read"))

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(P),
    Role.ANALYST: _READ
    | {P.ALERTS_WRITE, P.CASES_WRITE, P.SIEM_WRITE, P.INVESTIGATIONS_WRITE, P.CHAT_WRITE},
    Role.RESPONDER: _READ
    | {
        P.ALERTS_WRITE,
        P.CASES_WRITE,
        P.EDR_WRITE,
        P.SOAR_WRITE,
        P.INVESTIGATIONS_WRITE,
        P.NETWORK_WRITE,
        P.CHAT_WRITE,
    },
    Role.HUNTER: _READ
    | {P.ALERTS_WRITE, P.CASES_WRITE, P.SIEM_WRITE, P.INVESTIGATIONS_WRITE, P.CHAT_WRITE},
    Role.ML_ENGINEER: frozenset(
        {
            P.ALERTS_READ,
            P.CASES_READ,
            P.SIEM_READ,
            P.INVESTIGATIONS_READ,
            P.INVESTIGATIONS_WRITE,
            P.AGENTS_READ,
            P.CHAT_READ,
            P.CHAT_WRITE,
            P.SYSTEM_READ,
        }
    ),
    Role.OPERATOR: _READ | {P.INVESTIGATIONS_WRITE, P.SYSTEM_WRITE},
    Role.VIEWER: _READ - {P.SYSTEM_READ},
    Role.SERVICE_AGENT: frozenset(
        {
            P.ALERTS_READ,
            P.CASES_READ,
            P.SIEM_READ,
            P.EDR_READ,
            P.NETWORK_READ,
            P.INVESTIGATIONS_READ,
            P.AGENTS_READ,
        }
    ),
    Role.SERVICE_RESPONDER: frozenset(
        {
            P.ALERTS_READ,
            P.CASES_READ,
            P.SIEM_READ,
            P.EDR_READ,
            P.EDR_WRITE,
            P.SOAR_READ,
            P.SOAR_WRITE,
            P.NETWORK_READ,
            P.INVESTIGATIONS_READ,
            P.AGENTS_READ,
        }
    ),
}

ROLE_DESCRIPTIONS: dict[Role, str] = {
    Role.ADMIN: "everything, including user management",
    Role.ANALYST: "triage alerts and cases, search and ingest logs, investigate, chat",
    Role.RESPONDER: "the analyst's reads plus containment: EDR, SOAR, network response",
    Role.HUNTER: "detection engineering and hunts over the SIEM, cases, investigations",
    Role.ML_ENGINEER: "run investigations and evals, read agents and inference status",
    Role.OPERATOR: "watch everything, dispatch investigations, set the mode, approve actions",
    Role.VIEWER: "read-only access to security data",
    Role.SERVICE_AGENT: "service identity of specialist agents: least-privilege reads",
    Role.SERVICE_RESPONDER: "service identity of the responder agent: reads plus EDR/SOAR writes",
}

_BY_NAME = {role.value: granted for role, granted in ROLE_PERMISSIONS.items()}
_NONE: frozenset[Permission] = frozenset()

SERVICE_ROLES = frozenset({Role.SERVICE_AGENT, Role.SERVICE_RESPONDER})


def permissions_for(role: str) -> frozenset[Permission]:
    """The permissions a role grants; none for an unknown role."""
    return _BY_NAME.get(role, _NONE)
