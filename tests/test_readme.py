"""The README documents what the code does: every setting, the role table, the quick start."""

import re
from pathlib import Path

from core.security.permissions import ROLE_DESCRIPTIONS, ROLE_PERMISSIONS, Permission
from core.settings import Settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.S | re.M)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def test_quick_start_has_exactly_two_commands() -> None:
    blocks = re.findall(r"```sh\n(.*?)```", section("Quick start"), re.S)
    assert len(blocks) == 2
    commands = [block.strip() for block in blocks]
    assert all("\n" not in command for command in commands)
    assert commands[0].endswith("aurora up")
    assert commands[1] == "bash .ci/run"


def test_every_setting_is_documented() -> None:
    documented = set(re.findall(r"^\| `(AURORA_[A-Z0-9_]+)` \|", section("Configuration"), re.M))
    expected = {f"AURORA_{name.upper()}" for name in Settings.model_fields}
    assert documented == expected


def test_role_table_matches_code() -> None:
    rows = re.findall(r"^\| `(\w+)` \| (.*?) \| (.*?) \|$", section("Roles and permissions"), re.M)
    table = {
        role: (text, set(re.findall(r"`([a-z_]+(?::[a-z]+)?)`", perms)))
        for role, text, perms in rows
    }
    assert set(table) == {role.value for role in ROLE_PERMISSIONS}
    for role, granted in ROLE_PERMISSIONS.items():
        text, perms = table[role.value]
        assert text == ROLE_DESCRIPTIONS[role]
        assert perms == {p.value for p in granted}, role
    assert {p.value for p in Permission} == set().union(*(p for _, p in table.values()))
