"""IOC extraction, refanging, validation and normalisation (tools.ioc)."""

from __future__ import annotations

import pydantic
import pytest

from core.errors import ValidationFailed
from tools.ioc import (
    IOC_TYPES,
    Ioc,
    extract_iocs,
    indicators_in,
    is_internal,
    names_a_machine,
    normalise_ioc,
    refang,
)

REPORT = """\
Phishing mail from billing[@]evil-invoices[.]com led to hxxps://cdn.evil-invoices[.]com/Pay/Invoice.PHP?id=A1b2.
The dropper (MD5 44D88612FEA8A8F36DE82E1278ABB02F) beaconed to 45.33.32[.]156:443 and
2001:0DB8:0000:0000:0000:0000:0000:0001, then moved laterally to 10.0.0.5.
Persistence: HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run\\Updater.
It exploits CVE-2021-44228 (T1190), then runs T1059.001 and T1659.
"""


def pairs(iocs: list[Ioc]) -> list[tuple[str, str, str | None]]:
    return [(ioc.type, ioc.value, ioc.subtype) for ioc in iocs]


def test_extracts_every_type_normalised_in_a_stable_order() -> None:
    assert pairs(extract_iocs(REPORT)) == [
        ("ip", "45.33.32.156", "ipv4"),
        ("ip", "2001:db8::1", "ipv6"),
        ("ip", "10.0.0.5", "ipv4"),
        ("domain", "evil-invoices.com", None),
        ("domain", "cdn.evil-invoices.com", None),
        ("url", "https://cdn.evil-invoices.com/Pay/Invoice.PHP?id=A1b2", None),
        ("email", "billing@evil-invoices.com", None),
        ("hash", "44d88612fea8a8f36de82e1278abb02f", "md5"),
        ("cve", "CVE-2021-44228", None),
        ("registry_key", "HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run\\Updater", None),
        ("attack_technique", "T1190", None),
        ("attack_technique", "T1059.001", None),
        ("attack_technique", "T1659", None),
    ]


def test_extraction_is_deterministic_and_deduplicated() -> None:
    text = "1.2.3.4 and 1[.]2[.]3[.]4 and again 1.2.3.4; EVIL.com, evil[.]com"
    first = extract_iocs(text)
    assert first == extract_iocs(text)
    assert pairs(first) == [("ip", "1.2.3.4", "ipv4"), ("domain", "evil.com", None)]


def test_every_extracted_indicator_is_a_fixed_point_of_normalisation() -> None:
    for ioc in extract_iocs(REPORT):
        assert normalise_ioc(ioc.subtype or ioc.type, ioc.value) == ioc


@pytest.mark.parametrize(
    ("defanged", "expected"),
    [
        ("hxxp://evil[.]com/a", ("url", "http://evil.com/a")),
        ("hXXps://evil(.)com/B", ("url", "https://evil.com/B")),
        ("HXXPS[:]//EVIL[.]COM/Path", ("url", "https://evil.com/Path")),
        ("http[:]//a.example.org/x", ("url", "http://a.example.org/x")),
        ("evil[dot]com", ("domain", "evil.com")),
        ("evil{.}com", ("domain", "evil.com")),
        ("user[@]evil.com", ("email", "user@evil.com")),
        ("user[at]evil[.]com", ("email", "user@evil.com")),
        ("192[.]168[.]1[.]1", ("ip", "192.168.1.1")),
    ],
)
def test_refangs_defanged_indicators(defanged: str, expected: tuple[str, str]) -> None:
    found = {(ioc.type, ioc.value) for ioc in extract_iocs(f"seen: {defanged} today")}
    assert expected in found


def test_refang_restores_text() -> None:
    assert refang("hxxps://evil[.]com and a[@]b[.]org") == "https://evil.com and a@b.org"


def test_url_keeps_path_case_and_drops_trailing_punctuation() -> None:
    found = pairs(extract_iocs("See (https://Example.ORG/Some/Path?Q=AbC)."))
    assert ("url", "https://example.org/Some/Path?Q=AbC", None) in found


