"""Windows event log records (Security, Sysmon, PowerShell, System, ...): the one reader of
their JSON layouts (:func:`read_windows`), and what it feeds: the log table's :class:`LogEvent`
(:func:`parse_windows`) and the events the specialists analyse (:func:`normalise_event`).

Two JSON layouts are read, the two that EVTX converters write:

- flat: ``EventID``, ``Channel``, ``Computer``, ``Provider_Name``, ``TimeCreated``, ... then the
  event data fields (``CommandLine``, ``Image``, ...) side by side at the top level;
- nested, as the ``evtx`` package (pyevtx-rs) writes: ``Event.System...`` with XML attributes
  under ``#attributes``, and ``Event.EventData`` (or ``Event.UserData.<Wrapper>``).

An uploaded ``.evtx`` file is read by the ``evtx`` package (:func:`evtx_records`) into the nested
layout, then parsed like any nested event.

``fields`` naming, the contract the Sigma field mapping relies on: both layouts give the same
bare names, exactly as Windows spells them.

- Every ``EventData`` and ``UserData`` leaf under its own name (``Image``, ``CommandLine``,
  ``GrantedAccess``, ``Hashes``, ``TargetUserName``); the ``UserData`` wrapper element
  (``LogFileCleared``...) is skipped. Unnamed ``<Data>`` items (classic PowerShell 400/600/800
  events) are one leaf ``Data``, items joined with a line feed. An event data name that clashes
  with a System name is kept as ``EventData.<Name>`` (the System leaf keeps the bare name).
- Every ``System`` leaf under its element name (``EventID``, ``Channel``, ``Computer``,
  ``Level``, ``Keywords``, ``EventRecordID``...); attributes take the flat converters' names:
  ``Provider_Name``, ``Provider_Guid``, ``TimeCreated`` (its ``SystemTime``),
  ``ExecutionProcessID``, ``ExecutionThreadID``, ``SecurityUserID``, ``CorrelationActivityID``,
  ``EventIDQualifiers`` (element name then attribute name; ``Provider_`` with an underscore, as
  Sigma writes it). In the nested layout the attribute is also kept under its dotted path
  relative to ``System`` (``Provider.#attributes.Name``).
- Anything else under ``Event`` (``RenderingInfo``...) under its dotted path; XML namespace
  attributes are dropped.
- Values as text: numbers in decimal, ``true``/``false``, ``null`` as the empty string.

For analysis, :class:`WinEvent` holds the System part by name (id, channel, provider, computer,
time, record number) and every event data leaf as text under the same bare names (unnamed
``<Data>`` items and lists joined with a line feed); the log an event came from
(:attr:`WinEvent.log`) says what its id means.

Normalised values: ``event.code`` is the EventID's decimal text; ``event.provider`` the channel
(what Sigma's ``service`` names), else the provider; process, user, network, file, registry and
DNS fields from the Sysmon and Security data names; ``event.category``/``event.action`` from the
event id for Sysmon, Security and PowerShell events; ``event.outcome`` from the audit keywords.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

import evtx

from core.logstore.schema import LogEvent
from tools.logs.common import (
    EventRejected,
    Fields,
    Values,
    basename,
    excerpt,
    first_timestamp,
    leaf_text,
    make_event,
    parse_timestamp,
    to_int,
)

EVTX_MAGIC: Final[bytes] = b"ElfFile\x00"
"""The first eight bytes of an EVTX file."""
EVTX_HEADER_BYTES: Final[int] = 4_096
EVTX_CHUNK_BYTES: Final[int] = 65_536

SYSMON: Final[str] = "sysmon"
SECURITY: Final[str] = "security"
POWERSHELL: Final[str] = "powershell"

# (category, action) by event id, per family. Actions follow Sigma's logsource categories
# where one exists, so a rule's category reads straight off the table.
_SYSMON_ACTIONS: Final[dict[int, tuple[str, str]]] = {
    1: ("process", "process_creation"),
    2: ("file", "file_change"),
    3: ("network", "network_connection"),
    4: ("configuration", "sysmon_status"),
    5: ("process", "process_termination"),
    6: ("driver", "driver_load"),
    7: ("library", "image_load"),
    8: ("process", "create_remote_thread"),
    9: ("process", "raw_access_thread"),
    10: ("process", "process_access"),
    11: ("file", "file_event"),
    12: ("registry", "registry_add"),
    13: ("registry", "registry_set"),
    14: ("registry", "registry_rename"),
    15: ("file", "create_stream_hash"),
    16: ("configuration", "sysmon_config_change"),
    17: ("file", "pipe_created"),
    18: ("file", "pipe_connected"),
    19: ("wmi", "wmi_event"),
    20: ("wmi", "wmi_event"),
    21: ("wmi", "wmi_event"),
    22: ("dns", "dns_query"),
    23: ("file", "file_delete"),
    24: ("process", "clipboard_capture"),
    25: ("process", "process_tampering"),
    26: ("file", "file_delete_detected"),
    27: ("file", "file_block_executable"),
    28: ("file", "file_block_shredding"),
    29: ("file", "file_executable_detected"),
    255: ("configuration", "sysmon_error"),
}
_SECURITY_ACTIONS: Final[dict[int, tuple[str, str]]] = {
    1102: ("configuration", "audit_log_cleared"),
    4616: ("configuration", "system_time_changed"),
    4624: ("authentication", "logon"),
    4625: ("authentication", "logon_failed"),
    4627: ("authentication", "group_membership"),
    4634: ("authentication", "logoff"),
    4647: ("authentication", "logoff"),
    4648: ("authentication", "explicit_credential_logon"),
    4656: ("file", "object_handle_requested"),
    4657: ("registry", "registry_set"),
    4658: ("file", "object_handle_closed"),
    4660: ("file", "object_deleted"),
    4661: ("iam", "object_handle_requested"),
    4662: ("iam", "directory_object_access"),
    4663: ("file", "object_access"),
    4672: ("iam", "special_privileges_assigned"),
    4673: ("iam", "privileged_service_called"),
    4674: ("iam", "privileged_object_operation"),
    4688: ("process", "process_creation"),
    4689: ("process", "process_termination"),
    4697: ("configuration", "service_installed"),
    4698: ("configuration", "scheduled_task_created"),
    4699: ("configuration", "scheduled_task_deleted"),
    4702: ("configuration", "scheduled_task_updated"),
    4719: ("configuration", "audit_policy_changed"),
    4720: ("iam", "user_created"),
    4722: ("iam", "user_enabled"),
    4723: ("iam", "password_change"),
    4724: ("iam", "password_reset"),
    4725: ("iam", "user_disabled"),
    4726: ("iam", "user_deleted"),
    4728: ("iam", "group_member_added"),
    4729: ("iam", "group_member_removed"),
    4732: ("iam", "group_member_added"),
    4733: ("iam", "group_member_removed"),
    4738: ("iam", "user_changed"),
    4740: ("iam", "user_locked_out"),
    4756: ("iam", "group_member_added"),
    4757: ("iam", "group_member_removed"),
    4765: ("iam", "sid_history_added"),
    4767: ("iam", "user_unlocked"),
    4768: ("authentication", "kerberos_tgt_request"),
    4769: ("authentication", "kerberos_service_ticket_request"),
    4771: ("authentication", "kerberos_preauth_failed"),
    4776: ("authentication", "credential_validation"),
    4778: ("session", "session_reconnected"),
    4779: ("session", "session_disconnected"),
    4964: ("iam", "special_group_logon"),
    5136: ("iam", "directory_object_modified"),
    5140: ("file", "network_share_access"),
    5145: ("file", "network_share_access"),
    5156: ("network", "network_connection"),
    5157: ("network", "network_connection_blocked"),
    5376: ("iam", "credential_backup"),
    5379: ("iam", "credential_read"),
    5381: ("iam", "credential_enumeration"),
    5382: ("iam", "credential_read"),
}
_POWERSHELL_ACTIONS: Final[dict[int, tuple[str, str]]] = {
    400: ("process", "ps_classic_start"),
    403: ("process", "ps_classic_stop"),
    600: ("process", "ps_classic_provider_start"),
    800: ("process", "ps_classic_script"),
    4103: ("process", "ps_module"),
    4104: ("process", "ps_script"),
}
_ACTIONS: Final[dict[str, dict[int, tuple[str, str]]]] = {
    SYSMON: _SYSMON_ACTIONS,
    SECURITY: _SECURITY_ACTIONS,
    POWERSHELL: _POWERSHELL_ACTIONS,
}
# Security events whose "Target" account is the one the event is about (logons, Kerberos,
# account management); for the others the acting "Subject" is.
_TARGET_ACCOUNT_FIRST: Final[frozenset[int]] = frozenset(
    {4624, 4625, 4627, 4634, 4647, 4648, 4720, 4722, 4723, 4724, 4725, 4726, 4738, 4740}
    | {4767, 4768, 4769, 4771, 4776, 4964}
)
_FAILURE_EVENTS: Final[frozenset[int]] = frozenset({4625, 4771})
# Sysmon events whose Hashes are of a file other than the acting process's image.
_FILE_HASH_EVENTS: Final[frozenset[int]] = frozenset({6, 7, 15, 23, 26, 29})
_AUDIT_SUCCESS: Final[int] = 0x0020_0000_0000_0000
_AUDIT_FAILURE: Final[int] = 0x0010_0000_0000_0000
_IANA_TRANSPORT: Final[dict[str, str]] = {"1": "icmp", "6": "tcp", "17": "udp", "58": "ipv6-icmp"}
_NONE_MARKERS: Final[frozenset[str]] = frozenset({"", "-"})
FLAT_SYSTEM_FIELDS: Final[frozenset[str]] = frozenset(
    {
        "EventID",
        "Channel",
        "Computer",
        "TimeCreated",
        "EventRecordID",
        "Provider_Name",
        "Provider_Guid",
        "Level",
        "Task",
        "Opcode",
        "Keywords",
        "Version",
        "ExecutionProcessID",
        "ExecutionThreadID",
    }
)
"""Names of the flat layout that describe the record (its System part), not the event."""


def is_windows(obj: Mapping[str, Any]) -> bool:
    """Whether ``obj`` looks like a Windows event in either layout."""
    event = obj.get("Event")
    if isinstance(event, dict) and isinstance(event.get("System"), dict):
        return True
    if isinstance(obj.get("System"), dict) and ("EventData" in obj or "UserData" in obj):
        return True
    return "EventID" in obj and any(k in obj for k in ("Channel", "Computer", "Provider_Name"))


@dataclass(slots=True)
class WindowsRecord:
    """One event read by :func:`read_windows`: its leaves by bare name (``view``: System and
    event data alike, an event data name clashing with a System one as ``EventData.<Name>``),
    which of those names are System ones (``system``), and the bounded ``fields``."""

    view: dict[str, Any]
    fields: Fields
    system: Collection[str] = ()

    def add(self, name: str, value: Any, *, data: bool = False) -> None:
        if data and name in self.view:
            # An event data name clashing with a System name: System keeps the bare name.
            name = f"EventData.{name}"
        if isinstance(value, dict | list):
            if not isinstance(value, dict):
                self.view[name] = value
            self.fields.add_tree(value, name)
        else:
            # A leaf (most of an event): straight in, as add_tree would put it.
            self.view[name] = value
            self.fields.add(name, value)


class _NoFields(Fields):
    """``fields`` for a reader that wants only the view: keeps nothing, so any leaves fit."""

    __slots__ = ()

    def add(self, key: str, value: Any, *, replace: bool = True) -> None:
        return

    def add_leaves(self, leaves: Mapping[str, Any]) -> bool:
        return True

    def add_tree(self, value: Any, prefix: str = "") -> None:
        return


def read_windows(obj: Mapping[str, Any], fields: Fields | None = None) -> WindowsRecord:
    """A Windows event in either JSON layout read into one :class:`WindowsRecord`: the one
    reader of both layouts, for the log table (:func:`parse_windows`) and for the analysis of
    events (:func:`normalise_event`). ``fields`` None keeps no ``fields``."""
    kept = _NoFields() if fields is None else fields
    nested = isinstance(obj.get("Event"), dict) or isinstance(obj.get("System"), dict)
    return _read_nested(obj, kept) if nested else _read_flat(obj, kept)


def _system_attribute_name(element: str, attribute: str) -> str:
    if element == "Provider":
        return f"Provider_{attribute}"
    if element == "TimeCreated" and attribute == "SystemTime":
        return "TimeCreated"
    return f"{element}{attribute}"


def _is_namespace(name: str) -> bool:
    return name == "xmlns" or name.startswith("xmlns:")


def _read_nested(obj: Mapping[str, Any], fields: Fields) -> WindowsRecord:
    event_value = obj.get("Event")
    event: Mapping[str, Any] = event_value if isinstance(event_value, dict) else obj
    record = WindowsRecord(view={}, fields=fields)
    system = event.get("System")
    if isinstance(system, dict):
        for element, value in system.items():
            if not isinstance(value, dict):
                record.add(element, value)
                continue
            attributes = value.get("#attributes")
            if isinstance(attributes, dict):
                for attribute, attribute_value in attributes.items():
                    if _is_namespace(attribute):
                        continue
                    record.add(_system_attribute_name(element, attribute), attribute_value)
                    record.fields.add(f"{element}.#attributes.{attribute}", attribute_value)
            if "#text" in value:
                record.add(element, value["#text"])
            for key, child in value.items():
                if key not in ("#attributes", "#text"):
                    record.fields.add_tree(child, f"{element}.{key}")
    record.system = set(record.view)
    _read_event_data(record, event.get("EventData"))
    user_data = event.get("UserData")
    if isinstance(user_data, dict):
        for wrapper, content in user_data.items():
            if wrapper == "#attributes":
                continue
            if isinstance(content, dict):
                for name, value in content.items():
                    if name != "#attributes":
                        record.add(name, value, data=True)
            else:
                record.add(wrapper, content, data=True)
    for key, value in event.items():
        if key not in ("System", "EventData", "UserData", "#attributes"):
            record.fields.add_tree(value, key)
            if isinstance(value, dict):
                for child, child_value in value.items():
                    if not isinstance(child_value, dict | list):
                        record.view[f"{key}.{child}"] = child_value
    return record


def _read_event_data(record: WindowsRecord, data: Any) -> None:
    if isinstance(data, dict):
        for name, value in data.items():
            if name == "#attributes":
                continue
            if name == "Data":
                _read_data_items(record, value)
            elif isinstance(value, dict) and ("#text" in value or "#attributes" in value):
                if "#text" in value:
                    record.add(name, value["#text"], data=True)
                attributes = value.get("#attributes")
                if isinstance(attributes, dict):
                    for attribute, attribute_value in attributes.items():
                        if not _is_namespace(attribute):
                            record.add(f"{name}_{attribute}", attribute_value, data=True)
            else:
                record.add(name, value, data=True)
    elif data is not None:
        record.add("EventData", data, data=True)


def _data_name(item: Mapping[str, Any]) -> str | None:
    attributes = item.get("#attributes")
    name = attributes.get("Name") if isinstance(attributes, dict) else item.get("@Name")
    return name if isinstance(name, str) and name else None


def _read_data_items(record: WindowsRecord, value: Any) -> None:
    """``<Data>`` elements: named ones (``Name=`` attribute, as some converters keep them) under
    their names, unnamed ones together as ``Data``."""
    items = value if isinstance(value, list) else [value]
    unnamed: list[Any] = []
    for item in items:
        if isinstance(item, dict):
            name = _data_name(item)
            text = item.get("#text")
            if name is not None:
                record.add(name, text, data=True)
            elif isinstance(text, list):
                unnamed.extend(text)
            else:
                unnamed.append(text)
        else:
            unnamed.append(item)
    if unnamed:
        record.add("Data", unnamed if len(unnamed) > 1 else unnamed[0], data=True)


def _read_flat(obj: Mapping[str, Any], fields: Fields) -> WindowsRecord:
    if fields.add_leaves(obj):  # all leaves: the view is the event itself
        return WindowsRecord(view=dict(obj), fields=fields, system=FLAT_SYSTEM_FIELDS)
    record = WindowsRecord(view={}, fields=fields, system=FLAT_SYSTEM_FIELDS)
    for name, value in obj.items():
        record.add(str(name), value)
    return record


type _Texts = dict[str, str | None]

_EXECUTABLES: Final = (
    ("Image", "ProcessId"),
    ("SourceImage", "SourceProcessId"),
    ("ProcessName", "ProcessId"),
    ("Application", "ProcessID"),
)
"""Event data naming the acting process's executable, with its process id, by preference."""
_PROCESS_NAMES: Final = (
    ("process.executable", "process.name"),
    ("process.parent.executable", "process.parent.name"),
)
_MAPPED: Final = frozenset(
    {
        *("EventID", "Channel", "Provider_Name", "Computer", "EventType", "Keywords"),
        *("NewProcessName", "NewProcessId", "ParentProcessName", "ProcessId"),
        *(executable for executable, _ in _EXECUTABLES),
        *("CommandLine", "ParentImage", "ParentCommandLine", "Hashes", "User"),
        *("TargetUserName", "TargetDomainName", "SubjectUserName", "SubjectDomainName"),
        *("AccountName", "AccountDomain"),
        *("SourceIp", "SourcePort", "SourceAddress", "IpAddress", "IpPort", "ClientAddress"),
        *("DestinationIp", "DestinationPort", "DestAddress", "DestPort", "Protocol"),
        *("QueryName", "TargetFilename", "ImageLoaded", "FileName", "ObjectType", "ObjectName"),
        *("TargetObject", "Details", "ObjectValueName", "NewValue", "RuleName"),
        "RenderingInfo.Message",
    }
)
"""The names :func:`_map` reads as text (:func:`_texts`)."""
_UNSET: Final[_Texts] = dict.fromkeys(_MAPPED)


