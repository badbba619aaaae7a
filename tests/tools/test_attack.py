"""The ATT&CK knowledge base (tools.attack): index building, loading, lookups, mapping."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from core.errors import ValidationFailed
from core.settings import Settings
from scripts.build_attack_index import main as build_main
from tests.conftest import shared_data_dir
from tools.attack import SHIPPED_INDEX, AttackKB, TechniqueMatch
from tools.attack.index import BundleError, build_index, first_sentence, plain_text
from tools.attack.keywords import KEYWORD_RULES
from tools.attack.mapping import _TOKEN, _Stemmer

BUNDLE_NAME = "enterprise-attack-techniques-subset.stix.json.gz"


@pytest.fixture(scope="module")
def kb() -> AttackKB:
    return AttackKB.load()


def shared_attack_dir() -> Path:
    data = shared_data_dir()
    if data is None:
        pytest.skip("shared data absent (../shared/data or AURORA_SHARED_DATA)")
    return data / "mitre_attack"


# -- a small bundle written here, with every case the builder handles -----------------------


def _ref(tid: str) -> list[dict[str, str]]:
    return [{"source_name": "mitre-attack", "external_id": tid, "url": "https://x"}]


def _pattern(stix_id: str, tid: str, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "attack-pattern",
        "id": stix_id,
        "name": name,
        "description": f"Adversaries may {name.lower()} (Citation: Someone 2020). e.g. more.",
        "external_references": _ref(tid),
        "kill_chain_phases": [{"kill_chain_name": "mitre-attack", "phase_name": "execution"}],
        "x_mitre_platforms": ["Windows"],
        "x_mitre_domains": ["enterprise-attack"],
        "modified": "2025-01-01T00:00:00.000Z",
        **extra,
    }


def small_bundle() -> dict[str, Any]:
    relation = {"type": "relationship"}
    return {
        "type": "bundle",
        "id": "bundle--test",
        "objects": [
            {
                "type": "x-mitre-tactic",
                "id": "x-mitre-tactic--exec",
                "name": "Execution",
                "x_mitre_shortname": "execution",
                "description": "The adversary is trying to run malicious code. More text.",
                "external_references": _ref("TA0002"),
            },
            {
                "type": "x-mitre-tactic",
                "id": "x-mitre-tactic--persist",
                "name": "Persistence",
                "x_mitre_shortname": "persistence",
                "description": "The adversary is trying to maintain their foothold.",
                "external_references": _ref("TA0003"),
            },
            {
                "type": "x-mitre-matrix",
                "id": "x-mitre-matrix--m",
                "tactic_refs": ["x-mitre-tactic--persist", "x-mitre-tactic--exec"],
            },
            _pattern(
                "attack-pattern--parent",
                "T1000",
                "Run Things",
                kill_chain_phases=[
                    {"kill_chain_name": "mitre-attack", "phase_name": "execution"},
                    {"kill_chain_name": "mitre-attack", "phase_name": "persistence"},
                ],
                x_mitre_data_sources=["Process: Process Creation"],
            ),
            _pattern(
                "attack-pattern--sub",
                "T1000.001",
                "Run Scripts",
                x_mitre_is_subtechnique=True,
            ),
            _pattern("attack-pattern--old", "T1999", "Old Way", revoked=True),
            _pattern("attack-pattern--older", "T1998", "Older Way", revoked=True),
            _pattern("attack-pattern--gone", "T1997", "Gone Way", x_mitre_deprecated=True),
            _pattern(
                "attack-pattern--mobile",
                "T1996",
                "Phone Only",
                x_mitre_domains=["mobile-attack"],
            ),
            {
                **relation,
                "id": "relationship--1",
                "relationship_type": "subtechnique-of",
                "source_ref": "attack-pattern--sub",
                "target_ref": "attack-pattern--parent",
            },
            # T1998 → T1999 → T1000.001: a chain, followed to its end.
            {
                **relation,
                "id": "relationship--2",
                "relationship_type": "revoked-by",
                "source_ref": "attack-pattern--older",
                "target_ref": "attack-pattern--old",
            },
            {
                **relation,
                "id": "relationship--3",
                "relationship_type": "revoked-by",
                "source_ref": "attack-pattern--old",
                "target_ref": "attack-pattern--sub",
            },
        ],
    }


def test_build_index_from_a_bundle() -> None:
    index = build_index(small_bundle(), sha256="abc")
    assert index["format"] == "aurorasoc-attack-index"
    assert index["source"] == {
        "bundle_id": "bundle--test",
        "latest_modified": "2025-01-01T00:00:00.000Z",
        "sha256": "abc",
    }
    assert [t["shortname"] for t in index["tactics"]] == ["persistence", "execution"]
    techniques = {t["id"]: t for t in index["techniques"]}
    assert list(techniques) == ["T1000", "T1000.001", "T1997", "T1998", "T1999"]
    parent = techniques["T1000"]
    assert parent["tactics"] == ["persistence", "execution"]  # matrix order
    assert parent["description"] == "Adversaries may run things."
    assert "Citation" not in parent["detail"]
    assert parent["data_sources"] == ["Process: Process Creation"]
    assert parent["is_subtechnique"] is False
    assert parent["parent"] is None
    assert techniques["T1000.001"]["parent"] == "T1000"
    assert techniques["T1000.001"]["is_subtechnique"] is True
    assert techniques["T1998"]["revoked_by"] == "T1000.001"
    assert techniques["T1999"]["revoked_by"] == "T1000.001"
    assert techniques["T1997"]["deprecated"] is True
    assert techniques["T1997"]["revoked_by"] is None


@pytest.mark.parametrize(
    "document", [{}, {"type": "bundle"}, {"type": "indicator", "objects": []}, []]
)
def test_build_index_rejects_what_is_not_a_bundle(document: Any) -> None:
    with pytest.raises(BundleError):
        build_index(document)


def test_text_helpers() -> None:
    assert plain_text("See [PowerShell](https://x/T1059/001).(Citation: A)\n\n<code>x</code>") == (
        "See PowerShell. x"
    )
    assert first_sentence("Adversaries may use e.g. cmd. Then more.") == (
        "Adversaries may use e.g. cmd."
    )
    assert first_sentence("word " * 100).endswith("…")
    assert len(first_sentence("word " * 100)) <= 301


def test_load_a_bundle_indexes_it_and_caches_the_index(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.json.gz"
    bundle.write_bytes(gzip.compress(json.dumps(small_bundle()).encode()))
    cache = tmp_path / "cache"
    kb = AttackKB.load(bundle, cache_dir=cache)
    assert [t.id for t in kb.techniques()] == ["T1000", "T1000.001"]
    (cached,) = cache.iterdir()
    assert cached.name.startswith("attack_index-")
    again = AttackKB.load(bundle, cache_dir=cache)
    assert again.source == kb.source
    # The cached index is itself loadable as a path.
    assert [t.id for t in AttackKB.load(cached).techniques()] == ["T1000", "T1000.001"]


def test_from_settings_uses_the_configured_bundle(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.json"
    bundle.write_text(json.dumps(small_bundle()))
    settings = Settings(data_dir=tmp_path / "data", attack_bundle=bundle)
    kb = AttackKB.from_settings(settings)
    found = kb.get("T1998")
    assert found is not None
    assert (found.technique.id, found.resolved) == ("T1000.001", True)
    assert found.technique.full_name == "Run Things: Run Scripts"
    assert found.technique.tactics == ("Execution",)
    assert list((tmp_path / "data" / "cache").iterdir())


def test_from_settings_defaults_to_the_shipped_index(tmp_path: Path) -> None:
    kb = AttackKB.from_settings(Settings(data_dir=tmp_path))
    assert kb.validate("T1059.001")
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"not json at all", "not (gzipped) JSON"),
        (b"\x1f\x8bbroken gzip", "not (gzipped) JSON"),
        (b'{"type": "indicator"}', "not a STIX bundle"),
        (b'{"format": "aurorasoc-attack-index", "format_version": 999}', "not a STIX bundle"),
    ],
)
def test_load_rejects_bad_files(tmp_path: Path, content: bytes, fragment: str) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(ValidationFailed) as caught:
        AttackKB.load(path)
    assert fragment in caught.value.detail[0]["msg"]


def test_load_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed) as caught:
        AttackKB.load(tmp_path / "absent.json")
    assert caught.value.code == "AURORA-4220"


# -- the shipped index ---------------------------------------------------------------------


def test_shipped_index_contents(kb: AttackKB) -> None:
    assert SHIPPED_INDEX.is_file()
    assert len(kb.techniques()) == 691
    assert len(kb.techniques(include_inactive=True)) == 835
    assert kb.tactic_names() == [
        "Reconnaissance",
        "Resource Development",
        "Initial Access",
        "Execution",
        "Persistence",
        "Privilege Escalation",
        "Defense Evasion",
        "Credential Access",
        "Discovery",
        "Lateral Movement",
        "Collection",
        "Command and Control",
        "Exfiltration",
        "Impact",
    ]


def test_get_current_technique(kb: AttackKB) -> None:
    found = kb.get("T1059.001")
    assert found is not None
    assert found.resolved is False
    technique = found.technique
    assert (technique.name, technique.full_name) == (
        "PowerShell",
        "Command and Scripting Interpreter: PowerShell",
    )
    assert technique.tactics == ("Execution",)
    assert technique.tactic_ids == ("TA0002",)
    assert technique.parent == "T1059"
    assert technique.is_subtechnique
    assert technique.active
    assert technique.url == "https://attack.mitre.org/techniques/T1059/001"
    assert technique.description == (
        "Adversaries may abuse PowerShell commands and scripts for execution."
    )


@pytest.mark.parametrize(
    ("requested", "current"),
    [
        ("T1086", "T1059.001"),  # PowerShell, revoked in 2020
        ("t1086", "T1059.001"),
        ("T1162", "T1647"),  # Login Item → Plist Modification → Plist File Modification
        ("T1574.002", "T1574.001"),  # DLL Side-Loading, merged into DLL in v18
    ],
)
def test_get_resolves_revoked_ids(kb: AttackKB, requested: str, current: str) -> None:
    found = kb.get(requested)
    assert found is not None
    assert found.resolved is True
    assert found.requested_id == requested.upper()
    assert found.technique.id == current
    assert kb.canonical_id(requested) == current
    assert kb.validate(requested)


@pytest.mark.parametrize("value", ["T9999", "T1059.999", "", "   ", "TA0002", "1059", "T10"])
def test_get_unknown_or_malformed(kb: AttackKB, value: str) -> None:
    assert kb.get(value) is None
    assert kb.canonical_id(value) is None
    assert kb.validate(value) is False


def test_deprecated_technique_is_found_but_not_valid(kb: AttackKB) -> None:
    found = kb.get("T1064")  # Scripting, deprecated without replacement
    assert found is not None
    assert (found.technique.name, found.technique.deprecated, found.resolved) == (
        "Scripting",
        True,
        False,
    )
    assert kb.validate("T1064") is False
    assert kb.validate("t1059/001") is True


def test_search(kb: AttackKB) -> None:
    assert [t.id for t in kb.search("powershell")][:2] == ["T1059.001", "T1546.013"]
    assert [t.id for t in kb.search("LSASS Memory")] == ["T1003.001"]
    assert [t.id for t in kb.search("T1003.001")] == ["T1003.001"]
    assert [t.id for t in kb.search("t1086")] == ["T1059.001"]
    assert [t.id for t in kb.search("t1086", include_inactive=True)] == ["T1059.001", "T1086"]
    assert len(kb.search("process", limit=3)) == 3
    assert all(t.active for t in kb.search("process", limit=50))
    assert kb.search("") == []
    assert kb.search("zzqqxxnothing") == []


def test_techniques_for_tactic(kb: AttackKB) -> None:
    by_name = kb.techniques_for_tactic("Execution")
    assert by_name == kb.techniques_for_tactic("TA0002") == kb.techniques_for_tactic("execution")
    assert "T1059.001" in {t.id for t in by_name}
    assert all("Execution" in t.tactics and t.active for t in by_name)
    parents = kb.techniques_for_tactic("execution", include_subtechniques=False)
    assert parents
    assert not any(t.is_subtechnique for t in parents)
    assert len(parents) < len(by_name)
    tactic = kb.tactic("ta0011")
    assert tactic is not None
    assert (tactic.name, tactic.shortname) == ("Command and Control", "command-and-control")


@pytest.mark.parametrize("tactic", ["", "Lunch", "TA9999"])
def test_techniques_for_unknown_tactic(kb: AttackKB, tactic: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        kb.techniques_for_tactic(tactic)
    assert caught.value.detail[0]["loc"] == ["tactic"]


def test_keyword_rules_name_current_techniques(kb: AttackKB) -> None:
    assert {tid for tid in KEYWORD_RULES if not kb.validate(tid)} == set()


# -- mapping -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("schtasks /create /tn Updater /tr C:\\Users\\Public\\a.exe /sc onlogon", "T1053.005"),
        ("They ran mimikatz sekurlsa::logonpasswords to read lsass memory.", "T1003.001"),
        ("The loader uses process hollowing to run inside svchost.", "T1055.012"),
        ("vssadmin delete shadows /all /quiet", "T1490"),
        ("Keystrokes were recorded by a keylogger module.", "T1056.001"),
        ("rundll32.exe C:\\ProgramData\\x.dll,Start", "T1218.011"),
        ("The report cites T1086 for this behaviour.", "T1059.001"),
    ],
)
def test_map_text_finds_the_technique(kb: AttackKB, text: str, expected: str) -> None:
    top = kb.map_text(text, limit=1)
    assert [match.technique_id for match in top] == [expected]
    assert 0.0 < top[0].score < 1.0
    assert top[0].evidence


def test_map_text_contract(kb: AttackKB) -> None:
    text = "The actor used PowerShell to download a payload and created a scheduled task."
    matches = kb.map_text(text, limit=5)
    assert matches == kb.map_text(text, limit=5)  # deterministic
    assert len(matches) == 5
    assert all(isinstance(m, TechniqueMatch) and kb.validate(m.technique_id) for m in matches)
    scores = [m.score for m in matches]
    assert scores == sorted(scores, reverse=True)
    assert len({m.technique_id for m in matches}) == 5
    explicit = kb.map_text("see T1086", limit=1)[0]
    assert "id T1086" in explicit.evidence
    high = kb.map_text(text, limit=5, min_score=0.9)
    assert all(m.score >= 0.9 for m in high)
    assert len(high) < 5


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_map_text_without_text(kb: AttackKB, text: str) -> None:
    assert kb.map_text(text) == []
    assert kb.map_text("powershell", limit=0) == []


# -- against the shared data ---------------------------------------------------------------


def test_shipped_index_is_the_build_of_the_shared_bundle(tmp_path: Path) -> None:
    bundle = shared_attack_dir() / BUNDLE_NAME
    output = tmp_path / "index.json.gz"
    assert build_main([str(bundle), "-o", str(output)]) == 0
    assert output.read_bytes() == SHIPPED_INDEX.read_bytes()


def test_shipped_index_agrees_with_the_compact_cross_check(kb: AttackKB) -> None:
    compact = json.loads((shared_attack_dir() / "enterprise_techniques_compact.json").read_text())
    assert {t["id"] for t in compact["techniques"]} == {t.id for t in kb.techniques()}
    for item in compact["techniques"]:
        found = kb.get(item["id"])
        assert found is not None
        technique = found.technique
        assert technique.name == item["name"]
        assert list(technique.tactics) == item["tactics"]
        assert technique.parent == item["parent"]
        assert sorted(technique.platforms) == sorted(item["platforms"])
    for item in compact["revoked"]:
        found = kb.get(item["id"])
        assert found is not None
        assert found.resolved
        # The compact file names the direct replacement; the KB follows chains to the end.
        assert kb.canonical_id(item["revoked_by"]) == found.technique.id
    assert {t["id"] for t in compact["deprecated"]} == {
        t.id for t in kb.techniques(include_inactive=True) if t.deprecated
    }


def test_build_script_reports_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"type": "indicator"}')
    assert build_main([str(bad), "-o", str(tmp_path / "out.json.gz")]) == 1
    assert "not a STIX bundle" in capsys.readouterr().err
    assert not (tmp_path / "out.json.gz").exists()


def test_the_attack_release_is_read_from_the_collection_object() -> None:
    bundle = small_bundle()
    assert "attack_version" not in build_index(bundle)["source"]
    assert AttackKB(build_index(bundle)).attack_version is None
    bundle["objects"].append(
        {"type": "x-mitre-collection", "id": "x-mitre-collection--c", "x_mitre_version": "18.1"}
    )
    assert AttackKB(build_index(bundle)).attack_version == "18.1"
    assert AttackKB.load().attack_version == "18.1"  # the shipped index's release


def test_the_stem_memo_stays_bounded_and_stems_the_same() -> None:
    stem = _Stemmer()
    stem.MEMO_LIMIT = 100
    first = [stem(f"scheduling{n}x") for n in range(1000)]  # random-ish tokens, never repeated
    assert len(stem._cache) <= 100
    assert stem("scheduling") == "schedul"
    assert [stem(f"scheduling{n}x") for n in range(1000)] == first


def test_the_stemmer_is_snowballs_c_library_with_the_pure_python_stems(kb: AttackKB) -> None:
    """PyStemmer (a dependency) is what snowballstemmer runs, and it stems every word of the
    knowledge base as snowballstemmer's own Python translation does: the index and every text
    mapped against it are stemmed alike, whichever is installed."""
    import snowballstemmer
    import Stemmer
    from snowballstemmer.english_stemmer import EnglishStemmer

    assert snowballstemmer.stemmer is Stemmer.Stemmer
    words: set[str] = set()
    for technique in kb.techniques():
        text = f"{technique.name} {technique.description} {technique.detail}".lower()
        words.update(_TOKEN.findall(text))
    assert len(words) > 3000
    compiled, python = Stemmer.Stemmer("english"), EnglishStemmer()
    assert [compiled.stemWord(w) for w in sorted(words)] == [
        python.stemWord(w) for w in sorted(words)
    ]
