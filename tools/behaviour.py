"""Detection rules over command lines, scripts, process trees and file paths, and their scoring.

Shared by the specialists that judge behaviour (malware, endpoint). What a command line, a
script or a process does is judged by Sigma rules (:mod:`tools.sigma.engine`: the SigmaHQ
Windows corpus and AuroraSOC's own rules): :func:`scan_command` runs them over a command line
as a process creation event (with its image, parent and user when known) and over every layer
:func:`tools.decode.unfold` recovers from it, and :func:`sigma_rule` gives a Sigma rule the
shape every rule here has. What stays code is what is code by nature: how a text is hidden
(:data:`OBFUSCATION_RULES`), and checks of an image file that need more than a pattern
(:data:`PROCESS_RULES`: where it runs from, names one edit away from a system binary, renamed
tools, deceptive names). Every rule has the ATT&CK technique(s) it shows, the attack stage, a
severity and a weight (how specific it is).

Scoring (:func:`assess`):

- severity: the highest severity of the rules that fired, raised one step (up to critical)
  when rules of severity medium or more fired in three or more phases of an intrusion
  (:data:`PHASES`: delivery, foothold, credential theft, lateral movement, impact), since an
  intrusion that runs, persists and steals is worse than any one step. Execution, command and
  control and defence evasion count as one phase, delivery: a hidden, encoded download cradle
  is one step however many stages it touches. Discovery does not count.
  ``informational`` when no rule fired;
- confidence: independent rules agreeing, ``1 - Π(1 - weight)`` over distinct rules (a rule
  firing twice counts once), capped at 0.95; with no hit, 0.4 when behaviour (command lines,
  processes, events) was examined and the rules found nothing, 0.2 when only identities
  (hashes, file names) were, since rules cannot judge a hash.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PureWindowsPath
from typing import Any, Final, Literal

from core.schemas import Severity
from tools.decode import MAX_UNFOLD_CHARS, Layer, unfold
from tools.sigma.engine import (
    RuleInfo,
    SigmaEngine,
    SigmaMatch,
    command_event,
    level_rank,
    script_event,
)

Stage = Literal[
    "execution",
    "persistence",
    "privilege_escalation",
    "defense_evasion",
    "credential_access",
    "discovery",
    "lateral_movement",
    "command_and_control",
    "impact",
]

PHASES: Final[dict[str, str]] = {
    "execution": "delivery",
    "command_and_control": "delivery",
    "defense_evasion": "delivery",
    "persistence": "foothold",
    "privilege_escalation": "foothold",
    "credential_access": "credential theft",
    "lateral_movement": "lateral movement",
    "impact": "impact",
    "discovery": "",
}
"""The intrusion phase of each stage, for the breadth escalation of :func:`assess`."""

MAX_SCAN_CHARS: Final[int] = MAX_UNFOLD_CHARS
"""Longest text scanned; the rest of a longer one is ignored (and said so by the caller)."""
EXCERPT_CHARS: Final[int] = 160
CONFIDENCE_CAP: Final[float] = 0.95
BREADTH_PHASES: Final[int] = 3


@dataclass(frozen=True, slots=True)
class Rule:
    """One detection: what it means (techniques, stage), how bad (severity), how specific
    (weight, the confidence one hit lends) and why (rationale). ``pattern`` is set for text
    rules; process, file and event rules are checked by code."""

    id: str
    title: str
    techniques: tuple[str, ...]
    stage: Stage
    severity: Severity
    weight: float
    rationale: str
    pattern: re.Pattern[str] | None = None


@dataclass(frozen=True, slots=True)
class RuleHit:
    """A rule that fired: where (``source``, e.g. ``command_lines[2]`` or ``process 4242``)
    and on what (``excerpt``, the matched text with a little context)."""

    rule: Rule
    source: str
    excerpt: str


@dataclass(frozen=True, slots=True)
class Assessment:
    """What a set of hits adds up to (see the module docstring for the method)."""

    severity: Severity
    confidence: float
    stages: tuple[str, ...]
    """The stages of the rules that fired."""
    phases: tuple[str, ...]
    """The intrusion phases of the medium-or-worse rules that fired."""
    escalated: bool


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


OBFUSCATION_RULES: Final[tuple[Rule, ...]] = (
    Rule(
        "char_code_obfuscation",
        "Character-code or join obfuscation",
        ("T1027.010",),
        "defense_evasion",
        Severity.MEDIUM,
        0.6,
        "Building a script from character codes or fragments exists to evade inspection.",
        _rx(
            r"-join\s*\(?\s*\(?\s*[\"']?\s*\d{2,3}\s*[^\d\s]{1,3}\d{2,3}"
            r"|(?:\[char\]\s*\(?\s*\d{2,3}\s*\)?\s*[+,]\s*){3,}"
            r"|\$env:comspec\[\d+\s*,\s*\d+"
        ),
    ),
    Rule(
        "cmd_caret_obfuscation",
        "Caret-escaped command (p^o^w^e^r^s^h^e^l^l)",
        ("T1027.010",),
        "defense_evasion",
        Severity.LOW,
        0.4,
        "cmd ignores ^ before ordinary letters; scattering them breaks string matching.",
        _rx(r"(?:[a-z]\^){3,}[a-z]"),
    ),
    Rule(
        "embedded_pe_base64",
        "Base64 of a Windows executable (MZ header) in a command",
        ("T1027",),
        "defense_evasion",
        Severity.HIGH,
        0.75,
        "A program carried as base64 text inside a command line is being smuggled in.",
        re.compile(r"(?<![A-Za-z0-9+/])TV(?:qQ|pQ|oA|qA|ro)AA"),
    ),
    Rule(
        "echo_base64_staging",
        "Base64 written to a file piece by piece with echo",
        ("T1027",),
        "defense_evasion",
        Severity.MEDIUM,
        0.5,
        "Echoing base64 chunks into a file, then decoding it, stages a payload past filters.",
        _rx(r"\becho\s+[A-Za-z0-9+/=]{64,}\s*>{1,2}\s*\S+"),
    ),
)
"""Rules that judge how a text is hidden rather than what it does: part of deobfuscation,
kept as code beside the Sigma rules the agents run on commands and events."""


# -- process and file checks -------------------------------------------------------------------

# System binaries that live in one place, and the folders (lower case, no drive) they live in.
_SYSTEM32 = ("\\windows\\system32", "\\windows\\syswow64")
SYSTEM_LOCATIONS: Final[dict[str, tuple[str, ...]]] = {
    **dict.fromkeys(
        (
            "svchost.exe",
            "lsass.exe",
            "csrss.exe",
            "winlogon.exe",
            "wininit.exe",
            "services.exe",
            "smss.exe",
            "spoolsv.exe",
            "lsm.exe",
            "taskhost.exe",
            "taskhostw.exe",
            "dllhost.exe",
            "conhost.exe",
            "sihost.exe",
            "userinit.exe",
            "dwm.exe",
            "ctfmon.exe",
            "rundll32.exe",
            "regsvr32.exe",
            "cmd.exe",
            "mshta.exe",
            "certutil.exe",
            "schtasks.exe",
        ),
        _SYSTEM32,
    ),
    "explorer.exe": ("\\windows",),
    "wmiprvse.exe": ("\\windows\\system32\\wbem", "\\windows\\syswow64\\wbem"),
    "powershell.exe": (
        "\\windows\\system32\\windowspowershell\\v1.0",
        "\\windows\\syswow64\\windowspowershell\\v1.0",
    ),
}
# OriginalFileName (PE version info) of tools attackers rename to dodge name-based detection.
WATCHED_ORIGINAL_NAMES: Final[frozenset[str]] = frozenset(
    {
        "powershell.exe",
        "pwsh.dll",
        "cmd.exe",
        "wscript.exe",
        "cscript.exe",
        "mshta.exe",
        "rundll32.exe",
        "regsvr32.exe",
        "certutil.exe",
        "bitsadmin.exe",
        "wmic.exe",
        "msiexec.exe",
        "psexec.c",
        "psexesvc.exe",
        "procdump",
        "reg.exe",
        "schtasks.exe",
        "net.exe",
        "net1.exe",
        "rclone.exe",
        "7z.exe",
        "winrar.exe",
        "anydesk.exe",
        "adfind.exe",
    }
)
EXECUTABLE_EXTENSIONS: Final[frozenset[str]] = frozenset(
    {
        ".exe",
        ".scr",
        ".com",
        ".pif",
        ".cpl",
        ".dll",
        ".bat",
        ".cmd",
        ".ps1",
        ".vbs",
        ".js",
        ".hta",
        ".msi",
        ".lnk",
    }
)
DOCUMENT_EXTENSIONS: Final[frozenset[str]] = frozenset(
    {
        ".pdf",
        ".doc",
        ".docx",
        ".xls",
        ".xlsx",
        ".ppt",
        ".pptx",
        ".txt",
        ".jpg",
        ".jpeg",
        ".png",
        ".gif",
        ".rtf",
        ".zip",
        ".mp4",
    }
)
_TEMP_DIRS = re.compile(
    r"\\(?:temp|tmp)\\|\\users\\public\\|\\perflogs\\|\\\$recycle\.bin\\|\\windows\\tasks\\",
    re.IGNORECASE,
)
_USER_DIRS_RX = re.compile(r"\\appdata\\|\\downloads\\|\\desktop\\|\\documents\\", re.IGNORECASE)
_RTLO = "\u202e"


@dataclass(frozen=True, slots=True)
class ProcessView:
    """A process (or a file on disk, with only ``image`` set) as the checks see it."""

    image: str | None
    command_line: str | None = None
    parent_image: str | None = None
    original_file_name: str | None = None
    pid: int | None = None
    user: str | None = None
    parent_user: str | None = None


def clean_path(path: str | None) -> str:
    """A Windows path as written in events, without quotes or the ``\\??\\`` prefix."""
    if not path:
        return ""
    text = path.strip().strip("\"'")
    return text[4:] if text.startswith("\\??\\") else text


def base_name(path: str | None) -> str:
    """The lower-case file name of a Windows path (``C:\\x\\Cmd.EXE`` → ``cmd.exe``)."""
    return PureWindowsPath(clean_path(path)).name.lower()


def _directory(path: str) -> str:
    parent = str(PureWindowsPath(clean_path(path)).parent).lower()
    # Drive letters, %SystemRoot% and device paths all end in the same folders.
    parent = re.sub(r"^(?:%systemroot%|%windir%|\\systemroot)(?=\\|$)", "\\\\windows", parent)
    parent = re.sub(r"^(?:[a-z]:|\\device\\harddiskvolume\d+)", "", parent)
    return parent.replace("\\windows\\sysnative", "\\windows\\system32")


def _near(name: str, target: str) -> bool:
    """Whether ``name`` is one edit (or one swap of neighbours) away from ``target``."""
    if name == target or abs(len(name) - len(target)) > 1:
        return False
    if len(name) == len(target):
        diffs = [i for i, (a, b) in enumerate(zip(name, target, strict=True)) if a != b]
        if len(diffs) == 1:
            return True
        return (
            len(diffs) == 2
            and diffs[1] == diffs[0] + 1
            and name[diffs[0]] == target[diffs[1]]
            and name[diffs[1]] == target[diffs[0]]
        )
    short, long_ = (name, target) if len(name) < len(target) else (target, name)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


PROCESS_RULES: Final[dict[str, Rule]] = {
    rule.id: rule
    for rule in (
        Rule(
            "temp_execution",
            "Executable running from a temporary or public folder",
            ("T1204.002",),
            "execution",
            Severity.MEDIUM,
            0.55,
            "Payloads are dropped and run from Temp, Users\\Public and similar world-writable"
            " folders; installed software is not.",
        ),
        Rule(
            "user_folder_execution",
            "Executable running from a user folder (AppData, Downloads, Desktop)",
            ("T1204.002",),
            "execution",
            Severity.LOW,
            0.3,
            "Some software installs per user, but so does most commodity malware.",
        ),
        Rule(
            "masquerade_location",
            "System binary name outside its system folder",
            ("T1036.005",),
            "defense_evasion",
            Severity.HIGH,
            0.8,
            "svchost.exe, lsass.exe and the like only ever run from System32; a copy elsewhere"
            " wears the name to blend in.",
        ),
        Rule(
            "masquerade_lookalike",
            "Name one letter away from a system binary",
            ("T1036.005",),
            "defense_evasion",
            Severity.HIGH,
            0.65,
            "scvhost.exe or lsasss.exe is picked to pass a glance at the process list.",
        ),
        Rule(
            "renamed_binary",
            "Renamed system or admin tool",
            ("T1036.003",),
            "defense_evasion",
            Severity.HIGH,
            0.75,
            "The PE's original name (e.g. wscript.exe) differs from its file name: renamed to"
            " dodge detections keyed on names.",
        ),
        Rule(
            "double_extension",
            "Executable with a document extension in front (invoice.pdf.exe)",
            ("T1036.007",),
            "defense_evasion",
            Severity.HIGH,
            0.75,
            "A document extension before the real one tricks users into running a program.",
        ),
        Rule(
            "rtlo_name",
            "Right-to-left override character in a file name",
            ("T1036.002",),
            "defense_evasion",
            Severity.HIGH,
            0.85,
            "U+202E reverses the displayed name so that an .exe looks like a document.",
        ),
    )
}


IMAGE_RULES: Final[frozenset[str]] = frozenset(PROCESS_RULES)
"""Process rules that judge the image file itself (its folder or name), not what it ran."""
CRITICAL_PROCESSES: Final[frozenset[str]] = frozenset(
    {"lsass.exe", "csrss.exe", "wininit.exe", "smss.exe", "services.exe", "winlogon.exe", "system"}
)
"""Processes whose killing ends the session or crashes Windows: never proposed for the genuine
ones."""


def _process_hit(rule_id: str, source: str, excerpt: str) -> RuleHit:
    return RuleHit(PROCESS_RULES[rule_id], source, excerpt[:EXCERPT_CHARS])


def scan_process(view: ProcessView, source: str) -> list[RuleHit]:
    """The image and file rules that ``view`` triggers: the folder the image runs from,
    masquerading and renaming, deceptive file names (what the process ran, and its parent, are
    judged by the Sigma rules: :func:`scan_command`)."""
    hits: list[RuleHit] = []
    image = clean_path(view.image)
    name = base_name(image)
    if not name:
        return hits
    extension = PureWindowsPath(name).suffix
    if "\\" in image and extension in EXECUTABLE_EXTENSIONS:
        if _TEMP_DIRS.search(image):
            hits.append(_process_hit("temp_execution", source, image))
        elif _USER_DIRS_RX.search(image):
            hits.append(_process_hit("user_folder_execution", source, image))
    expected = SYSTEM_LOCATIONS.get(name)
    if expected and "\\" in image and _directory(image) not in expected:
        hits.append(_process_hit("masquerade_location", source, image))
    elif not expected and extension == ".exe":
        lookalike = next((s for s in SYSTEM_LOCATIONS if _near(name, s)), None)
        if lookalike:
            hits.append(_process_hit("masquerade_lookalike", source, f"{name} ~ {lookalike}"))
    original = (view.original_file_name or "").strip().lower()
    if original in WATCHED_ORIGINAL_NAMES and original != name:
        hits.append(_process_hit("renamed_binary", source, f"{name} (originally {original})"))
    stem_suffix = PureWindowsPath(PureWindowsPath(name).stem).suffix
    if extension in EXECUTABLE_EXTENSIONS and stem_suffix in DOCUMENT_EXTENSIONS:
        hits.append(_process_hit("double_extension", source, name))
    if _RTLO in image:
        hits.append(_process_hit("rtlo_name", source, image.replace(_RTLO, "<U+202E>")))
    return hits


# -- scanning ---------------------------------------------------------------------------------


def _excerpt(text: str, match: re.Match[str]) -> str:
    start = max(0, match.start() - 30)
    end = min(len(text), max(match.end(), start + 60) + 30)
    snippet = " ".join(text[start:end].split())
    if len(snippet) > EXCERPT_CHARS:
        snippet = snippet[: EXCERPT_CHARS - 1] + "…"
    return snippet


def scan_text(text: str, source: str, rules: Iterable[Rule] = OBFUSCATION_RULES) -> list[RuleHit]:
    """The text rules that fire on ``text`` (its first :data:`MAX_SCAN_CHARS` characters),
    one hit per rule, in rule order."""
    if not text:
        return []
    body = text[:MAX_SCAN_CHARS]
    hits: list[RuleHit] = []
    for rule in rules:
        if rule.pattern is None:
            continue
        match = rule.pattern.search(body)
        if match:
            hits.append(RuleHit(rule, source, _excerpt(body, match)))
    return hits


def scan_layers(
    text: str, source: str, layers: Iterable[Layer], rules: Iterable[Rule] = OBFUSCATION_RULES
) -> list[RuleHit]:
    """:func:`scan_text` over ``text`` and ``layers`` already recovered from it (sources of
    hits on a layer name the layer's method), one hit per rule, outermost first."""
    rules = tuple(rules)
    hits = scan_text(text, source, rules)
    fired = {hit.rule.id for hit in hits}
    for layer in layers:
        for hit in scan_text(layer.text, f"{source} ({layer.method})", rules):
            if hit.rule.id not in fired:
                fired.add(hit.rule.id)
                hits.append(hit)
    return hits


# -- Sigma rules as rules ------------------------------------------------------------------------

SIGMA_STAGES: Final[dict[str, Stage]] = {
    "execution": "execution",
    "initial-access": "execution",
    "persistence": "persistence",
    "privilege-escalation": "privilege_escalation",
    "defense-evasion": "defense_evasion",
    "stealth": "defense_evasion",
    "defense-impairment": "defense_evasion",
    "credential-access": "credential_access",
    "discovery": "discovery",
    "collection": "discovery",
    "reconnaissance": "discovery",
    "resource-development": "discovery",
    "lateral-movement": "lateral_movement",
    "command-and-control": "command_and_control",
    "exfiltration": "command_and_control",
    "impact": "impact",
}
"""The stage of a Sigma rule from its first ATT&CK tactic tag; tactics outside the stages
take the nearest one, and a rule without any counts as discovery (no breadth)."""
SIGMA_LEVELS: Final[dict[str, tuple[Severity, float]]] = {
    "informational": (Severity.INFORMATIONAL, 0.1),
    "low": (Severity.LOW, 0.3),
    "medium": (Severity.MEDIUM, 0.5),
    "high": (Severity.HIGH, 0.7),
    "critical": (Severity.CRITICAL, 0.85),
}
"""A Sigma level's severity, and the weight (confidence one hit lends) it carries."""


def sigma_rule(info: RuleInfo) -> Rule:
    """A Sigma rule (as the engine compiled it) in the shape every behaviour rule has: its id,
    title, ATT&CK techniques, stage (:data:`SIGMA_STAGES`), and severity and weight from its
    level (:data:`SIGMA_LEVELS`)."""
    stage: Stage = next((SIGMA_STAGES[t] for t in info.tactics if t in SIGMA_STAGES), "discovery")
    severity, weight = SIGMA_LEVELS.get(info.level, SIGMA_LEVELS["medium"])
    return Rule(
        info.id,
        f"{info.title} (Sigma, {info.level})",
        info.techniques,
        stage,
        severity,
        weight,
        " ".join(info.description.split())[:500] or info.title,
    )


def sigma_hit(match: SigmaMatch, source: str) -> RuleHit:
    """An engine match as a rule hit at ``source``: the excerpt is the matched fields."""
    excerpt = "; ".join(f"{k}={' '.join(v.split())}" for k, v in match.fields.items())
    if len(excerpt) > EXCERPT_CHARS:
        excerpt = excerpt[: EXCERPT_CHARS - 1] + "…"
    return RuleHit(sigma_rule(match.rule), source, excerpt or match.title)


def sigma_scan_texts(
    engine: SigmaEngine,
    items: Iterable[tuple[str, Mapping[str, object]]],
    *,
    min_level: str = "low",
) -> list[RuleHit]:
    """Run ``engine`` over prepared events (each with the source its hits get: a command line
    as :func:`tools.sigma.engine.command_event`, a script as
    :func:`~tools.sigma.engine.script_event`), one hit per rule and source, rules below
    ``min_level`` left out."""
    floor = level_rank(min_level)
    chosen = list(items)
    hits: dict[tuple[str, str], RuleHit] = {}
    for match in engine.match([event for _, event in chosen]):
        if level_rank(match.level) < floor:
            continue
        source = chosen[match.index][0]
        hits.setdefault((match.rule_id, source), sigma_hit(match, source))
    return list(hits.values())


# A token that names a program: a path or a file name, never a script fragment such as
# "[Ref].Assembly", "(New-Object", "$x=" or a PowerShell cmdlet (Verb-Noun).
_PROGRAM_TOKEN: Final[re.Pattern[str]] = re.compile(r"[\w.~$%:\\ ()-]+")
_CMDLET: Final[re.Pattern[str]] = re.compile(r"[a-z]+-[a-z]+", re.IGNORECASE)
MAX_BARE_NAME: Final[int] = 32
"""Longest file name without folder or extension read as a program (longer: a blob)."""
SYSTEM32: Final[str] = "C:\\Windows\\System32"


def command_image(command_line: str) -> str:
    """The image a command line starts, as a process creation event names it, or ``""`` when
    its first token does not name a program (a script fragment, a cmdlet, a blob).

    The first token (quoted or not, without ``\\??\\``) is the image; a name without an
    extension gets ``.exe``, as Windows resolves it. A bare name is placed in System32, where
    Windows finds its own tools: the command line does not say which folder it ran from, and
    System32 is the one folder no rule holds against a Windows tool."""
    stripped = command_line.strip()
    if stripped.startswith('"'):
        token = stripped[1:].split('"', 1)[0]
    else:
        token = stripped.split(None, 1)[0] if stripped else ""
    token = clean_path(token)
    if token.lower() == "%comspec%":
        return f"{SYSTEM32}\\cmd.exe"
    if not token or not _PROGRAM_TOKEN.fullmatch(token) or token.endswith((" ", ".")):
        return ""
    path = PureWindowsPath(token)
    has_folder = "\\" in token or (len(token) > 1 and token[1] == ":")
    if not has_folder and ("(" in token or ")" in token):
        return ""
    if not path.suffix:
        if not has_folder and (len(token) > MAX_BARE_NAME or _CMDLET.fullmatch(token)):
            return ""
        token += ".exe"
    return token if has_folder else f"{SYSTEM32}\\{token}"


def _text_event(text: str, image: str, parent_image: str = "", user: str = "") -> dict[str, Any]:
    event = command_event(text, image=image or "-", parent_image=parent_image, user=user)
    if not image:
        # Not known: an absent field, which rules on the image never match.
        del event["Image"]
    return event


def layer_events(
    source: str, layers: Iterable[Layer], *, image: str = ""
) -> list[tuple[str, dict[str, Any]]]:
    """Each decoded layer of the text at ``source`` as the Sigma rules judge it, at
    ``source (method)``: a process creation event (run by ``image``, the process that held the
    encoded text; unknown: the layer's own :func:`command_image`) and a script block."""
    return [
        (f"{source} ({layer.method})", event)
        for layer in layers
        for event in (
            _text_event(layer.text, image or command_image(layer.text)),
            script_event(layer.text),
        )
    ]


def scan_command(
    engine: SigmaEngine,
    text: str,
    source: str,
    *,
    layers: Sequence[Layer] | None = None,
    image: str = "",
    parent_image: str = "",
    user: str = "",
    min_level: str = "low",
) -> list[RuleHit]:
    """The rules that fire on a command line (or a script) at ``source`` and on the ``layers``
    deobfuscation recovers from it (:func:`tools.decode.unfold` when not given): the Sigma rules
    of ``engine`` over the text as a process creation event (``image`` or its
    :func:`command_image`, ``parent_image``, ``user``; a text that starts no program, a script
    fragment, is also judged as a script block) and over :func:`layer_events`, and the
    obfuscation rules. One hit per rule, on the outermost text where it fires."""
    found = unfold(text) if layers is None else list(layers)
    image = clean_path(image)
    if image and "\\" not in image:
        image = command_image(image)
    image = image or command_image(text)
    items: list[tuple[str, Mapping[str, object]]] = [
        (source, _text_event(text, image, clean_path(parent_image), user))
    ]
    if not image:
        items.append((source, script_event(text)))
    items += layer_events(source, found, image=image)
    order = {item_source: rank for rank, (item_source, _) in reversed(list(enumerate(items)))}
    hits = scan_layers(text, source, found, OBFUSCATION_RULES)
    sigma = sigma_scan_texts(engine, items, min_level=min_level)
    hits += sorted(sigma, key=lambda hit: order[hit.source])
    unique: dict[str, RuleHit] = {}
    for hit in hits:
        unique.setdefault(hit.rule.id, hit)
    return list(unique.values())


def rule_catalogue() -> list[Rule]:
    """Every rule of this module: obfuscation rules, then image and file rules."""
    return [*OBFUSCATION_RULES, *PROCESS_RULES.values()]


# -- scoring ----------------------------------------------------------------------------------

_SCALE: Final[tuple[Severity, ...]] = tuple(Severity)


def assess(hits: Iterable[RuleHit], *, behaviour: bool) -> Assessment:
    """Severity and confidence of a set of hits (see the module docstring). ``behaviour`` says
    whether anything behavioural (command lines, processes, events) was examined."""
    distinct = {hit.rule.id: hit.rule for hit in hits}
    if not distinct:
        return Assessment(
            Severity.INFORMATIONAL, 0.4 if behaviour else 0.2, (), (), escalated=False
        )
    top = max(rule.severity for rule in distinct.values())
    phases = {
        PHASES[rule.stage]
        for rule in distinct.values()
        if rule.severity >= Severity.MEDIUM and PHASES[rule.stage]
    }
    escalated = len(phases) >= BREADTH_PHASES and top < Severity.CRITICAL
    severity = _SCALE[top.rank + 1] if escalated else top
    doubt = 1.0
    for rule in distinct.values():
        doubt *= 1 - min(max(rule.weight, 0.0), 0.99)
    confidence = min(CONFIDENCE_CAP, 1 - doubt)
    all_stages = tuple(sorted({rule.stage for rule in distinct.values()}))
    return Assessment(severity, round(confidence, 3), all_stages, tuple(sorted(phases)), escalated)


def techniques_of(hits: Iterable[RuleHit], canonical: Callable[[str], str | None]) -> list[str]:
    """The ATT&CK ids the hits show, in order of first appearance, each resolved through
    ``canonical`` (the knowledge base's :meth:`canonical_id`); unknown ids are dropped."""
    found: dict[str, None] = {}
    for hit in hits:
        for technique in hit.rule.techniques:
            resolved = canonical(technique)
            if resolved:
                found.setdefault(resolved, None)
    return list(found)