def _texts(view: Mapping[str, Any]) -> _Texts:
    """Each name of :data:`_MAPPED` with its value in ``view`` as text: stripped, None when
    absent, empty, Windows' ``-`` or not a scalar. Only the names ``view`` has are looked at:
    an event holds a few of the names the mapping tries."""
    texts = _UNSET.copy()
    for name in _MAPPED.intersection(view):
        value = view[name]
        if type(value) is str:  # most values: no conversion
            text = value.strip()
        elif value is None or isinstance(value, dict | list):
            continue
        else:
            text = leaf_text(value).strip()
        if text not in _NONE_MARKERS:
            texts[name] = text
    return texts


def _family(channel: str | None, provider: str | None) -> str | None:
    # The channel decides when there is one: Security holds events of other providers too
    # (1102 comes from Microsoft-Windows-Eventlog).
    name = (channel or "").lower()
    if name:
        if "sysmon" in name:
            return SYSMON
        if name == "security":
            return SECURITY
        return POWERSHELL if "powershell" in name else None
    name = (provider or "").lower()
    if name == "microsoft-windows-sysmon":
        return SYSMON
    if name == "microsoft-windows-security-auditing":
        return SECURITY
    return POWERSHELL if "powershell" in name else None


def _put_user(values: Values, account: str | None, domain: str | None) -> None:
    if account is None:
        return
    if "\\" in account:
        domain_part, _, name = account.partition("\\")
        if values.put("user.name", name):
            values.put("user.domain", domain_part)
        return
    if values.put("user.name", account):
        values.put("user.domain", domain)


