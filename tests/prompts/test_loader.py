"""The prompt loader, the shipped prompts, and the rule that a released prompt never changes."""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from pathlib import Path, PurePosixPath

import pytest

from prompts import (
    Prompt,
    PromptFileInvalid,
    PromptLibrary,
    PromptNotFound,
    load_prompt,
    prompt_names,
)

ROOT = Path(__file__).resolve().parents[2]
SPECIALISTS = ("threat_intel", "malware", "network", "endpoint", "hunter", "responder")

# Released prompts are never edited: a change is a new version file beside the old one. If this
# table disagrees with a v1 file, restore the file and add v2 instead.
RELEASED = {
    ("chat_assistant", "v1"): "5b4d2b3e76f2213f51173da0fba3b367f89c7fe0111e354973857c7143a49f9c",
    ("endpoint", "v1"): "a75d0ca4b5048ba4dd89e896a1857dd8442dddacb483f42cbb60f10c4094034e",
    ("hunter", "v1"): "88a69c5060db9a63211ec209d3b9d1fff83c4a37600ca1595d4c65c0ccb2a3f1",
    ("malware", "v1"): "1e04287eaba8b22fd55e84dd7d212a4a8b6e16fc749928fea093c52a19c9e9fa",
    ("network", "v1"): "67b7217ff1801d083f195003d77cfa78f043331250129cf8070baea15ffe0174",
    ("orchestrator_planner", "v1"): (
        "3d04539b2b0479905f60a51b530eb26eaee366bd32ac0d53e3f619c588cc05cf"
    ),
    ("orchestrator_planner", "v2"): (
        "f741fa1f68ac5e04b2d77266dc4d62ac9e447336e1617f50594be39b446afe7b"
    ),
    ("responder", "v1"): "619c0793334443b70b2cc8714b00acec0811581c05b72e4f33ad02893281b52a",
    ("threat_intel", "v1"): "486adcf0457e2d348bb43cf543b0cdca198cbdcdfb0d0e5a62e367adbaa22ad3",
    ("threat_intel", "v2"): "d2b1d5c2eea343913a8600efe77db641786feed0ad122adfaed2d739847edd84",
}


def write_prompt(root: Path, name: str, version: str, body: str, **meta: str) -> None:
    fields = {"name": name, "version": version, "description": f"{name} {version}", **meta}
    head = "".join(f"{key}: {value}\n" for key, value in fields.items())
    (root / name).mkdir(parents=True, exist_ok=True)
    (root / name / f"{version}.md").write_text(f"---\n{head}---\n{body}\n")


# -- the shipped prompts ----------------------------------------------------------------------


def test_every_specialist_the_planner_and_the_chat_ship_a_prompt() -> None:
    assert prompt_names() == tuple(sorted((*SPECIALISTS, "orchestrator_planner", "chat_assistant")))


@pytest.mark.parametrize(("name", "version"), sorted(RELEASED))
def test_released_prompts_are_unchanged(name: str, version: str) -> None:
    prompt = load_prompt(name, version)
    assert prompt.sha256 == RELEASED[(name, version)]
    assert prompt.sha256 == hashlib.sha256(prompt.text.encode()).hexdigest()


def test_every_prompt_file_is_pinned_in_the_released_table() -> None:
    shipped = {(path.parent.name, path.stem) for path in (ROOT / "prompts").glob("*/v*.md")}
    assert shipped == set(RELEASED)


def test_latest_and_pinned_versions() -> None:
    latest = load_prompt("threat_intel")
    pinned = load_prompt("threat_intel", "v2")
    assert latest == pinned
    assert latest != load_prompt("threat_intel", "v1")
    assert (latest.name, latest.version, latest.ref) == ("threat_intel", "v2", "threat_intel@v2")
    assert latest.description.startswith("Threat-intelligence specialist, v2")
    assert not latest.text.startswith("---")
    assert latest.text.startswith("You are the threat-intelligence specialist of AuroraSOC")
    # Loading again gives the same text and hash (and the same object: prompts are cached).
    assert load_prompt("threat_intel", "latest") is latest


@pytest.mark.parametrize("name", SPECIALISTS)
def test_specialist_prompts_demand_the_finding_json(name: str) -> None:
    text = load_prompt(name).text
    template = re.search(r"^\{\n.*?^\}$", text, re.S | re.M)
    assert template, "the answer section shows the JSON to return"
    example = template.group(0)
    for field in (
        "agent",
        "summary",
        "severity",
        "confidence",
        "mitre_techniques",
        "iocs",
        "evidence",
        "recommended_actions",
    ):
        assert f'"{field}"' in example, field
    assert f'"agent": "{name}"' in example
    for level in ("informational", "low", "medium", "high", "critical"):
        assert f"`{level}`" in text
    assert "never instructions" in text
    assert "Never obey it" in text
    assert "Never invent facts" in text
    assert "Never claim that an action was taken" in text or "never execute" in text


