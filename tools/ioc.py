"""Indicators of compromise: extraction from free text, validation and normalisation.

Extraction is ioc-finder's (chosen over iocsearcher and iocextract on ioc-finder's published
cases and on a defanged variant of them: see ``evals/ioc_extraction.py``). ioc-finder also
refangs (``hxxp``, ``[.]``, ``(.)``, ``[dot]``, ``[@]``, ``[:]//`` ...) before it parses. Every
candidate then goes through the same validation and normalisation as an indicator a caller
hands in (:func:`normalise_ioc`), so extraction never returns a value that normalisation would
refuse.

ATT&CK technique ids are the one kind not taken from ioc-finder: it matches them against a
list frozen in the library that lacks every technique added since 2021 (T1659 and on), so they
are matched by their format here and checked against the knowledge base by the caller.
"""

from __future__ import annotations

import ipaddress
import re
import string
import threading
from collections.abc import Iterable
from typing import Final, Literal
from urllib.parse import SplitResult, urlsplit

from ioc_finder import find_iocs, prepare_text
from ioc_finder.data import tlds
from pydantic import BaseModel, ConfigDict

from core.errors import ValidationFailed

IocType = Literal["ip", "domain", "url", "email", "hash", "cve", "registry_key", "attack_technique"]

IOC_TYPES: Final[tuple[IocType, ...]] = (
    "ip",
    "domain",
    "url",
    "email",
    "hash",
    "cve",
    "registry_key",
    "attack_technique",
)
"""Every indicator type, in the order :func:`extract_iocs` lists them."""


class Ioc(BaseModel):
    """One normalised indicator.

    ``subtype`` is ``ipv4``/``ipv6`` for an ``ip`` and ``md5``/``sha1``/``sha256``/``sha512``
    for a ``hash``; None for the other types.
    """

    model_config = ConfigDict(frozen=True)

    type: IocType
    value: str
    subtype: str | None = None


# ioc-finder's type names → (our type, the subtype it implies).
_FINDER_TYPES: Final[dict[str, tuple[IocType, str | None]]] = {
    "urls": ("url", None),
    "domains": ("domain", None),
    "email_addresses": ("email", None),
    "ipv4s": ("ip", "ipv4"),
    "ipv6s": ("ip", "ipv6"),
    "md5s": ("hash", "md5"),
    "sha1s": ("hash", "sha1"),
    "sha256s": ("hash", "sha256"),
    "sha512s": ("hash", "sha512"),
    "cves": ("cve", None),
    "registry_key_paths": ("registry_key", None),
}

# What callers may name a type: ours, the subtypes, STIX 2.1 cyber-observable names and a few
# common spellings. Keys are lower-case with "-" and " " folded to "_".
_TYPE_ALIASES: Final[dict[str, tuple[IocType, str | None]]] = {
    "ip": ("ip", None),
    "ip_address": ("ip", None),
    "ipv4": ("ip", "ipv4"),
    "ipv4_addr": ("ip", "ipv4"),
    "ipv6": ("ip", "ipv6"),
    "ipv6_addr": ("ip", "ipv6"),
    "domain": ("domain", None),
    "domain_name": ("domain", None),
    "fqdn": ("domain", None),
    "hostname": ("domain", None),
    "url": ("url", None),
    "uri": ("url", None),
    "email": ("email", None),
    "email_addr": ("email", None),
    "email_address": ("email", None),
    "hash": ("hash", None),
    "file_hash": ("hash", None),
    "md5": ("hash", "md5"),
    "sha1": ("hash", "sha1"),
    "sha_1": ("hash", "sha1"),
    "sha256": ("hash", "sha256"),
    "sha_256": ("hash", "sha256"),
    "sha512": ("hash", "sha512"),
    "sha_512": ("hash", "sha512"),
    "cve": ("cve", None),
    "registry_key": ("registry_key", None),
    "registry": ("registry_key", None),
    "windows_registry_key": ("registry_key", None),
    "attack_technique": ("attack_technique", None),
    "technique": ("attack_technique", None),
    "mitre_technique": ("attack_technique", None),
}