def _put_process(
    values: Values, view: Mapping[str, Any], texts: _Texts, family: str | None, code: int
) -> None:
    if family == SECURITY and code == 4688:
        # In 4688 "ProcessId" is the creator: the parent of the new process.
        values.put("process.executable", texts["NewProcessName"])
        values.put("process.pid", texts["NewProcessId"], hex_text=True)
        values.put("process.parent.executable", texts["ParentProcessName"])
        values.put("process.parent.pid", texts["ProcessId"], hex_text=True)
    else:
        for executable, pid in _EXECUTABLES:
            path = texts[executable]
            if path is not None and values.put("process.executable", path):
                values.put("process.pid", view.get(pid), hex_text=True)
    values.put("process.command_line", texts["CommandLine"])
    values.put("process.parent.executable", texts["ParentImage"])
    values.put("process.parent.command_line", texts["ParentCommandLine"])
    values.put("process.parent.pid", view.get("ParentProcessId"), hex_text=True)
    data = values.data
    for executable, name in _PROCESS_NAMES:
        executable_value = data.get(executable)
        if isinstance(executable_value, str):
            values.put(name, basename(executable_value))


def _put_hashes(values: Values, hashes: str | None, *, of_file: bool) -> None:
    if hashes is None:
        return
    found: dict[str, str] = {}
    for part in hashes.split(","):
        algorithm, _, digest = part.partition("=")
        if digest:
            found[algorithm.strip().upper()] = digest.strip()
    if len(hashes) in (32, 64) and not found:  # a bare digest
        found["SHA256" if len(hashes) == 64 else "MD5"] = hashes
    if of_file:
        values.put("file.hash.sha256", found.get("SHA256"))
        values.put("file.hash.md5", found.get("MD5"))
    else:
        values.put("process.hash.sha256", found.get("SHA256"))


