"""The notations threat reports write indicators in, one class a test, each with negatives."""

from __future__ import annotations

import pytest

from tools.ioc import extract_iocs, normalise_ioc, refang


def found(text: str) -> set[tuple[str, str]]:
    return {(ioc.type, ioc.value) for ioc in extract_iocs(text)}


@pytest.mark.parametrize(
    ("written", "url", "host"),
    [
        ("tcp://87.120.116[.]45:6606", "tcp://87.120.116.45:6606", ("ip", "87.120.116.45")),
        ("udp://46.246.84[.]9:53", "udp://46.246.84.9:53", ("ip", "46.246.84.9")),
        ("ftp://files.backup-svc[.]net/up", "ftp://files.backup-svc.net/up", None),
        ("sftp://144.76.136[.]153:22/u/", "sftp://144.76.136.153:22/u/", None),
        ("ws://91.215.85[.]17:8081/ws", "ws://91.215.85.17:8081/ws", None),
        ("wss://api.sync[.]icu/s?EIO=4", "wss://api.sync.icu/s?EIO=4", ("domain", "api.sync.icu")),
        ("smb://10.1.1[.]25/ADMIN$", "smb://10.1.1.25/ADMIN$", ("ip", "10.1.1.25")),
        ("rdp://relay-rds[.]cloud:3389", "rdp://relay-rds.cloud:3389", None),
        ("${jndi:ldap://45.83.193[.]150:1389/a}", "ldap://45.83.193.150:1389/a", None),
        ("socks5://94.198.53[.]143:4001", "socks5://94.198.53.143:4001", None),
        ("stratum+tcp://pool.xmr[.]com:3333", "stratum+tcp://pool.xmr.com:3333", None),
        ("tcp://C2.Relay[.]ORG:5552/", "tcp://c2.relay.org:5552/", ("domain", "c2.relay.org")),
    ],
)
def test_urls_of_every_scheme(written: str, url: str, host: tuple[str, str] | None) -> None:
    iocs = found(f"The implant connected to {written}, then slept.")
    assert ("url", url) in iocs
    if host is not None:
        assert host in iocs
    assert normalise_ioc("url", written.removeprefix("${jndi:").rstrip("}")).value == url


@pytest.mark.parametrize(
    "text",
    [
        "Sliver supports the mtls://, wg:// and dns:// transports.",  # a scheme, no host
        "Files lived under C://Windows//Temp on the host.",  # no valid host
        "The tcp:// prefix is optional in the config file.",
    ],
)
def test_schemes_without_hosts_are_not_urls(text: str) -> None:
    assert [ioc for ioc in extract_iocs(text) if ioc.type == "url"] == []


def test_userinfo_is_part_of_the_url_never_an_email_address() -> None:
    iocs = found(
        "brute-forced ssh://root@203.0.113[.]45:2222, pulled ftp://anonymous@evil.example[.]com/a"
        " and mongodb://admin:s3cret@18.224.12[.]9:27017/"
    )
    assert {ioc for ioc in iocs if ioc[0] in ("url", "email")} == {
        ("url", "ssh://root@203.0.113.45:2222"),
        ("url", "ftp://anonymous@evil.example.com/a"),
        ("url", "mongodb://admin:s3cret@18.224.12.9:27017/"),
    }
    # A cut form of a URL found whole (ioc-finder's "18.224.12.9:27017/") is not listed.
    assert ("url", "18.224.12.9:27017/") not in iocs


def test_bracketed_ipv6_urls() -> None:
    iocs = found(
        "requests for http://[2001:DB8:4006:812::200e]:8080/shell?cd+/tmp and"
        " hxxps://[2604:a880:400:d0::2f3e:6001]/dl were logged"
    )
    assert ("url", "http://[2001:db8:4006:812::200e]:8080/shell?cd+/tmp") in iocs
    assert ("url", "https://[2604:a880:400:d0::2f3e:6001]/dl") in iocs
    assert ("ip", "2001:db8:4006:812::200e") in iocs
    # A bracketed address alone is an address, and brackets around no address are no URL.
    assert found("seen from [2001:db8::7] today") == {("ip", "2001:db8::7")}
    assert [i for i in extract_iocs("http://[not:an:addr]/x") if i.type == "url"] == []