def test_url_userinfo_is_not_an_email_address() -> None:
    found = pairs(extract_iocs("http://userid:password@example.com:8080/"))
    assert [t for t in found if t[0] == "email"] == []
    assert ("domain", "example.com", None) in found


@pytest.mark.parametrize(
    "text",
    [
        "999.1.1.1 and 255.256.344.1",  # not IP addresses
        "foo.notatld",  # no such top-level domain
        "CVE-1928-1004",  # older than the CVE list
        "T1156.0012 FOOT1329 T1329FUN",  # not technique ids
        "gggggggggggggggggggggggggggggggg",  # 32 characters, not hex
        "HKXX\\Software\\Foo",  # no such hive
    ],
)
def test_invalid_candidates_are_dropped(text: str) -> None:
    assert extract_iocs(text) == []


@pytest.mark.parametrize("text", ["", "   \n", "no indicators in this sentence at all"])
def test_text_without_indicators(text: str) -> None:
    assert extract_iocs(text) == []


def test_unicode_domains_become_punycode() -> None:
    assert ("domain", "xn--bcher-kva.de", None) in pairs(extract_iocs("visit bücher.de now"))


def test_ioc_is_frozen_and_hashable() -> None:
    ioc = Ioc(type="ip", value="1.2.3.4", subtype="ipv4")
    with pytest.raises(pydantic.ValidationError):
        ioc.value = "5.6.7.8"  # type: ignore[misc]
    assert len({ioc, Ioc(type="ip", value="1.2.3.4", subtype="ipv4")}) == 1
    with pytest.raises(pydantic.ValidationError):
        Ioc(type="mac", value="aa:bb")  # type: ignore[arg-type]
    assert set(IOC_TYPES) == {
        "ip",
        "domain",
        "url",
        "email",
        "hash",
        "cve",
        "registry_key",
        "attack_technique",
    }


# -- normalise_ioc ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ioc_type", "value", "expected"),
    [
        ("ip", "45.33.32.156", Ioc(type="ip", value="45.33.32.156", subtype="ipv4")),
        ("ipv4", " 45.33.32[.]156 ", Ioc(type="ip", value="45.33.32.156", subtype="ipv4")),
        ("ipv6", "2001:DB8:0:0::1", Ioc(type="ip", value="2001:db8::1", subtype="ipv6")),
        ("ipv6-addr", "[::1]", Ioc(type="ip", value="::1", subtype="ipv6")),
        ("domain", "WWW.Example.COM.", Ioc(type="domain", value="www.example.com")),
        ("domain-name", "evil[.]com", Ioc(type="domain", value="evil.com")),
        (
            "url",
            "HXXP://Evil[.]COM/A?B=C",
            Ioc(type="url", value="http://evil.com/A?B=C"),
        ),
        ("email", "John.Doe@Example.COM", Ioc(type="email", value="john.doe@example.com")),
        (
            "sha256",
            "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            Ioc(
                type="hash",
                value="e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                subtype="sha256",
            ),
        ),
        (
            "hash",
            "da39a3ee5e6b4b0d3255bfef95601890afd80709",
            Ioc(type="hash", value="da39a3ee5e6b4b0d3255bfef95601890afd80709", subtype="sha1"),
        ),
        (
            "MD5",
            "D41D8CD98F00B204E9800998ECF8427E",
            Ioc(type="hash", value="d41d8cd98f00b204e9800998ecf8427e", subtype="md5"),
        ),
        ("cve", "cve 2014-0160", Ioc(type="cve", value="CVE-2014-0160")),
        (
            "registry_key",
            "<HKLM>\\\\Software\\\\Run",
            Ioc(type="registry_key", value="HKLM\\Software\\Run"),
        ),
        ("registry", "hkcu:\\Software\\X", Ioc(type="registry_key", value="HKCU\\Software\\X")),
        ("technique", "t1566.001", Ioc(type="attack_technique", value="T1566.001")),
    ],
)
def test_normalise_ioc(ioc_type: str, value: str, expected: Ioc) -> None:
    assert normalise_ioc(ioc_type, value) == expected