def _map(view: Mapping[str, Any], texts: _Texts) -> Values:
    """The normalised values of an event (its ``view``, with its :func:`_texts`)."""
    values = Values()
    event_id_text = texts["EventID"]
    code = to_int(event_id_text, bits=32) if event_id_text is not None else None
    values.put("event.code", str(code) if code is not None else event_id_text)
    channel = texts["Channel"]
    provider = texts["Provider_Name"]
    values.put("event.provider", channel or provider)
    values.put("host.name", texts["Computer"])
    family = _family(channel, provider)
    event_id = code if code is not None else -1
    category_action = _ACTIONS.get(family or "", {}).get(event_id)
    if family == SYSMON and event_id == 12:
        kind = (texts["EventType"] or "").lower()
        category_action = ("registry", "registry_delete" if "delete" in kind else "registry_add")
    if category_action is not None:
        values.put("event.category", category_action[0])
        values.put("event.action", category_action[1])

    keywords = to_int(texts["Keywords"], bits=64, hex_text=True)
    if keywords is not None and keywords & _AUDIT_FAILURE:
        values.put("event.outcome", "failure")
    elif keywords is not None and keywords & _AUDIT_SUCCESS:
        values.put("event.outcome", "success")
    elif family == SECURITY and event_id in _FAILURE_EVENTS:
        values.put("event.outcome", "failure")

    _put_process(values, view, texts, family, event_id)
    _put_hashes(
        values,
        texts["Hashes"],
        of_file=family == SYSMON and event_id in _FILE_HASH_EVENTS,
    )

    _put_user(values, texts["User"], None)
    target = (texts["TargetUserName"], texts["TargetDomainName"])
    subject = (texts["SubjectUserName"], texts["SubjectDomainName"])
    accounts = [target, subject] if event_id in _TARGET_ACCOUNT_FIRST else [subject, target]
    accounts.append((texts["AccountName"], texts["AccountDomain"]))
    for account, domain in accounts:
        _put_user(values, account, domain)

    for ip, port in (
        ("SourceIp", "SourcePort"),
        ("SourceAddress", "SourcePort"),
        ("IpAddress", "IpPort"),
        ("ClientAddress", None),
    ):
        if values.put("source.ip", texts[ip]) and port is not None:
            values.put("source.port", texts[port])
    for ip, port in (("DestinationIp", "DestinationPort"), ("DestAddress", "DestPort")):
        if values.put("destination.ip", texts[ip]):
            values.put("destination.port", texts[port])
    protocol = texts["Protocol"]
    if protocol is not None:
        values.put("network.transport", _IANA_TRANSPORT.get(protocol, protocol.lower()))

    query = texts["QueryName"]
    if values.put("dns.question.name", query):
        values.put("network.protocol", "dns")

    for name in ("TargetFilename", "ImageLoaded", "FileName"):
        path = texts[name]
        if path is not None and values.put("file.path", path):
            values.put("file.name", basename(path))
    if texts["ObjectType"] == "File":
        path = texts["ObjectName"]
        if path is not None and values.put("file.path", path):
            values.put("file.name", basename(path))

    target_object = texts["TargetObject"]
    if target_object is not None:
        values.put("registry.path", target_object)
        values.put("registry.value", texts["Details"])
    elif family == SECURITY and event_id == 4657:
        key, value_name = texts["ObjectName"], texts["ObjectValueName"]
        if key is not None:
            values.put("registry.path", f"{key}\\{value_name}" if value_name else key)
        values.put("registry.value", texts["NewValue"])

    rule = texts["RuleName"]
    if family == SYSMON:
        values.put("rule.name", rule)
    values.put("message", texts["RenderingInfo.Message"])
    return values


