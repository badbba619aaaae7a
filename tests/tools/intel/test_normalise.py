"""Canonical forms: one value written two ways by two feeds must be one key."""

from __future__ import annotations

import pytest

from tools.intel import IndicatorType, normalise
from tools.intel.normalise import containing_networks, indicator_type, parent_domains

T = IndicatorType


@pytest.mark.parametrize(
    ("kind", "raw", "value", "subtype"),
    [
        (T.IP, " 198.51.100.23 ", "198.51.100.23", "ipv4"),
        (T.IP, "2001:DB8:0:0::BAD", "2001:db8::bad", "ipv6"),
        (T.IP, "10.1.2.3/8", "10.0.0.0/8", "ipv4-network"),
        (T.IP, "192.0.2.7/32", "192.0.2.7", "ipv4"),
        (T.IP, "2001:db8::/32", "2001:db8::/32", "ipv6-network"),
        (T.DOMAIN, "WWW.Example.COM.", "www.example.com", None),
        (T.DOMAIN, "*.evil.example", "evil.example", None),
        (T.DOMAIN, "bücher.example", "xn--bcher-kva.example", None),
        (T.URL, "HTTP://Evil.Example/Path?Q=A", "http://evil.example/Path?Q=A", None),
        (T.URL, "https://User@Host.Example:8443/x", "https://User@host.example:8443/x", None),
        (T.EMAIL, "Invoice@Badcdn.Example", "invoice@badcdn.example", None),
        (T.HASH, "34965C1ACAADDFB0E329160401EDBCD9", "34965c1acaaddfb0e329160401edbcd9", "md5"),
        (T.HASH, "a" * 40, "a" * 40, "sha1"),
        (T.HASH, "b" * 64, "b" * 64, "sha256"),
        (T.HASH, "c" * 128, "c" * 128, "sha512"),
        (T.CVE, "cve-2021-44228", "CVE-2021-44228", None),
        (T.ATTACK_TECHNIQUE, "t1566.001", "T1566.001", None),
        (
            T.REGISTRY_KEY,
            r"HKLM\Software\Run\Evil",
            r"hkey_local_machine\software\run\evil",
            None,
        ),
    ],
)
def test_canonical_forms(kind: IndicatorType, raw: str, value: str, subtype: str | None) -> None:
    canonical = normalise(kind, raw)
    assert (canonical.type, canonical.value, canonical.subtype) == (kind, value, subtype)


@pytest.mark.parametrize(
    ("kind", "raw", "reason"),
    [
        (T.IP, "999.1.1.1", "not an IP"),
        (T.IP, "10.0.0.0/33", "not an IP"),
        (T.DOMAIN, "localhost", "fully qualified"),
        (T.DOMAIN, "-bad-.example", "not a valid domain"),
        (T.DOMAIN, "a..b.example", "not a valid domain"),
        (T.DOMAIN, "198.51.100.1", "fully qualified"),
        (T.URL, "evil.example/path", "absolute URL"),
        (T.URL, "http://[::1/x", "not a valid URL"),
        (T.EMAIL, "no-at-sign.example", "not an email"),
        (T.HASH, "abc123", "hex digest"),
        (T.HASH, "z" * 64, "hex digest"),
        (T.CVE, "CVE-21-1", "not a CVE"),
        (T.ATTACK_TECHNIQUE, "TA0001", "technique"),
        (T.IP, "   ", "empty"),
    ],
)
def test_invalid_values_are_refused_with_a_reason(
    kind: IndicatorType, raw: str, reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        normalise(kind, raw)


def test_feed_type_names_map_to_ours() -> None:
    assert indicator_type("IPv4") is T.IP
    assert indicator_type("FileHash-SHA256") is T.HASH
    assert indicator_type(" hostname ") is T.DOMAIN
    assert normalise("sha256", "B" * 64).type is T.HASH
    with pytest.raises(ValueError, match="unknown indicator type 'mutex'"):
        indicator_type("mutex")


def test_candidates_for_containment() -> None:
    assert parent_domains("a.b.evil.example") == ["b.evil.example", "evil.example"]
    assert parent_domains("evil.example") == []
    networks = containing_networks("10.1.2.3")
    assert networks[0] == "10.1.2.2/31"
    assert networks[-1] == "0.0.0.0/0"
    assert "10.0.0.0/8" in networks
    assert len(networks) == 32
    assert containing_networks("10.0.0.0/8")[0] == "10.0.0.0/7"
    assert len(containing_networks("2001:db8::1")) == 128