_HASH_LENGTHS: Final[dict[int, str]] = {32: "md5", 40: "sha1", 64: "sha256", 128: "sha512"}
_HEX: Final[frozenset[str]] = frozenset(string.hexdigits)
_TLDS: Final[frozenset[str]] = frozenset(tld.lower() for tld in tlds)
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_CVE = re.compile(r"^CVE[-_ ]?(?P<year>\d{4})[-_ ]?(?P<seq>\d{4}|[1-9]\d{4,})$", re.IGNORECASE)
_TECHNIQUE = re.compile(r"^T\d{4}(?:\.\d{3})?$", re.IGNORECASE)
# In text: not glued to a word ("FOOT1329", "T1329FUN"), nor a truncated "T1156.0012".
_TECHNIQUE_IN_TEXT = re.compile(r"(?<![\w.])T\d{4}(?:\.\d{3})?(?![\w]|\.\d)", re.IGNORECASE)
_REGISTRY_HIVES: Final[dict[str, str]] = {
    hive: hive
    for hive in (
        "HKEY_LOCAL_MACHINE",
        "HKEY_CURRENT_USER",
        "HKEY_CLASSES_ROOT",
        "HKEY_USERS",
        "HKEY_CURRENT_CONFIG",
        "HKEY_PERFORMANCE_DATA",
        "HKLM",
        "HKCU",
        "HKCR",
        "HKU",
        "HKCC",
    )
}
_DEFANGED_SCHEME = re.compile(r"\bhxxp(s?)(?=\[?:)", re.IGNORECASE)
_URL_USERINFO = re.compile(r"://[^\s/@:]*:(?P<password>[^\s/@]+)@(?P<host>[^\s/:?#]+)")
_REGISTRY = re.compile(r"^<?(?P<hive>HK[A-Z_]+)>?:?\\+(?P<path>.+)$", re.IGNORECASE)
# Sentence punctuation and quotes that text puts after an indicator, never part of it.
_TRAILING = ".,;:!?'\"`\u201d\u2019\u00bb"
_PAIRS: Final[dict[str, str]] = {")": "(", "]": "[", "}": "{", ">": "<"}
_CVE_FIRST_YEAR = 1999  # the year the CVE list started; no identifier is older


def _invalid(ioc_type: str, value: str, reason: str) -> ValidationFailed:
    return ValidationFailed(
        [{"loc": ["value"], "msg": f"not a valid {ioc_type}: {reason}", "type": "ioc_invalid"}],
    )


def _strip_trailing(value: str) -> str:
    """Drop sentence punctuation and unbalanced closing brackets from the end of ``value``."""
    while value:
        last = value[-1]
        if last in _TRAILING or (last in _PAIRS and value.count(_PAIRS[last]) < value.count(last)):
            value = value[:-1]
        else:
            break
    return value


def refang(text: str) -> str:
    """``text`` with defanged indicators restored (``hxxp``, ``[.]``, ``(.)``, ``[dot]``,
    ``[@]``, ``[at]``, ``[:]//`` and the other forms ioc-fanger knows)."""
    # ioc-fanger misses upper-case schemes ("HXXPS://"), common in reports written in capitals.
    return prepare_text(_DEFANGED_SCHEME.sub(r"http\1", text))


def _normalise_ip(value: str, subtype: str | None) -> Ioc:
    try:
        address = ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError as err:
        raise _invalid("IP address", value, "not an IPv4 or IPv6 address") from err
    found = f"ipv{address.version}"
    if subtype is not None and subtype != found:
        raise _invalid(subtype, value, f"this is an {found} address")
    # ``ipaddress`` gives the canonical text: RFC 5952 compressed, lower-case IPv6.
    return Ioc(type="ip", value=str(address), subtype=found)