def parse_windows(
    obj: Mapping[str, Any], *, raw: str, source: str | None, received: datetime
) -> LogEvent:
    """A Windows event in either JSON layout as a :class:`LogEvent` (see the module docstring).

    The time is ``TimeCreated`` (else Sysmon's ``UtcTime``, else ``received``); raises
    :class:`EventRejected` when the event has no ``EventID`` or an unreadable time."""
    record = read_windows(obj, Fields())
    view = record.view
    texts = _texts(view)
    if texts["EventID"] is None:
        raise EventRejected("Windows event without an EventID")
    # Most events have a readable TimeCreated: taken at once, the candidates only without one.
    created = view.get("TimeCreated")
    timestamp = parse_timestamp(created) if created not in (None, "") else None
    if timestamp is None:
        timestamp, _ = first_timestamp(
            [("TimeCreated", created), ("UtcTime", view.get("UtcTime"))], received=received
        )
    return make_event(
        timestamp=timestamp,
        format="windows",
        source=source,
        raw=raw,
        values=_map(view, texts),
        fields=record.fields.result(),
    )


# -- events for analysis ------------------------------------------------------------------

Log = Literal["sysmon", "security", "system", "powershell", "other"]
NOBODY: Final[frozenset[str]] = frozenset({"", "-", "n/a", "null", "none"})
"""Values that say "no value" (Windows writes ``-``)."""