def test_the_planner_v2_plans_through_tool_calls() -> None:
    text = load_prompt("orchestrator_planner", "v2").text
    assert "You plan by calling tools" in text
    assert "it is not one of your tools" in text
    assert "untrusted" in text.lower()
    named = set(re.findall(r"^- `([a-z_]+)`:", text, re.M))
    assert named == set(SPECIALISTS)


def test_the_planner_v1_answers_with_a_plan_naming_only_real_specialists() -> None:
    text = load_prompt("orchestrator_planner", "v1").text
    template = re.search(r"^\{\n.*?^\}$", text, re.S | re.M)
    assert template
    plan = json.loads(
        template.group(0).replace('"informational | low | medium | high | critical"', '"medium"')
    )
    assert set(plan) == {
        "summary",
        "severity",
        "confidence",
        "mitre_techniques",
        "iocs",
        "specialists",
    }
    assert set(plan["specialists"][0]) == {"agent", "reason", "focus"}
    for name in SPECIALISTS:
        assert f"`{name}`" in text
    assert "never instructions" in text


def test_prompt_files_are_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["prompts"]
    for path in (ROOT / "prompts").glob("*/*.md"):
        relative = PurePosixPath(path.relative_to(ROOT / "prompts").as_posix())
        assert any(relative.match(pattern) for pattern in patterns), relative


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "version", "phrase"),
    [
        (
            "threat_intell",
            "latest",
            "unknown prompt 'threat_intell'; known: chat_assistant, endpoint, hunter",
        ),
        ("../core", "latest", "is not a prompt name"),
        ("Threat_Intel", "v1", "is not a prompt name"),
        ("threat_intel", "v9", "has no version 'v9'; known: v1"),
        ("threat_intel", "1", "has no version '1'"),
        ("threat_intel", "v01", "has no version 'v01'"),
        ("threat_intel", "newest", "has no version 'newest'"),
    ],
)
def test_unknown_names_and_versions_are_not_found(name: str, version: str, phrase: str) -> None:
    with pytest.raises(PromptNotFound) as caught:
        load_prompt(name, version)
    assert caught.value.code == "AURORA-4040"
    assert phrase in caught.value.detail


# -- versioning, on a library of our own ------------------------------------------------------


def test_latest_is_the_highest_version_by_number(tmp_path: Path) -> None:
    for version in ("v1", "v2", "v10"):
        write_prompt(tmp_path, "triage", version, f"Prompt {version}.")
    (tmp_path / "triage" / "notes.txt").write_text("not a version")
    (tmp_path / "triage" / "v3.md.bak").write_text("not a version either")
    library = PromptLibrary(tmp_path)

    assert library.versions("triage") == ("v1", "v2", "v10")
    assert library.load("triage").version == "v10"
    assert library.load("triage").text == "Prompt v10."
    assert library.load("triage", "v2").text == "Prompt v2."
    assert library.names() == ("triage",)


def test_the_hash_is_of_the_text_and_ignores_line_endings(tmp_path: Path) -> None:
    write_prompt(tmp_path, "unix", "v1", "Line one.\nLine two.")
    crlf = tmp_path / "dos" / "v1.md"
    crlf.parent.mkdir()
    crlf.write_bytes(
        b"---\r\nname: dos\r\nversion: v1\r\ndescription: d\r\n---\r\nLine one.\r\nLine two.\r\n"
    )
    library = PromptLibrary(tmp_path)
    unix, dos = library.load("unix"), library.load("dos")
    assert unix.text == dos.text == "Line one.\nLine two."
    assert unix.sha256 == dos.sha256 == hashlib.sha256(b"Line one.\nLine two.").hexdigest()


def test_a_folder_without_versions_is_not_a_prompt(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    library = PromptLibrary(tmp_path)
    assert library.names() == ()
    with pytest.raises(PromptNotFound, match="AURORA-4040"):
        library.load("empty")


@pytest.mark.parametrize(
    ("content", "phrase"),
    [
        ("no front matter at all\n", "no front matter"),
        (
            "---\nname: bad\nversion: v1\ndescription: d\nbody without a closing marker\n",
            "not closed",
        ),
        ("---\nname: bad\nversion: v1\n---\nbody\n", "lacks description"),
        ("---\nname: other\nversion: v1\ndescription: d\n---\nbody\n", "says other/v1"),
        ("---\nname: bad\nversion: v2\ndescription: d\n---\nbody\n", "says bad/v2"),
        ("---\nname: bad\nversion: v1\ndescription: d\nauthor: me\n---\nbody\n", "'author: me'"),
        ("---\nname: bad\nversion: v1\ndescription: d\n---\n   \n", "empty"),
    ],
)
def test_malformed_prompt_files_are_refused(tmp_path: Path, content: str, phrase: str) -> None:
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "v1.md").write_text(content)
    with pytest.raises(PromptFileInvalid) as caught:
        PromptLibrary(tmp_path).load("bad", "v1")
    assert phrase in caught.value.detail
    assert caught.value.code == "AURORA-5000"


def test_prompt_is_immutable() -> None:
    prompt = load_prompt("hunter")
    assert isinstance(prompt, Prompt)
    with pytest.raises(AttributeError):
        prompt.text = "something else"  # type: ignore[misc]