@pytest.mark.parametrize(
    ("written", "url"),
    [
        ("hxxp://45.95.11[.]217[/]ad[/]api[.]php", "http://45.95.11.217/ad/api.php"),
        ("hxxps[://]update[.]cdn[.]cloud[/]jquery", "https://update.cdn.cloud/jquery"),
        ("hxxp[:]//weekendtoolbox[.]com[:]8080/ldr", "http://weekendtoolbox.com:8080/ldr"),
        ("hXXps://docs-view[.]com/a", "https://docs-view.com/a"),
        ("HXXPS://DL.EVIL-CDN[.]NET/SETUP.EXE", "https://dl.evil-cdn.net/SETUP.EXE"),
        ("fxp://ftp[.]mecharnise[.]ir/x", "ftp://ftp.mecharnise.ir/x"),
        ("FXP[:]//ftp[.]mecharnise[.]ir", "ftp://ftp.mecharnise.ir"),
    ],
)
def test_defanged_schemes_colons_and_slashes(written: str, url: str) -> None:
    iocs = found(f"Traffic: {written} (live).")
    assert ("url", url) in iocs
    # The cut form ioc-finder reads before a "[/]" is not listed beside the whole URL.
    assert not any(kind == "url" and value != url for kind, value in iocs)


def test_slashes_and_fxp_in_prose_are_left_alone() -> None:
    assert refang("read/write and/or [a/b] the fxp tool") == "read/write and/or [a/b] the fxp tool"
    assert extract_iocs("use fxp or [/] as you like") == []


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("microsoft-updates[dot]online", ("domain", "microsoft-updates.online")),
        ("telemetry-check(dot)org", ("domain", "telemetry-check.org")),
        ("claimconcession[DOT]shop", ("domain", "claimconcession.shop")),
        ("support-zoom{.}us", ("domain", "support-zoom.us")),
        ("telemetry-check(.)org", ("domain", "telemetry-check.org")),
        ("addatamarket[.]net", ("domain", "addatamarket.net")),
        ("usps-redelivery . top", ("domain", "usps-redelivery.top")),
    ],
)
def test_defanged_dots(written: str, expected: tuple[str, str]) -> None:
    assert expected in found(f"Infrastructure: {written} was registered in May.")


def test_dot_words_and_spaced_dots_in_prose_are_left_alone() -> None:
    prose = "The end . Then [dotted] lines (dot matrix) and a [DOTNET] build."
    assert refang(prose) == prose
    assert extract_iocs(prose) == []


@pytest.mark.parametrize(
    ("written", "email"),
    [
        ("it-helpdesk[at]corp-support[.]live", "it-helpdesk@corp-support.live"),
        ("drops(at)telemetry-check(.)org", "drops@telemetry-check.org"),
        ("sender(at)ownerhouse(dot)top", "sender@ownerhouse.top"),
        ("unlock[@]rsv-box[.]com", "unlock@rsv-box.com"),
        ("help-desk @ usps-redelivery . top", "help-desk@usps-redelivery.top"),
    ],
)
def test_defanged_at_signs(written: str, email: str) -> None:
    assert ("email", email) in found(f"Contact: {written}.")


@pytest.mark.parametrize(
    "text",
    [
        "We saw it in the (chat) logs.example.com thread.",
        "Mentioned (see the budget) example.com later.",
        "See the [format] example.org page (et al.) for details.",
        "Lateral movement (attack path) ran via [ethernet] host.example.net.",
    ],
)
def test_words_touching_brackets_are_not_at_signs(text: str) -> None:
    assert refang(text) == text
    assert [ioc for ioc in extract_iocs(text) if ioc.type == "email"] == []
    # "(at)" itself is the notation; in prose it yields no valid address.
    assert extract_iocs("Staff responded @ the helpdesk (at) night.") == []