def event_id_of(obj: Any) -> int | None:
    """The event id of ``obj`` in either layout (an unsigned decimal, or ``0x`` hex), or None
    when it has none."""
    if not isinstance(obj, Mapping):
        return None
    event = obj.get("Event")
    body = event if isinstance(event, Mapping) else obj
    system = body.get("System")
    if isinstance(system, Mapping):
        value = system.get("EventID")
    elif body is obj:
        value = obj.get("EventID")
    else:
        return None
    if isinstance(value, Mapping):
        value = value.get("#text")
    return to_int(value, bits=32, hex_text=True)


def _data_text(value: Any) -> str:
    """An event data value as one text: list items on their own lines, an element's text."""
    if isinstance(value, list):
        return "\n".join(_data_text(item) for item in value)
    if isinstance(value, Mapping):
        if "#text" in value:
            return _data_text(value["#text"])
        return "; ".join(f"{k}={_data_text(v)}" for k, v in value.items() if k != "#attributes")
    return leaf_text(value)


@dataclass(frozen=True, slots=True)
class WinEvent:
    """One Windows event for analysis, whatever layout it came in: its System part by name,
    its event data (``EventData`` and ``UserData`` leaves) as text by name."""

    index: int
    event_id: int
    channel: str
    provider: str
    computer: str
    time: str
    record_id: str
    data: dict[str, str]
    execution_pid: int | None = None
    system: Mapping[str, str] = dataclasses.field(default_factory=dict, compare=False)
    """Every ``System`` leaf as text by its ``fields`` name (``Level``, ``Keywords``, ``Task``,
    ``EventRecordID``...), which Sigma rules may name too. Not compared: the layouts hold
    different System leaves (``EventIDQualifiers`` only nested) for the same event."""

    @property
    def log(self) -> Log:
        """The log the event came from: event ids mean different things in different logs
        (Sysmon 10 is process access, Setup 10 a servicing step)."""
        where = f"{self.channel} {self.provider}".lower()
        if "sysmon" in where:
            return "sysmon"
        if "powershell" in where:
            return "powershell"
        if self.channel.lower() == "security" or "security-auditing" in where:
            return "security"
        if self.channel.lower() == "system" or "service control manager" in where:
            return "system"
        if not self.channel and not self.provider and "ProcessGuid" in self.data:
            return "sysmon"
        return "other"

    @property
    def ref(self) -> str:
        """How an analyst finds the event again: position, log, id and record number."""
        record = f" record {self.record_id}" if self.record_id else ""
        log = self.channel or self.provider or "event"
        return f"events[{self.index}] {log} {self.event_id}{record}"

    def get(self, *names: str) -> str:
        """The first of ``names`` that holds a value (``-`` counts as none), else ""."""
        for name in names:
            value = self.data.get(name, "").strip()
            if value.lower() not in NOBODY:
                return value
        return ""

    def is_(self, log: Log, *ids: int) -> bool:
        return self.log == log and self.event_id in ids


