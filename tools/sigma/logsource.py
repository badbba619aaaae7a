"""Which events of the log table a Sigma ``logsource`` covers: the table, and its SQL.

A Sigma rule speaks about one kind of log (``product``, ``category``, ``service``); its
detection only means something on events of that kind. ``user_agent: ''`` on a proxy log says
"a request without a User-Agent"; on a Windows event, which has no User-Agent at all, it is true
of every event. So every converted rule is ANDed with its logsource's scope
(:func:`scope_of`), built from :data:`LOGSOURCES`: for each logsource the kinds of events
(:class:`Branch`) AuroraSOC's ingest parsers produce for it, told apart by the log table's
columns:

- ``format``: the parser that read the event (``windows``, ``zeek``, ``suricata``, ``syslog``,
  ``cef``, ``json``);
- ``event_code``: the Windows EventID, the Zeek log (``http``, ``dns``...), Suricata's
  ``event_type``, a syslog MSGID, a CEF class id;
- ``event_provider``: the Windows channel (the provider when the event names no channel), the
  syslog APP-NAME, ``zeek`` / ``suricata``, a CEF device's vendor and product;
- a normalised column that must hold a value (a CEF or JSON event is a web request when it
  carries a URL), or leaves of ``fields`` that must be present (a CloudTrail record has
  ``eventSource`` and ``awsRegion``).

``source`` is not used: it is whatever label the sending client chose, and names no kind of log.

What the table holds comes from the log sources themselves: Sysmon's event ids per Sigma
category (as pySigma's Sysmon pipeline maps them) in the Sysmon channel, the Security log's 4688
for process creation, PowerShell's 4103/4104 and 400/600/800 in their channels, every Windows
``service`` on its event log channel (pySigma's ``windows_logsource_mapping``), Sysmon for Linux
(``Linux-Sysmon/Operational``, read by the Windows parser) for Linux process, file and network
events, syslog programs for Linux services, Zeek and Suricata logs for network categories, and
the record shapes of CloudTrail and Google Cloud audit logs among JSON events. A logsource the
table lacks maps to nothing: its scope is :data:`NOTHING` (no event), and
:func:`unmapped_reason` says why, for the caller to refuse or disable the rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from sigma.pipelines.common import windows_logsource_mapping

from core.logstore.schema import BY_NAME, LogEvent
from tools.sigma.sql import string_literal

type Key = tuple[str | None, str | None, str | None]
"""(product, category, service), lower case, None for a part the rule leaves out."""

NOTHING: Final = "0"
"""The scope of a logsource that maps to nothing: no event of the log table."""


@dataclass(frozen=True, slots=True)
class Branch:
    """One kind of event a logsource covers: every term given here holds."""

    format: str
    """The parser that read the event (the ``format`` column)."""
    codes: tuple[str, ...] = ()
    """``event_code`` is one of these (none given: any)."""
    providers: tuple[str, ...] = ()
    """``event_provider`` is one of these, compared case-insensitively (none given: any)."""
    providerless: bool = False
    """With ``providers``: an event naming no channel or provider at all is taken too (judged
    by its code alone, as pySigma's Sysmon pipeline judges every event)."""
    columns: tuple[str, ...] = ()
    """Normalised fields (ECS names) that must hold a value."""
    leaves: tuple[str, ...] = ()
    """Leaves of ``fields`` that must be present."""
    equal: tuple[tuple[str, str], ...] = ()
    """Leaves of ``fields`` that must have exactly this value."""

    def sql(self) -> str:
        """The branch as a condition over the log table."""
        terms = [f"`format` = {string_literal(self.format)}"]
        if self.codes:
            terms.append(f"`event_code` IN ({', '.join(map(string_literal, self.codes))})")
        if self.providers:
            names = ", ".join(string_literal(p.lower()) for p in self.providers)
            provider = f"lowerUTF8(`event_provider`) IN ({names})"
            if self.providerless:
                provider = f"({provider} OR `event_provider` = '')"
            terms.append(provider)
        for name in self.columns:
            field = BY_NAME[name]
            column = f"`{field.column}`"
            terms.append(f"isNotNull({column})" if field.kind == "int" else f"{column} != ''")
        terms += [f"mapContains(`fields`, {string_literal(leaf)})" for leaf in self.leaves]
        terms += [
            f"`fields`[{string_literal(leaf)}] = {string_literal(value)}"
            for leaf, value in self.equal
        ]
        return " AND ".join(terms)

    def matches(self, event: LogEvent) -> bool:
        """Whether a parsed event (before it is stored) is of this kind, as :meth:`sql` says."""
        if event.format != self.format:
            return False
        if self.codes and str(event.values.get("event.code", "")) not in self.codes:
            return False
        if self.providers:
            provider = str(event.values.get("event.provider", "")).lower()
            named = provider in {p.lower() for p in self.providers}
            if not (named or (self.providerless and provider == "")):
                return False
        if any(event.values.get(name) in (None, "") for name in self.columns):
            return False
        if any(leaf not in event.fields for leaf in self.leaves):
            return False
        return all(event.fields.get(leaf) == value for leaf, value in self.equal)


@dataclass(frozen=True, slots=True)
class Scope:
    """The events a logsource covers: those of any of its branches."""

    branches: tuple[Branch, ...]

    def sql(self) -> str:
        """A condition over the log table (never empty: a scope has at least one branch)."""
        if len(self.branches) == 1:
            return self.branches[0].sql()
        return " OR ".join(f"({branch.sql()})" for branch in self.branches)

    def matches(self, event: LogEvent) -> bool:
        """Whether a parsed event is one the logsource covers."""
        return any(branch.matches(event) for branch in self.branches)


# -- Windows ---------------------------------------------------------------------------------

SYSMON_CHANNELS: Final = ("Microsoft-Windows-Sysmon/Operational", "Microsoft-Windows-Sysmon")
"""The Sysmon channel, and its provider (what ``event_provider`` holds without a channel)."""
SECURITY_CHANNELS: Final = ("Security", "Microsoft-Windows-Security-Auditing")
POWERSHELL_CHANNELS: Final = (
    "Microsoft-Windows-PowerShell/Operational",
    "PowerShellCore/Operational",
    "Microsoft-Windows-PowerShell",
    "PowerShellCore",
)
POWERSHELL_CLASSIC_CHANNELS: Final = ("Windows PowerShell", "PowerShell")
LINUX_SYSMON_CHANNELS: Final = ("Linux-Sysmon/Operational", "Linux-Sysmon")

WINDOWS_CATEGORIES: Final[Mapping[str, tuple[str, tuple[int, ...]]]] = {
    "process_creation": ("sysmon", (1,)),
    "file_change": ("sysmon", (2,)),
    "network_connection": ("sysmon", (3,)),
    "sysmon_status": ("sysmon", (4, 16)),
    "process_termination": ("sysmon", (5,)),
    "driver_load": ("sysmon", (6,)),
    "image_load": ("sysmon", (7,)),
    "create_remote_thread": ("sysmon", (8,)),
    "raw_access_thread": ("sysmon", (9,)),
    "process_access": ("sysmon", (10,)),
    "file_event": ("sysmon", (11,)),
    "registry_add": ("sysmon", (12,)),
    "registry_delete": ("sysmon", (12,)),
    "registry_set": ("sysmon", (13,)),
    "registry_rename": ("sysmon", (14,)),
    "registry_event": ("sysmon", (12, 13, 14)),
    "create_stream_hash": ("sysmon", (15,)),
    "pipe_created": ("sysmon", (17, 18)),
    "wmi_event": ("sysmon", (19, 20, 21)),
    "dns_query": ("sysmon", (22,)),
    "file_delete": ("sysmon", (23, 26)),
    "clipboard_capture": ("sysmon", (24,)),
    "process_tampering": ("sysmon", (25,)),
    "file_block_executable": ("sysmon", (27,)),
    "file_block_shredding": ("sysmon", (28,)),
    "file_executable_detected": ("sysmon", (29,)),
    "sysmon_error": ("sysmon", (255,)),
    "ps_classic_start": ("powershell-classic", (400,)),
    "ps_classic_provider_start": ("powershell-classic", (600,)),
    "ps_classic_script": ("powershell-classic", (800,)),
    "ps_module": ("powershell", (4103,)),
    "ps_script": ("powershell", (4104,)),
}
"""Windows Sigma categories: the log that carries each (Sysmon, PowerShell's operational log,
or the classic ``Windows PowerShell`` log) and its event ids there. Security 4688 also carries
``process_creation``. The one table of these: the log store's scoping (here) and the
in-process engine (:mod:`tools.sigma.engine`) both read it."""


def _codes(*ids: int) -> tuple[str, ...]:
    return tuple(map(str, ids))


def _windows() -> dict[Key, tuple[Branch, ...]]:
    table: dict[Key, tuple[Branch, ...]] = {("windows", None, None): (Branch("windows"),)}
    channels_of = {
        "sysmon": SYSMON_CHANNELS,
        "powershell": POWERSHELL_CHANNELS,
        "powershell-classic": POWERSHELL_CLASSIC_CHANNELS,
    }
    for category, (log, ids) in WINDOWS_CATEGORIES.items():
        table["windows", category, None] = (
            Branch("windows", _codes(*ids), channels_of[log], providerless=True),
        )
    table["windows", "process_creation", None] += (
        Branch("windows", _codes(4688), SECURITY_CHANNELS, providerless=True),
    )
    for service, channel in windows_logsource_mapping.items():
        channels = (channel,) if isinstance(channel, str) else tuple(channel)
        if service == "security":
            channels = SECURITY_CHANNELS
        elif service == "sysmon":
            channels = SYSMON_CHANNELS
        elif service == "powershell":
            channels = POWERSHELL_CHANNELS
        elif service == "powershell-classic":
            channels = POWERSHELL_CLASSIC_CHANNELS
        table["windows", None, service] = (Branch("windows", providers=channels),)
    return table


# -- Linux -----------------------------------------------------------------------------------

SYSLOG_PROGRAMS: Final[Mapping[str, tuple[str, ...]]] = {
    "sshd": ("sshd",),
    "sudo": ("sudo",),
    "cron": ("cron", "crond", "anacron"),
    "vsftpd": ("vsftpd",),
    "clamav": ("clamd", "freshclam", "clamav", "clamscan"),
    "guacamole": ("guacd",),
}
"""Linux services that are one program's syslog messages: the APP-NAMEs it logs under."""
AUTH_FACILITIES: Final = ("4", "10")
"""Syslog's ``auth`` and ``authpriv`` facilities: what ``/var/log/auth.log`` collects."""
WEB_SERVERS: Final[Mapping[str, tuple[str, ...]]] = {
    "apache": ("apache", "apache2", "httpd"),
    "nginx": ("nginx",),
}


def _linux() -> dict[Key, tuple[Branch, ...]]:
    table: dict[Key, tuple[Branch, ...]] = {
        ("linux", None, None): (Branch("syslog"),),
        ("linux", None, "syslog"): (Branch("syslog"),),
        ("linux", None, "auth"): tuple(
            Branch("syslog", equal=(("syslog.facility", facility),)) for facility in AUTH_FACILITIES
        ),
    }
    for service, programs in SYSLOG_PROGRAMS.items():
        table["linux", None, service] = (Branch("syslog", providers=programs),)
    for category in ("process_creation", "network_connection", "file_event"):
        _, ids = WINDOWS_CATEGORIES[category]  # Sysmon for Linux keeps Sysmon's event ids
        table["linux", category, None] = (Branch("windows", _codes(*ids), LINUX_SYSMON_CHANNELS),)
    for service, programs in WEB_SERVERS.items():
        table[None, None, service] = (Branch("syslog", providers=programs),)
    return table


# -- Network and web -------------------------------------------------------------------------

ZEEK_LOGS: Final = (
    "conn",
    "dns",
    "http",
    "ssl",
    "x509",
    "files",
    "notice",
    "weird",
    "ssh",
    "smtp",
    "ftp",
    "rdp",
    "dhcp",
    "kerberos",
    "ntlm",
    "smb_files",
    "smb_mapping",
    "dce_rpc",
    "tunnel",
    "software",
)
"""The Zeek logs the Zeek parser tells apart (its ``event_code``): Sigma's ``zeek`` services."""

_WEB_REQUESTS: Final = (
    Branch("zeek", ("http",)),
    Branch("suricata", ("http",)),
    Branch("cef", columns=("url.full",)),
    Branch("json", columns=("url.full",)),
)
"""HTTP requests: Zeek's http log, Suricata's http events, and CEF or ECS-shaped JSON events
that carry a URL (proxies and web servers write both)."""


def _network() -> dict[Key, tuple[Branch, ...]]:
    table: dict[Key, tuple[Branch, ...]] = {
        ("zeek", None, None): (Branch("zeek"),),
        ("suricata", None, None): (Branch("suricata"),),
        (None, "proxy", None): _WEB_REQUESTS,
        (None, "webserver", None): _WEB_REQUESTS,
        (None, "dns", None): (Branch("zeek", ("dns",)), Branch("suricata", ("dns",))),
        (None, "firewall", None): (
            Branch("cef"),
            Branch("zeek", ("conn",)),
            Branch("suricata", ("flow", "netflow")),
        ),
        (None, None, "netflow"): (Branch("suricata", ("flow", "netflow")),),
        ("aurora", None, "json"): (Branch("json"),),
    }
    for log in ZEEK_LOGS:
        table["zeek", None, log] = (Branch("zeek", (log,)),)
    return table


# -- Cloud audit records among JSON events ---------------------------------------------------


def _cloud() -> dict[Key, tuple[Branch, ...]]:
    return {
        # Every CloudTrail record carries these (the CloudTrail record contents reference).
        ("aws", None, "cloudtrail"): (
            Branch("json", leaves=("eventSource", "eventName", "awsRegion")),
        ),
        # A Cloud Audit Logs entry's payload is typed as an AuditLog.
        ("gcp", None, "gcp.audit"): (
            Branch(
                "json",
                equal=(("protoPayload.@type", "type.googleapis.com/google.cloud.audit.AuditLog"),),
            ),
        ),
    }


LOGSOURCES: Final[Mapping[Key, tuple[Branch, ...]]] = {
    **_windows(),
    **_linux(),
    **_network(),
    **_cloud(),
}
"""Every logsource the log table holds events of, by (product, category, service)."""


def _key(product: str | None, category: str | None, service: str | None) -> Key:
    return (
        product.lower() if product else None,
        category.lower() if category else None,
        service.lower() if service else None,
    )


def scope_of(product: str | None, category: str | None, service: str | None) -> Scope | None:
    """The events a logsource covers; None when it maps to nothing (see
    :func:`unmapped_reason`). Matched exactly on all three parts, case-insensitively."""
    branches = LOGSOURCES.get(_key(product, category, service))
    return Scope(branches) if branches else None


def scope_sql(product: str | None, category: str | None, service: str | None) -> str:
    """The scope as a condition over the log table: :data:`NOTHING` for an unmapped one."""
    scope = scope_of(product, category, service)
    return scope.sql() if scope is not None else NOTHING


def describe(product: str | None, category: str | None, service: str | None) -> str:
    """``product=windows category=file_access`` (the parts the rule gives)."""
    parts = [
        f"{name}={value}"
        for name, value in (("product", product), ("category", category), ("service", service))
        if value
    ]
    return " ".join(parts) or "(empty)"


def unmapped_reason(product: str | None, category: str | None, service: str | None) -> str | None:
    """Why a logsource maps to nothing (None when it maps to something)."""
    if scope_of(product, category, service) is not None:
        return None
    if not (product or category or service):
        return (
            "the rule names no logsource (product, category or service), so it would match"
            " events of every kind"
        )
    return (
        f"logsource {describe(product, category, service)} maps to no events the log store"
        " holds: no ingest parser produces that kind of log, so its detection cannot be"
        " evaluated on the events it was written for"
    )