@pytest.mark.parametrize(
    ("ioc_type", "value", "loc", "fragment"),
    [
        ("ip", "999.1.1.1", "value", "not an IPv4 or IPv6 address"),
        ("ipv4", "::1", "value", "ipv6 address"),
        ("ipv6", "1.2.3.4", "value", "ipv4 address"),
        ("domain", "localhost", "value", "two labels"),
        ("domain", "foo.notatld", "value", "not a top-level domain"),
        ("domain", "bad_-label-.com", "value", "DNS does not allow"),
        ("url", "not a url", "value", "whitespace"),
        ("url", "http://", "value", "no valid host"),
        ("url", "http://example.com:99999/", "value", "malformed authority"),
        ("email", "no-at-sign.example.com", "value", "local part"),
        ("email", "a@nodomain", "value", "two labels"),
        ("hash", "abc", "value", "hexadecimal"),
        ("md5", "da39a3ee5e6b4b0d3255bfef95601890afd80709", "value", "make a sha1"),
        ("sha256", "z" * 64, "value", "hexadecimal"),
        ("cve", "CVE-21-1", "value", "CVE-YYYY-NNNN"),
        ("cve", "CVE-1998-0001", "value", "from 1999"),
        ("registry_key", "HKXX\\a", "value", "hive"),
        ("registry_key", "HKLM\\", "value", "hive"),
        ("attack_technique", "T12", "value", "T####"),
        ("attack_technique", "TA0001", "value", "T####"),
        ("mac", "aa:bb:cc:dd:ee:ff", "type", "unknown indicator type"),
        ("", "1.2.3.4", "type", "unknown indicator type"),
        ("ip", "   ", "value", "required"),
    ],
)
def test_normalise_ioc_rejects_invalid(ioc_type: str, value: str, loc: str, fragment: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        normalise_ioc(ioc_type, value)
    assert caught.value.code == "AURORA-4220"
    (detail,) = caught.value.detail
    assert detail["loc"] == [loc]
    assert fragment in detail["msg"]


# -- indicators in analysed texts (indicators_in) ------------------------------------------


def found_in(texts: list[str]) -> list[tuple[str, str]]:
    return [(i.type, i.value) for i in indicators_in(texts)]


def test_indicators_from_commands() -> None:
    text = (
        "Start-BitsTransfer -Source https://raw.githubusercontent.com/x/T1197.md "
        "-Destination C:\\Users\\bits.ps1; cscript run.py; ping 10.1.2.3; ping 127.0.0.1"
    )
    assert found_in([text]) == [
        ("ip", "10.1.2.3"),  # private, but another machine: kept
        ("domain", "raw.githubusercontent.com"),
        ("url", "https://raw.githubusercontent.com/x/T1197.md"),
    ]


def test_code_fragments_are_not_domains() -> None:
    text = (
        "[System.Net.WebClient]::new(); [Ref].Assembly.GetType('Sys'+'tem.Man'+'agement.Aut')"
        "; nslookup c2.evil.example.net"
    )
    assert found_in([text]) == [("domain", "c2.evil.example.net")]
    # The same name standing alone is a host name.
    assert ("domain", "system.net") in found_in(["ping system.net"])


def test_special_addresses() -> None:
    assert not names_a_machine(normalise_ioc("ip", "::1"))
    assert not names_a_machine(normalise_ioc("ip", "0.0.0.0"))  # noqa: S104
    assert names_a_machine(normalise_ioc("ip", "10.0.0.1"))
    assert names_a_machine(normalise_ioc("domain", "evil.example.net"))
    assert is_internal(normalise_ioc("ip", "10.0.0.1"))
    assert not is_internal(normalise_ioc("ip", "1.1.1.1"))