def test_a_word_ending_in_at_inside_a_url_survives() -> None:
    assert ("url", "ldaps://log4j.c2-relay.xyz:636/o=tomcat") in found(
        "${jndi:ldaps://log4j[.]c2-relay[.]xyz:636/o=tomcat}"
    )


@pytest.mark.parametrize(
    "written",
    [
        "45.33.32[.]156",
        "45[.]33[.]32[.]156",
        "45(.)33(.)32(.)156",
        "45{.}33{.}32{.}156",
        "45.33.32[.]156:443",
        "45[.]33.32[.]156",
    ],
)
def test_defanged_ipv4(written: str) -> None:
    assert found(f"beacon to {written} every minute") == {("ip", "45.33.32.156")}


@pytest.mark.parametrize(
    "text",
    [
        "Fixed in version 7.1.0.12 of the agent.",
        "Affected builds 7.1.0.12 and 7.2.0.4 only.",
        "the agent version was 3.4.1.22",
        "It ships as v2.0.1.7 on every host.",
        "The internal version string read 2.0.1.7-beta.",
    ],
)
def test_versions_are_not_addresses(text: str) -> None:
    assert [ioc for ioc in extract_iocs(text) if ioc.type == "ip"] == []


def test_addresses_near_version_words_are_kept() -> None:
    assert ("ip", "45.1.2.3") in found("Version 2 of the implant connects to 45.1.2.3 daily.")
    assert ("ip", "7.1.0.12") in found("beacons to 7.1.0.12; version 7.1.0.12 is a build")
    assert {("ip", "10.0.0.1"), ("ip", "10.0.0.9")} <= found("scanned 10.0.0.1-10.0.0.9")


def test_file_names_are_not_domains() -> None:
    text = "chmod 777 bins.sh; sh install.sh; unzip invoice.zip; cat readme.md loader.so"
    assert [ioc for ioc in extract_iocs(text) if ioc.type == "domain"] == []
    iocs = found("fetched hxxp://45.128.232[.]143/bins/x86.sh and /opt/perl/DSLog.pm")
    assert {ioc for ioc in iocs if ioc[0] == "domain"} == set()
    # The same top-level domains written defanged, or as hosts, are domains.
    assert ("domain", "microsoft-office.zip") in found("lure at microsoft-office[.]zip")
    assert ("domain", "evil.sh") in found("see http://evil.sh/x and ops@evil.sh")


def test_dotted_code_names_are_not_domains() -> None:
    text = "calls System.Net.WebClient.DownloadString then [System.Net.Dns]::Resolve"
    assert [ioc for ioc in extract_iocs(text) if ioc.type == "domain"] == []
    assert ("domain", "system.net") in found("nslookup system.net")


def test_registry_keys_with_spaces_and_braces() -> None:
    iocs = found(
        "The actor queried HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Winlogon and"
        " set HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Control\\Terminal Server\\"
        "fDenyTSConnections. Run key: HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run\\"
        "{0A6B3D52-8F12} pointing to rundll32.exe C:\\Users\\Public\\license.dat"
    )
    assert {ioc for ioc in iocs if ioc[0] == "registry_key"} == {
        ("registry_key", "HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Winlogon"),
        (
            "registry_key",
            "HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Control\\Terminal Server\\"
            "fDenyTSConnections",
        ),
        (
            "registry_key",
            "HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run\\{0A6B3D52-8F12}",
        ),
    }


def test_registry_keys_side_by_side_stay_apart() -> None:
    keys = {
        ioc.value
        for ioc in extract_iocs("HKLM\\Software\\A HKCU\\Software\\B\\C and HKLM\\X\\Y")
        if ioc.type == "registry_key"
    }
    assert keys == {"HKLM\\Software\\A", "HKCU\\Software\\B\\C", "HKLM\\X\\Y"}
