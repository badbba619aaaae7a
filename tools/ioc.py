"""Indicators of compromise: extraction from free text, validation and normalisation.

Extraction is ioc-finder's (chosen over iocsearcher and iocextract on ioc-finder's published
cases and on a defanged variant of them), scored on cases written from public threat reports
as well: see ``evals/ioc_extraction.py``. ioc-finder also
refangs (``hxxp``, ``[.]``, ``(.)``, ``[dot]``, ``[@]``, ``[:]//`` ...) before it parses. Every
candidate then goes through the same validation and normalisation as an indicator a caller
hands in (:func:`normalise_ioc`), so extraction never returns a value that normalisation would
refuse.

ATT&CK technique ids are not taken from ioc-finder: it matches them against a list frozen in
the library that lacks every technique added since 2021 (T1659 and on), so they are matched by
their format here and checked against the knowledge base by the caller. Registry keys are
matched here too (ioc-finder's stop at "Windows NT" or run on into the next words), and so are
URLs with a scheme beside ioc-finder's (it knows no ``tcp://``, ``rdp://`` or ``socks5://``,
nor a bracketed IPv6 host, and cuts a URL at its userinfo). Refanging adds what ioc-fanger
lacks (``[/]``, ``fxp``, ``name . tld``, upper-case ``HXXPS``) and keeps it from reading an
``@`` or ``.`` into ordinary words that touch a bracket ("(chat)", "(et al.)").

ioc-finder builds its grammars when it is imported (about half a second): it is imported by
the first extraction or domain check, not with this module, so that a process that starts
serving never waits for it.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import string
import threading
from collections.abc import Iterable
from typing import Final, Literal
from urllib.parse import SplitResult, urlsplit

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


def warm() -> None:
    """Import ioc-finder now (a process that serves calls it on a thread of its own once it
    listens, so that its first extraction does not wait for the grammars either)."""
    import ioc_finder  # noqa: F401


@functools.cache
def _tlds() -> frozenset[str]:
    """The top-level domains ioc-finder knows, lower-cased."""
    from ioc_finder.data import tlds

    return frozenset(tld.lower() for tld in tlds)


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
_DEFANGED_SCHEME = re.compile(r"\b(?P<scheme>hxxp|fxp)(?P<s>s?)(?=[\[({]?:)", re.IGNORECASE)
_DEFANGED_SCHEMES: Final[dict[str, str]] = {"hxxp": "http", "fxp": "ftp"}
_FANG_WORD = re.compile(r"at|et|arroba|dot|punto|punkt", re.IGNORECASE)
# ioc-fanger reads these words as a defanged "@" or "." wherever a bracket touches them: inside
# a longer word ("(chat) logs" became "(ch@logs", "tomcat}" "tomc@") or with a bracket on one
# side ("(et al.)", "(dot matrix)"). Only a whole word bracketed on both sides ("[at]",
# "( dot )") is a defanging; any other that a bracket touches is shielded (a private-use
# character inside it) while ioc-fanger runs.
_OPEN_BEFORE = re.compile(r"[\[({]\s{0,3}$")
_CLOSE_AFTER = re.compile(r"^\s{0,3}[\])}]")
_ANY_BRACKET_BEFORE = re.compile(r"[\[\](){}]\s{0,3}$")
_ANY_BRACKET_AFTER = re.compile(r"^\s{0,3}[\[\](){}]")
_SHIELD = "\ue000"
_BRACKETED_SLASH = re.compile(r"[\[({]\s{0,3}(/{1,2})\s{0,3}[\])}]")
# "evil . com": a dot with one space each side between two lower-case name characters.
_SPACED_DOT = re.compile(r"(?<=[a-z0-9-]) \. (?=[a-z0-9-])")
# A URL with any scheme ("tcp://", "ldap://", "stratum+tcp://"), userinfo, a name, an IPv4 or
# a bracketed IPv6 host, a port, and the RFC 3986 characters of path, query and fragment but
# the comma (IOC lists are often comma-separated).
_URL_IN_TEXT = re.compile(
    r"(?<![\w+.-])[A-Za-z][A-Za-z0-9+.-]{0,31}://"
    r"(?:(?P<userinfo>[\w.~!$&'()*+,;=:%-]*)@)?"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[\w.-]+)(?::\d{1,5})?"
    r"(?:[/?#][\w.~!$&'()*+;=:@%/?#-]*)?"
)
# A registry key (the hive as "HKLM", "<HKLM>" or "HKLM:", backslashes single or doubled;
# not ioc-finder's, which runs on past a space into the next words). A segment may be a
# placeholder ("<user sid>") or hold up to three inner spaces ("Windows NT", "Image File
# Execution Options") when a backslash follows it and the words after a space are plain words
# (not "rundll32.exe C:", not another hive); the last segment ends at a space.
_REGISTRY_SEGMENT = r"(?:<[^<>\\\r\n]{1,40}>|[^\\\s\"'<>|]+)"
_REGISTRY_IN_TEXT = re.compile(
    r"(?<![\w\\<])<?(?i:HKEY_[A-Z_]+|HK(?:LM|CU|CR|U|CC))>?:?\\+"
    rf"(?:{_REGISTRY_SEGMENT}(?: (?!(?i:HK))[A-Za-z0-9_-]+){{0,3}}\\+)*{_REGISTRY_SEGMENT}"
)
# A dotted quad that is a version ("version 3.4.1.22", "builds 7.1.0.12 and 7.2.0.4",
# "v2.0.1.7", "2.0.1.7-beta"), not an address.
_VERSION_BEFORE = re.compile(
    r"(?:\b(?:versions?|ver|builds?|releases?|firmware|patch(?:es)?)\.?\s*[:=]?\s*"
    r"(?:(?:\d+(?:\.\d+)+[\w-]*|and|or|to|through|is|was|are|were|from|,)\s*)*"
    r"|\bv)$",
    re.IGNORECASE,
)
_VERSION_AFTER = re.compile(r"^-[A-Za-z]")
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


def _shield(match: re.Match[str], text: str) -> str:
    """The fang word of ``match``, shielded unless it is a bracketed defanging."""
    start, end = match.span()
    before, after = text[max(0, start - 4) : start], text[end : end + 4]
    if not (_ANY_BRACKET_BEFORE.search(before) or _ANY_BRACKET_AFTER.match(after)):
        return match[0]
    glued = text[start - 1 : start].isalnum() or text[end : end + 1].isalnum()
    if not glued and _OPEN_BEFORE.search(before) and _CLOSE_AFTER.match(after):
        return match[0]
    return match[0][0] + _SHIELD + match[0][1:]


def refang(text: str) -> str:
    """``text`` with defanged indicators restored: ``hxxp``/``hXXps``/``fxp`` schemes,
    ``[.]``, ``(.)``, ``{.}``, ``[dot]``, ``(dot)``, ``[@]``, ``[at]``, ``(at)``, ``[:]``,
    ``[://]``, ``[/]`` and ``name . tld``, with the other forms ioc-fanger knows."""
    return _refang(text).replace(_SHIELD, "")


def _refang(text: str) -> str:
    """:func:`refang`, the shielded words left shielded (ioc-finder fangs its input again)."""
    text = text.replace(_SHIELD, "")
    text = _FANG_WORD.sub(lambda match: _shield(match, text), text)
    # ioc-fanger misses upper-case schemes ("HXXPS://"), common in reports written in
    # capitals, and "fxp://" for FTP; "[/]" between path segments.
    text = _DEFANGED_SCHEME.sub(
        lambda m: _DEFANGED_SCHEMES[m["scheme"].lower()] + m["s"].lower(), text
    )
    text = _BRACKETED_SLASH.sub(r"\1", text)
    from ioc_finder import prepare_text

    return _SPACED_DOT.sub(".", prepare_text(text))


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
    if labels[-1] not in _tlds():
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


def _urls_in(text: str) -> tuple[list[str], set[str]]:
    """The URLs with a scheme in (fanged) ``text``, as written, and the ``user@host`` that
    their userinfo shows (never an e-mail address)."""
    urls: list[str] = []
    userinfo: set[str] = set()
    for match in _URL_IN_TEXT.finditer(text):
        urls.append(match.group())
        if match["userinfo"] is not None:
            local = match["userinfo"].rpartition(":")[2]
            userinfo.add(f"{local}@{match['host']}".lower())
    return urls, userinfo


def _occurrences(value: str, text: str) -> int:
    pattern = r"(?<![\w.-])" + re.escape(value) + r"(?![\w-])"
    return len(re.findall(pattern, text, re.IGNORECASE))


def _is_version(address: str, text: str) -> bool:
    """Whether every occurrence of the dotted quad ``address`` in ``text`` is a version."""
    pattern = re.compile(r"(?<![\w.])" + re.escape(address) + r"(?![\w]|\.\d)")
    matches = list(pattern.finditer(text))
    return bool(matches) and all(
        _VERSION_BEFORE.search(text[max(0, m.start() - 80) : m.start()])
        or _VERSION_AFTER.match(text[m.end() : m.end() + 2])
        for m in matches
    )


def _host(ioc: Ioc) -> str | None:
    """The host name or address of a URL, the domain of an e-mail address; else None."""
    if ioc.type == "url":
        host = ioc.value.split("//", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]
        host = re.split(r"[?#]", host, maxsplit=1)[0]
        return host[1 : host.find("]")] if host.startswith("[") else host.rsplit(":", 1)[0]
    if ioc.type == "email":
        return ioc.value.rsplit("@", 1)[-1]
    return None


def extract_iocs(text: str) -> list[Ioc]:
    """Every valid indicator in ``text`` (defanged ones included), normalised and deduplicated.

    Ordered by type (as in :data:`IOC_TYPES`), then by first appearance in the text, then by
    value. The hosts of URLs (any scheme: ``tcp://``, ``ldap://``, ``smb://``...; IPv6 hosts
    in brackets) and the domains of e-mail addresses are listed as indicators too, as are
    domains written inside URL queries. Invalid candidates are dropped, never raised, and so
    are dotted quads written as versions (``version 7.1.0.12``), file names that only look like
    domains (``install.sh``, ``invoice.zip``: a file-like top-level domain, written neither
    defanged nor as a host) and dotted code names (``System.Net.WebClient``).
    """
    if not text or not text.strip():
        return []
    fanged = refang(text)
    from ioc_finder import find_iocs

    with _FINDER_LOCK:
        found = find_iocs(fanged, included_ioc_types=list(_FINDER_TYPES), parse_unicode_iocs=True)
    urls, userinfo = _urls_in(fanged)
    keys = [match.group() for match in _REGISTRY_IN_TEXT.finditer(fanged)]
    candidates: list[tuple[IocType, str | None, str]] = [
        (ioc_type, subtype, value)
        for name, (ioc_type, subtype) in _FINDER_TYPES.items()
        for value in found.get(name) or ()
    ]
    candidates.extend(("url", None, url) for url in urls)
    candidates.extend(("registry_key", None, key) for key in keys)
    candidates.extend(
        ("attack_technique", None, match.group()) for match in _TECHNIQUE_IN_TEXT.finditer(fanged)
    )
    lowered = fanged.lower()
    positions: dict[Ioc, int] = {}
    for ioc_type, subtype, value in candidates:
        if ioc_type in ("email", "domain") and str(value).lower() not in lowered:
            # ioc-finder fangs its input again, unshielded: an address or a name that is not
            # in the text refanged here is one it read into a word ("(chat) a.com").
            continue
        try:
            ioc = _normalise(ioc_type, subtype, str(value))
        except ValidationFailed:
            continue
        if ioc.type == "email" and ioc.value in userinfo:
            continue
        position = lowered.find(str(value).lower())
        position = position if position >= 0 else len(lowered)
        positions[ioc] = min(position, positions.get(ioc, position))
    # ioc-finder cuts URLs short at a scheme, userinfo or bracketed host it does not know
    # ("ftp://anonymous@host/a" gave "host/a"): a URL that is part of a longer one is that
    # one, cut.
    longer = [ioc.value.lower() for ioc in positions if ioc.type == "url"]
    hosts = {host.lower() for ioc in positions if (host := _host(ioc)) is not None}

    def kept(ioc: Ioc) -> bool:
        if ioc.type == "url":
            value = ioc.value.lower()
            return not any(value != other and value in other for other in longer)
        if ioc.type == "ip" and ioc.subtype == "ipv4" and ioc.value not in hosts:
            return not _is_version(ioc.value, fanged)
        if ioc.type == "domain" and ioc.value not in hosts:
            if ioc.value.rsplit(".", 1)[-1] in FILE_LIKE_TLDS and _occurrences(
                ioc.value, text
            ) >= _occurrences(ioc.value, fanged):
                return False
            return not _continued(ioc.value, [fanged])
        return True

    rank = {ioc_type: index for index, ioc_type in enumerate(IOC_TYPES)}
    return sorted(
        (ioc for ioc in positions if kept(ioc)),
        key=lambda ioc: (rank[ioc.type], positions[ioc], ioc.value),
    )


# -- indicators in analysed texts ---------------------------------------------------------

MAX_TEXT_FOR_IOCS: Final[int] = 100_000
"""Longest part of one text :func:`indicators_in` reads."""


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
    hosts = {host.lower() for ioc in found if (host := _host(ioc)) is not None}
    return [ioc for ioc in found if _plausible(ioc, hosts, cut)]


def is_internal(ioc: Ioc) -> bool:
    """Whether an ``ip`` indicator is private, loopback, link-local or otherwise not routable
    on the internet (blocking it at the perimeter would do nothing)."""
    if ioc.type != "ip":
        return False
    address = ipaddress.ip_address(ioc.value)
    return not address.is_global
