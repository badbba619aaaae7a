"""Canonical forms of indicator values, so that one value from two feeds is one key.

A stopgap of the store's own: once ``tools.ioc`` lands, :func:`normalise` should call
``tools.ioc.normalise_ioc`` for the value forms (and keep only the network and feed-alias
handling here), so that extraction and the store agree on every canonical form.
"""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple
from urllib.parse import urlsplit, urlunsplit

from tools.intel.models import IndicatorType


class Normalised(NamedTuple):
    """A value in canonical form, with its subtype (``ipv4``, ``sha256``…) when it has one."""

    type: IndicatorType
    value: str
    subtype: str | None


_HASH_SUBTYPES = {32: "md5", 40: "sha1", 64: "sha256", 128: "sha512"}
_HEX = re.compile(r"[0-9a-f]+")
_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")
_CVE = re.compile(r"CVE-\d{4}-\d{4,}")
_TECHNIQUE = re.compile(r"T\d{4}(?:\.\d{3})?")
_HIVES = {
    "HKLM": "HKEY_LOCAL_MACHINE",
    "HKCU": "HKEY_CURRENT_USER",
    "HKCR": "HKEY_CLASSES_ROOT",
    "HKU": "HKEY_USERS",
    "HKCC": "HKEY_CURRENT_CONFIG",
}

# Names feeds use for our types (CSV type columns, vendor labels); matched case-insensitively.
TYPE_ALIASES: dict[str, IndicatorType] = {
    **{t.value: t for t in IndicatorType},
    "ipv4": IndicatorType.IP,
    "ipv6": IndicatorType.IP,
    "ip-src": IndicatorType.IP,
    "ip-dst": IndicatorType.IP,
    "ipv4-addr": IndicatorType.IP,
    "ipv6-addr": IndicatorType.IP,
    "cidr": IndicatorType.IP,
    "hostname": IndicatorType.DOMAIN,
    "fqdn": IndicatorType.DOMAIN,
    "domain-name": IndicatorType.DOMAIN,
    "uri": IndicatorType.URL,
    "email-addr": IndicatorType.EMAIL,
    "md5": IndicatorType.HASH,
    "sha1": IndicatorType.HASH,
    "sha256": IndicatorType.HASH,
    "sha512": IndicatorType.HASH,
    "filehash-md5": IndicatorType.HASH,
    "filehash-sha1": IndicatorType.HASH,
    "filehash-sha256": IndicatorType.HASH,
    "file": IndicatorType.HASH,
    "vulnerability": IndicatorType.CVE,
    "regkey": IndicatorType.REGISTRY_KEY,
    "technique": IndicatorType.ATTACK_TECHNIQUE,
}


def indicator_type(name: str) -> IndicatorType:
    """Our type for a feed's type name (``ipv4``, ``FileHash-SHA256``…); ValueError if none."""
    found = TYPE_ALIASES.get(name.strip().lower())
    if found is None:
        raise ValueError(f"unknown indicator type {name.strip()[:40]!r}")
    return found


def normalise(type_: IndicatorType | str, value: str) -> Normalised:
    """The canonical form of ``value`` as a ``type_`` indicator; ValueError when it is not one.

    ip: ``ipaddress`` canonical text; a network keeps its prefix (``10.0.0.0/8``, host bits
    cleared) unless it is a single address. domain: lower-case ASCII (IDNA), no trailing dot,
    a leading ``*.`` dropped (a listed domain already matches its subdomains). url: scheme and
    host lower-cased, the rest kept. email, hash: lower-case. cve, attack_technique:
    upper-case. registry_key: hive abbreviations expanded, case-folded (keys are
    case-insensitive).
    """
    kind = type_ if isinstance(type_, IndicatorType) else indicator_type(type_)
    text = value.strip()
    if not text:
        raise ValueError("empty value")
    match kind:
        case IndicatorType.IP:
            return _ip(text)
        case IndicatorType.DOMAIN:
            return Normalised(kind, _domain(text), None)
        case IndicatorType.URL:
            return Normalised(kind, _url(text), None)
        case IndicatorType.EMAIL:
            return Normalised(kind, _email(text), None)
        case IndicatorType.HASH:
            digest = text.lower()
            subtype = _HASH_SUBTYPES.get(len(digest))
            if subtype is None or not _HEX.fullmatch(digest):
                raise ValueError("not an MD5, SHA-1, SHA-256 or SHA-512 hex digest")
            return Normalised(kind, digest, subtype)
        case IndicatorType.CVE:
            cve = text.upper()
            if not _CVE.fullmatch(cve):
                raise ValueError("not a CVE id (CVE-YYYY-NNNN)")
            return Normalised(kind, cve, None)
        case IndicatorType.ATTACK_TECHNIQUE:
            technique = text.upper()
            if not _TECHNIQUE.fullmatch(technique):
                raise ValueError("not an ATT&CK technique id (T1234 or T1234.001)")
            return Normalised(kind, technique, None)
        case IndicatorType.REGISTRY_KEY:
            hive, sep, rest = text.partition("\\")
            hive = _HIVES.get(hive.upper(), hive)
            return Normalised(kind, f"{hive}{sep}{rest}".casefold(), None)


def _ip(text: str) -> Normalised:
    try:
        if "/" not in text:
            address = ipaddress.ip_address(text)
            return Normalised(IndicatorType.IP, str(address), f"ipv{address.version}")
        # strict=False: feeds write "10.1.2.3/8" for "10.0.0.0/8" often enough.
        network = ipaddress.ip_network(text, strict=False)
    except ValueError as err:
        raise ValueError("not an IP address or network") from err
    if network.num_addresses == 1:
        return Normalised(IndicatorType.IP, str(network.network_address), f"ipv{network.version}")
    return Normalised(IndicatorType.IP, str(network), f"ipv{network.version}-network")


def _domain(text: str) -> str:
    name = text.lower().rstrip(".")
    name = name.removeprefix("*.")
    try:
        name = name.encode("idna").decode("ascii")
    except UnicodeError as err:
        raise ValueError("not a valid domain name") from err
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError("not a valid domain name")
    if len(labels) < 2 or labels[-1].isdigit():
        raise ValueError("not a fully qualified domain name")
    return name


def _url(text: str) -> str:
    try:
        parts = urlsplit(text)
        host = parts.hostname
    except ValueError as err:
        raise ValueError("not a valid URL") from err
    if not parts.scheme or not host or not parts.netloc:
        raise ValueError("not an absolute URL (scheme://host/…)")
    netloc = parts.netloc
    # Lower-case the host only: user info and path are case-sensitive.
    userinfo, at, hostport = netloc.rpartition("@")
    netloc = f"{userinfo}{at}{hostport.lower()}"
    return urlunsplit((parts.scheme.lower(), netloc, parts.path, parts.query, parts.fragment))


def _email(text: str) -> str:
    local, at, domain = text.lower().rpartition("@")
    if not at or not local or any(c.isspace() for c in local):
        raise ValueError("not an email address")
    return f"{local}@{_domain(domain)}"


def parent_domains(domain: str) -> list[str]:
    """The proper parent domains of a normalised domain, nearest first, down to two labels."""
    labels = domain.split(".")
    return [".".join(labels[i:]) for i in range(1, len(labels) - 1)]


def containing_networks(value: str) -> list[str]:
    """Every network strictly larger than a normalised address or network, smallest first.

    These are the stored forms a CIDR indicator containing ``value`` would have.
    """
    network = ipaddress.ip_network(value, strict=False)
    return [str(network.supernet(new_prefix=p)) for p in range(network.prefixlen - 1, -1, -1)]