def normalise_event(obj: Mapping[str, Any], index: int) -> WinEvent:
    """``obj`` (either layout, read by :func:`read_windows`) as the ``index``-th
    :class:`WinEvent` of a request. Raises ValueError when it has no event id."""
    event_id = event_id_of(obj)
    if event_id is None:
        raise ValueError("no EventID (expected {EventID, ...} or {Event: {System: {EventID}}})")
    record = read_windows(obj)
    view, system = record.view, record.system
    data: dict[str, str] = {}
    for name, value in view.items():
        if name not in system:
            data.setdefault(name.removeprefix("EventData."), _data_text(value))
    user_id = view.get("SecurityUserID")
    if user_id:
        data.setdefault("SecurityUserID", _data_text(user_id))

    def text(*names: str) -> str:
        return next((_data_text(view[n]) for n in names if view.get(n) not in (None, "")), "")

    return WinEvent(
        index=index,
        event_id=event_id,
        channel=text("Channel"),
        provider=text("Provider_Name", "Provider"),
        computer=text("Computer"),
        time=text("TimeCreated", "UtcTime"),
        record_id=text("EventRecordID"),
        data=data,
        execution_pid=to_int(view.get("ExecutionProcessID"), bits=32, hex_text=True),
        system={name: _data_text(view[name]) for name in system if name in view},
    )