def _domain(value: str) -> str:
    """The normalised domain (lower case, punycode, no root dot) or ValueError."""
    domain = _strip_trailing(value.strip()).rstrip(".").lower()
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError as err:
            raise ValueError("not a valid internationalised domain name") from err
    labels = domain.split(".")
    if len(domain) > 253 or len(labels) < 2:
        raise ValueError("a domain has at least two labels and at most 253 characters")
    if not all(_LABEL.match(label) for label in labels):
        raise ValueError("a label is empty, too long or has a character DNS does not allow")
    if labels[-1] not in _TLDS:
        raise ValueError(f"{labels[-1]!r} is not a top-level domain")
    return domain


def _normalise_domain(value: str) -> Ioc:
    try:
        return Ioc(type="domain", value=_domain(value))
    except ValueError as err:
        raise _invalid("domain", value, str(err)) from err


def _host_is_valid(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        try:
            _domain(host)
        except ValueError:
            return False
    return True


def _normalise_url(value: str) -> Ioc:
    url = _strip_trailing(value.strip())
    if not url or any(char.isspace() for char in url):
        raise _invalid("URL", value, "empty or contains whitespace")
    has_scheme = re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", url) is not None
    try:
        parts = urlsplit(url if has_scheme else f"//{url}")
        port = parts.port  # raises on a port out of range or not a number
    except ValueError as err:
        raise _invalid("URL", value, "malformed authority") from err
    host = parts.hostname or ""
    if not host or not _host_is_valid(host):
        raise _invalid("URL", value, "no valid host name or address")
    # Scheme and host are case-insensitive: lower them; userinfo, path, query keep their case.
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    shown_host = f"[{host}]" if ":" in host else host
    netloc = f"{userinfo}@" if userinfo else ""
    netloc += shown_host + (f":{port}" if port is not None else "")
    normal = SplitResult(parts.scheme.lower(), netloc, parts.path, parts.query, parts.fragment)
    text = normal.geturl()
    return Ioc(type="url", value=text if has_scheme else text.removeprefix("//"))


def _normalise_email(value: str) -> Ioc:
    email = _strip_trailing(value.strip()).lower()
    local, at, domain = email.rpartition("@")
    if not at or not local or len(local) > 64 or any(char.isspace() for char in local):
        raise _invalid("e-mail address", value, "needs a local part and a domain")
    if domain.startswith("[") and domain.endswith("]"):
        try:
            ipaddress.ip_address(domain[1:-1].removeprefix("ipv6:"))
        except ValueError as err:
            raise _invalid("e-mail address", value, "bad address literal") from err
        return Ioc(type="email", value=email)
    try:
        domain = _domain(domain)
    except ValueError as err:
        raise _invalid("e-mail address", value, str(err)) from err
    return Ioc(type="email", value=f"{local}@{domain}")


def _normalise_hash(value: str, subtype: str | None) -> Ioc:
    digest = value.strip().lower()
    found = _HASH_LENGTHS.get(len(digest))
    if found is None or not set(digest) <= _HEX:
        raise _invalid(
            subtype or "hash", value, "expected 32, 40, 64 or 128 hexadecimal characters"
        )
    if subtype is not None and subtype != found:
        raise _invalid(subtype, value, f"{len(digest)} hexadecimal characters make a {found}")
    return Ioc(type="hash", value=digest, subtype=found)


def _normalise_cve(value: str) -> Ioc:
    match = _CVE.match(value.strip())
    if not match or int(match["year"]) < _CVE_FIRST_YEAR:
        raise _invalid("CVE id", value, "expected CVE-YYYY-NNNN (a year from 1999)")
    return Ioc(type="cve", value=f"CVE-{match['year']}-{match['seq']}")


def _normalise_registry_key(value: str) -> Ioc:
    match = _REGISTRY.match(_strip_trailing(value.strip()))
    hive = _REGISTRY_HIVES.get(match["hive"].upper()) if match else None
    if match is None or hive is None:
        raise _invalid("registry key", value, "expected a hive (HKLM, HKEY_CURRENT_USER...)")
    # Logs and JSON double the backslashes; the key itself has single ones.
    path = re.sub(r"\\+", r"\\", match["path"]).strip("\\ ")
    if not path:
        raise _invalid("registry key", value, "a key below the hive is required")
    return Ioc(type="registry_key", value=f"{hive}\\{path}")


def _normalise_technique(value: str) -> Ioc:
    technique = value.strip().upper()
    if not _TECHNIQUE.match(technique):
        raise _invalid("ATT&CK technique id", value, "expected T#### or T####.###")
    return Ioc(type="attack_technique", value=technique)


def _normalise(ioc_type: IocType, subtype: str | None, value: str) -> Ioc:
    match ioc_type:
        case "ip":
            return _normalise_ip(value, subtype)
        case "domain":
            return _normalise_domain(value)
        case "url":
            return _normalise_url(value)
        case "email":
            return _normalise_email(value)
        case "hash":
            return _normalise_hash(value, subtype)
        case "cve":
            return _normalise_cve(value)
        case "registry_key":
            return _normalise_registry_key(value)
        case "attack_technique":
            return _normalise_technique(value)


def normalise_ioc(type: str, value: str) -> Ioc:
    """Validate and normalise one indicator a caller names, e.g. ``("ip", "45.33.32.156")``.

    ``type`` is one of :data:`IOC_TYPES`, a subtype (``ipv4``, ``ipv6``, ``md5``, ``sha1``,
    ``sha256``, ``sha512``, which the value must then match) or a STIX name (``ipv4-addr``,
    ``domain-name``, ``email-addr``...). A defanged value is refanged first. Raises
    :class:`~core.errors.ValidationFailed` (AURORA-4220) for an unknown type or an invalid
    value, with the reason in ``detail``.
    """
    key = re.sub(r"[-\s]+", "_", type.strip().lower()) if isinstance(type, str) else ""
    known = _TYPE_ALIASES.get(key)
    if known is None:
        raise ValidationFailed(
            [
                {
                    "loc": ["type"],
                    "msg": f"unknown indicator type {type!r}; expected one of "
                    + ", ".join(IOC_TYPES)
                    + " (or ipv4, ipv6, md5, sha1, sha256, sha512)",
                    "type": "ioc_type_unknown",
                }
            ]
        )
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailed(
            [{"loc": ["value"], "msg": "an indicator value is required", "type": "missing"}]
        )
    ioc_type, subtype = known
    # Refanging only touches the defanging forms (and "\." escapes), never a registry path.
    raw = value if ioc_type == "registry_key" else refang(value)
    return _normalise(ioc_type, subtype, raw)


_FINDER_LOCK = threading.Lock()
"""ioc-finder's pyparsing grammars are module globals and not thread-safe (a first call racing
another can leave pyparsing's arity detection wrong for good): one extraction at a time."""


def extract_iocs(text: str) -> list[Ioc]:
    """Every valid indicator in ``text`` (defanged ones included), normalised and deduplicated.

    Ordered by type (as in :data:`IOC_TYPES`), then by first appearance in the text, then by
    value. The domains of URLs and e-mail addresses are listed as domains too, as are domains
    written inside URL paths and queries. Invalid candidates are dropped, never raised.
    """
    if not text or not text.strip():
        return []
    fanged = refang(text)
    with _FINDER_LOCK:
        found = find_iocs(fanged, included_ioc_types=list(_FINDER_TYPES), parse_unicode_iocs=True)
    candidates: list[tuple[IocType, str | None, str]] = [
        (ioc_type, subtype, value)
        for name, (ioc_type, subtype) in _FINDER_TYPES.items()
        for value in found.get(name) or ()
    ]
    candidates.extend(
        ("attack_technique", None, match.group()) for match in _TECHNIQUE_IN_TEXT.finditer(fanged)
    )
    # ioc-finder reads the "password@host" of "http://user:password@host/" as an e-mail address.
    userinfo = {
        f"{match['password']}@{match['host']}".lower() for match in _URL_USERINFO.finditer(fanged)
    }
    lowered = fanged.lower()
    positions: dict[Ioc, int] = {}
    for ioc_type, subtype, value in candidates:
        try:
            ioc = _normalise(ioc_type, subtype, str(value))
        except ValidationFailed:
            continue
        if ioc.type == "email" and ioc.value in userinfo:
            continue
        position = lowered.find(str(value).lower())
        position = position if position >= 0 else len(lowered)
        positions[ioc] = min(position, positions.get(ioc, position))
    rank = {ioc_type: index for index, ioc_type in enumerate(IOC_TYPES)}
    return sorted(positions, key=lambda ioc: (rank[ioc.type], positions[ioc], ioc.value))


# -- indicators in analysed texts ---------------------------------------------------------

MAX_TEXT_FOR_IOCS: Final[int] = 100_000
"""Longest part of one text :func:`indicators_in` reads."""
# ioc-finder reads "notes.md" or "run.py" as domains (.md and .py are country TLDs). A name
# with one of these TLDs is kept only when it is the host of a URL or an e-mail address.
FILE_LIKE_TLDS: Final[frozenset[str]] = frozenset(
    {"md", "sh", "py", "pl", "ps", "rs", "zip", "mov", "so", "pm", "cc", "mk", "in", "am", "ws"}
)


def _continued(domain: str, texts: list[str]) -> bool:
    """Whether every occurrence of ``domain`` in ``texts`` goes on as a longer dotted name
    (``System.Net.WebClient``) or a concatenated string (``'tem.Man'+'agement'``): then it
    is a fragment of code, not a host name."""
    pattern = re.compile(
        r"(?<![\w.-])" + re.escape(domain) + r"(?![\w-])(?P<next>\.\w|['\"]\s*\+)?",
        re.IGNORECASE,
    )
    matches = [m for text in texts for m in pattern.finditer(text)]
    return bool(matches) and all(m.group("next") for m in matches)


def names_a_machine(ioc: Ioc) -> bool:
    """False for an ``ip`` that names no other machine: loopback, 0.0.0.0 (unspecified),
    link-local and multicast addresses; True for any other indicator."""
    if ioc.type != "ip":
        return True
    address = ipaddress.ip_address(ioc.value)
    return not (
        address.is_loopback
        or address.is_unspecified
        or address.is_link_local
        or address.is_multicast
    )


def _plausible(ioc: Ioc, hosts: set[str], texts: list[str]) -> bool:
    if ioc.type == "attack_technique":
        # Technique ids in logs are labels (Sysmon rule names), not indicators.
        return False
    if ioc.type == "ip":
        return names_a_machine(ioc)
    if ioc.type == "domain" and ioc.value not in hosts:
        return ioc.value.rsplit(".", 1)[-1] not in FILE_LIKE_TLDS and not _continued(
            ioc.value, texts
        )
    return True


def indicators_in(texts: Iterable[str]) -> list[Ioc]:
    """Indicators in ``texts`` (each cut to :data:`MAX_TEXT_FOR_IOCS` characters), in order,
    without technique ids, addresses that name no other machine (loopback, 0.0.0.0), file
    names that only look like domains, and dotted code names (``System.Net``)."""
    found: dict[Ioc, None] = {}
    cut = [text[:MAX_TEXT_FOR_IOCS] for text in texts]
    for text in cut:
        for ioc in extract_iocs(text):
            found.setdefault(ioc, None)
    hosts: set[str] = set()
    for ioc in found:
        if ioc.type == "url":
            host = ioc.value.split("//", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]
            hosts.add(host.rsplit(":", 1)[0].strip("[]").lower())
        elif ioc.type == "email":
            hosts.add(ioc.value.rsplit("@", 1)[-1].lower())
    return [ioc for ioc in found if _plausible(ioc, hosts, cut)]


def is_internal(ioc: Ioc) -> bool:
    """Whether an ``ip`` indicator is private, loopback, link-local or otherwise not routable
    on the internet (blocking it at the perimeter would do nothing)."""
    if ioc.type != "ip":
        return False
    address = ipaddress.ip_address(ioc.value)
    return not address.is_global