# -- .evtx files --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EvtxRecord:
    """One record read from an EVTX file: its JSON text (nested layout), or why it could not be
    read (``error``, with ``json`` empty)."""

    number: int
    """Its 0-based position among what the file yielded."""
    json: str
    error: str | None = None


def evtx_records(body: bytes) -> Iterator[EvtxRecord]:
    """The records of an EVTX file, in file order, read by the ``evtx`` package.

    A chunk or record the package cannot read is yielded as an error and reading goes on; a
    file cut short in its last chunk ends with an error saying so (the package silently skips
    an incomplete chunk). Raises :class:`EventRejected` when ``body`` is not an EVTX file."""
    if not body.startswith(EVTX_MAGIC):
        raise EventRejected("not an EVTX file: it does not start with the ElfFile signature")
    try:
        parser = evtx.PyEvtxParser(io.BytesIO(body), 1)
    except (OSError, RuntimeError, ValueError) as err:
        raise EventRejected(f"unreadable EVTX file: {excerpt(str(err), 160)}") from err
    number = 0
    iterator = parser.records_json()
    while True:
        try:
            record = next(iterator)
        except StopIteration:
            break
        except (OSError, RuntimeError, ValueError) as err:
            yield EvtxRecord(number, "", f"unreadable EVTX record: {excerpt(str(err), 160)}")
        else:
            if not isinstance(record, dict) or not isinstance(record.get("data"), str):
                break  # the iterator's documented end-of-records answer is None
            yield EvtxRecord(number, record["data"])
        number += 1
    tail = (len(body) - EVTX_HEADER_BYTES) % EVTX_CHUNK_BYTES if len(body) > 4096 else 0
    if tail:
        yield EvtxRecord(
            number,
            "",
            f"truncated EVTX file: its last chunk has {tail} of {EVTX_CHUNK_BYTES} bytes, "
            "and its records could not be read",
        )
