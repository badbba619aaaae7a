"""Two defences of the chat assistant: what the user types is neutralised before the model
reads it, and what the model writes is scrubbed before anyone else does.

**Neutralised input** (:func:`neutralise`). The user's own turn is not fenced (it is the one
voice with authority), so nothing in it may pass for a turn boundary or a fence:

- line endings become ``\\n`` (``\\r\\n``, a lone ``\\r``, U+2028 and U+2029: a lone ``\\r``
  overwrites a terminal line, and a model may read the Unicode separators as new lines, where
  a role word would then open one);
- control characters (category Cc other than tab and line feed), bidirectional overrides and
  isolates, zero-width characters and tag characters (U+E0000…U+E007F, which spell hidden
  ASCII that tokenizers read and screens do not) are removed. Two exceptions keep ordinary
  text intact: a zero-width joiner or non-joiner between two non-ASCII letters, marks or
  symbols (emoji sequences, Persian and Indic words) cannot split an ASCII marker and stays,
  and so do the tags of a subdivision flag (🏴 + lower-case tags + cancel tag);
- chat-template role markers are rewritten in round brackets, which no chat template uses:
  ``<|im_start|>`` (any ``<|name|>``, with ASCII or full-width pipes and angles, as ChatML,
  Llama 3, Phi and DeepSeek write them) becomes ``(im_start)``, ``<s>`` ``(s)``, ``</s>``
  ``(/s)``, ``<start_of_turn>`` ``(start_of_turn)``, ``[INST]`` ``(INST)``, ``[/INST]``
  ``(/INST)`` (and Mistral's other bracket tokens), ``<<SYS>>`` ``(SYS)``. The model still
  reads what was typed; no tokenizer or template reads a turn boundary in it. A line that opens
  with a role word (``system:``, ``assistant:``, ``developer:``, or ``### System:``,
  ``### Instruction:``, ``### Response:`` … of the Alpaca layout) gets ``(quoted)`` put before
  the word, so the line no longer starts with it;
- fence look-alikes are defused: an angle bracket (ASCII, one that NFKC makes ``<`` or ``>``,
  or one of :mod:`core.llm.fence`'s drawn look-alikes) followed by ``untrusted`` (any case,
  spacing, slash, NFKC look-alike letters) is written as :func:`core.llm.fence.encode` writes
  it (``&lt;`` or ``&#xFF1C;``), and so is the bracket that closes that tag, so the user can
  neither open nor close a fence. Elsewhere a ``<`` stays (``if a < b``), and so do guillemets
  and CJK brackets; only the four characters that NFKC turns into ``<`` or ``>`` (full-width
  and small forms) are always written as references, since a tokenizer that normalises would
  read them as the ASCII ones.

Ordinary text (code, markdown, any language, emoji, addresses) comes back unchanged, with no
change recorded. Every step is a linear scan: the patterns use possessive quantifiers and
bounded look-ahead, so hostile input of any size cannot make them backtrack.

**Scrubbed output** (:class:`Scrubber`). Secrets, the platform's own secrets and text of the
system prompt are replaced by ``[REDACTED:kind]``, and each replacement is recorded with its
kind and length (never its value):

- ``secret:<type>``: the secret formats of the rule classes that detect-secrets' plugins and
  gitleaks' rules define (PEM private keys, AWS, GitHub, GitLab, Slack, Stripe, OpenAI,
  Anthropic, Google, SendGrid, npm, PyPI and Hugging Face keys and tokens, JWTs, bearer and
  basic credentials, passwords in URLs, and values assigned to keywords such as ``password``
  or ``api_key``). They are written here rather than taken from detect-secrets, whose
  line scanner took 290 ms on a 20 KB answer, reports some tokens by a fragment only (``ghp``)
  and knows neither OpenAI nor Google keys; these take about 5 ms. A value after a keyword is
  taken when it is quoted, follows ``=``, or follows ``:`` and ends its line or mixes letters
  and digits, so prose (``Password: use a long one``) and code (``token = get_token()``,
  ``password: ${DB_PASSWORD}``) are left alone;
- ``platform_secret``: each secret the platform holds (8 characters or more) as written, in
  hexadecimal, and in base64 (standard and URL-safe, at each of the three byte alignments it
  can have inside a longer encoded string);
- ``system_prompt``: a sentence of the system prompt of ``min_sentence_words`` words or more,
  or any run of ``min_run_words`` (12) consecutive words of it, compared word by word
  (case-folded, with up to 24 characters of spacing or punctuation between two words).

Overlapping findings make one redaction, of the kind of the one that starts first.

:meth:`Scrubber.stream` scrubs text as it is generated. It holds back only where a finding
could still be in progress (a token prefix such as ``ghp_`` or ``-----BEGIN``, a keyword
waiting for its value, the last word and a run of words that so far follows the system
prompt) and releases text as soon as it is decided, so the holdback is bounded by the longest
match a pattern allows (twelve words for the prompt, a few hundred characters for most
secrets, some kilobytes for a JWT); after a private key's BEGIN line the marker is written at
once and nothing more until its END line (or the end). Everything it emits, however the text
is cut into pieces, concatenates to :meth:`Scrubber.scrub` of the whole text. What is decided
is found with :mod:`regex`'s partial matching, run on each pattern made unable to complete:
the first position whose attempt reads up to the end of the text so far is where a match may
still come or change; every match before it is final.
"""

from __future__ import annotations

import base64
import re
import sys
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final, Literal

import regex

from core.llm.fence import _ANGLE_LOOKALIKES, _BIDI_CONTROLS, encode

# --------------------------------------------------------------------------------------------
# Neutralised input
# --------------------------------------------------------------------------------------------

type Change = Literal[
    "line_endings",
    "control_characters",
    "bidi_controls",
    "zero_width",
    "tag_characters",
    "role_markers",
    "fence_lookalikes",
    "angle_lookalikes",
]

_CHANGE_ORDER: Final[tuple[Change, ...]] = (
    "line_endings",
    "control_characters",
    "bidi_controls",
    "zero_width",
    "tag_characters",
    "role_markers",
    "fence_lookalikes",
    "angle_lookalikes",
)


@dataclass(frozen=True, slots=True)
class Neutralised:
    """The neutralised text and the kinds of change made to it (empty when none was)."""

    text: str
    changes: tuple[Change, ...]


QUOTED: Final = "(quoted) "
"""What :func:`neutralise` puts before a role word that opens a line."""

_LINE_BREAK: Final = re.compile("\r\n?|[\u2028\u2029]")

_JOINERS: Final = "\u200c\u200d"
_ZERO_WIDTH: Final = "\u200b\u2060\ufeff\u00ad\u180e\u2061\u2062\u2063\u2064"
_INVISIBLE: Final = re.compile(
    # A subdivision flag: black flag, its region code in tag letters or digits, cancel tag.
    "(?P<flag>\U0001f3f4[\U000e0030-\U000e0039\U000e0061-\U000e007a]{1,7}+\U000e007f)"
    "|(?P<tag>[\U000e0000-\U000e007f])"
    "|(?P<control>[\x00-\x08\x0b-\x1f\x7f-\x9f])"
    f"|(?P<bidi>[{''.join(sorted(_BIDI_CONTROLS))}])"
    f"|(?P<zero_width>[{_ZERO_WIDTH}])"
    f"|(?P<joiner>[{_JOINERS}])"
)

_LT: Final = "<\uff1c\ufe64"  # "<" and the characters NFKC turns into it
_GT: Final = ">\uff1e\ufe65"
_ROLE_MARKER: Final = re.compile(
    rf"[{_LT}][ \t]*+[|\uff5c][ \t]*+(?P<pipe>[A-Za-z0-9_\u2581.:/-]{{1,64}}+)[ \t]*+"
    rf"[|\uff5c][ \t]*+[{_GT}]"
    rf"|[{_LT}](?P<angle>/?(?:s|bos|eos|start_of_turn|end_of_turn))[{_GT}]"
    r"|<<[ \t]*+(?P<sys>/?)[ \t]*+(?P<sys_name>SYS)[ \t]*+>>"
    r"|\[[ \t]*+(?P<bracket>/?)[ \t]*+"
    r"(?P<bracket_name>INST|SYSTEM_PROMPT|AVAILABLE_TOOLS|TOOL_CALLS|TOOL_RESULTS)[ \t]*+\]",
    re.IGNORECASE,
)
_ROLE_LINE: Final = re.compile(
    r"^[ \t]*+(?:###[ \t]*+(?P<heading>system|instructions?|response|assistant|user|human)"
    r"|(?P<role>system|assistant|developer))(?=[ \t]*+:)",
    re.IGNORECASE | re.MULTILINE,
)

_NFKC_ANGLES: Final = "\uff1c\uff1e\ufe64\ufe65"  # every character NFKC turns into < or >
_ANGLES: Final = frozenset("<>" + _NFKC_ANGLES) | _ANGLE_LOOKALIKES
_ANGLE: Final = re.compile(f"[{re.escape(''.join(sorted(_ANGLES)))}]")
_NFKC_ANGLE: Final = re.compile(f"[{_NFKC_ANGLES}]")
_TAG_NAME: Final = "untrusted"
_TAG_LOOKAHEAD: Final = 48  # room for spacing and a slash before the name, NFKC-expanded
_TAG_SPAN: Final = 256  # how far the bracket that closes a defused tag is looked for


def _joins(char: str) -> bool:
    """Whether a joiner next to ``char`` can be part of ordinary text (never next to ASCII)."""
    if char.isascii():
        return False
    category = unicodedata.category(char)
    return category[0] in "LM" or category in ("So", "Sk")


def _remove_invisible(text: str, changes: set[Change]) -> str:
    def one(match: re.Match[str]) -> str:
        kind = match.lastgroup
        if kind == "flag":
            return match.group()
        if kind == "joiner":
            start, end = match.start(), match.end()
            if start > 0 and end < len(text) and _joins(text[start - 1]) and _joins(text[end]):
                return match.group()
            kind = "zero_width"
        if kind == "control":
            changes.add("control_characters")
        elif kind == "bidi":
            changes.add("bidi_controls")
        elif kind == "tag":
            changes.add("tag_characters")
        else:
            changes.add("zero_width")
        return ""

    return _INVISIBLE.sub(one, text)


def _defuse_role_markers(text: str, changes: set[Change]) -> str:
    def marker(match: re.Match[str]) -> str:
        changes.add("role_markers")
        if match.group("pipe") is not None:
            return f"({match.group('pipe')})"
        if match.group("angle") is not None:
            return f"({match.group('angle')})"
        if match.group("sys_name") is not None:
            return f"({match.group('sys')}{match.group('sys_name')})"
        return f"({match.group('bracket')}{match.group('bracket_name')})"

    def line(match: re.Match[str]) -> str:
        changes.add("role_markers")
        word = "heading" if match.group("heading") is not None else "role"
        split = match.start(word) - match.start()
        return match.group()[:split] + QUOTED + match.group()[split:]

    return _ROLE_LINE.sub(line, _ROLE_MARKER.sub(marker, text))


def _opens_fence_tag(text: str, after: int) -> bool:
    """Whether the text after an angle bracket at ``after - 1`` reads as a fence tag's name."""
    head = text[after : after + 1]
    if head.isascii() and head not in ("", "/", "u", "U") and not head.isspace():
        return False  # the common case, decided without normalising
    following = unicodedata.normalize("NFKC", text[after : after + _TAG_LOOKAHEAD]).casefold()
    following = following.lstrip()
    if following.startswith("/"):
        following = following[1:].lstrip()
    return following.startswith(_TAG_NAME)


def _defuse_fences(text: str, changes: set[Change]) -> str:
    escaped: dict[int, Change] = {}
    for match in _ANGLE.finditer(text):
        index = match.start()
        if not _opens_fence_tag(text, index + 1):
            continue
        escaped[index] = "fence_lookalikes"
        close = _ANGLE.search(text, index + 1, min(len(text), index + 1 + _TAG_SPAN))
        if close is not None and "\n" not in text[index + 1 : close.start()]:
            escaped[close.start()] = "fence_lookalikes"
    for match in _NFKC_ANGLE.finditer(text):
        escaped.setdefault(match.start(), "angle_lookalikes")
    if not escaped:
        return text
    out: list[str] = []
    position = 0
    for index in sorted(escaped):
        changes.add(escaped[index])
        out.append(text[position:index])
        out.append(encode(text[index]))
        position = index + 1
    out.append(text[position:])
    return "".join(out)


def neutralise(text: str) -> Neutralised:
    """``text`` with control and invisible characters removed and role markers and fence
    look-alikes defused (see the module docstring), and the kinds of change made."""
    changes: set[Change] = set()
    normal = _LINE_BREAK.sub("\n", text)
    if normal != text:
        changes.add("line_endings")
    normal = _remove_invisible(normal, changes)
    normal = _defuse_role_markers(normal, changes)
    normal = _defuse_fences(normal, changes)
    return Neutralised(normal, tuple(kind for kind in _CHANGE_ORDER if kind in changes))


# --------------------------------------------------------------------------------------------
# Scrubbed output
# --------------------------------------------------------------------------------------------

MIN_PLATFORM_SECRET: Final = 8
"""Platform secrets shorter than this are not looked for (they would match ordinary words)."""

PRIVATE_KEY: Final = "secret:private_key"
PLATFORM_SECRET: Final = "platform_secret"
SYSTEM_PROMPT: Final = "system_prompt"

_CONTEXT: Final = 64  # text kept before the cut, for look-behinds and word starts
_MAX_GAP: Final = 24  # most characters between two words of one system-prompt match
_UNBOUNDED: Final = sys.maxsize  # the end of a private key whose END line has not come yet

type _Found = tuple[int, int, str]  # start, end (in the match's string) and kind


@dataclass(frozen=True, slots=True)
class Redaction:
    """One redacted stretch: its kind (``secret:<type>``, ``platform_secret`` or
    ``system_prompt``) and how many characters it replaced."""

    kind: str
    length: int


@dataclass(frozen=True, slots=True)
class Scrubbed:
    """Scrubbed text and what was redacted from it, in order."""

    text: str
    redactions: tuple[Redaction, ...]


def marker(kind: str) -> str:
    """The text a redaction of ``kind`` leaves."""
    return f"[REDACTED:{kind}]"


def _probe(pattern: regex.Pattern[str]) -> regex.Pattern[str]:
    """``pattern`` made unable to match, so that a partial search for it finds the first
    position whose attempt reads up to the end of the text (and could end otherwise with more
    text): a plain partial search prefers any later complete match to an earlier partial one."""
    return regex.compile(f"(?:{pattern.pattern})(?!)", pattern.flags)


def _undecided(probe: regex.Pattern[str], text: str, pos: int) -> int:
    """The first position from ``pos`` where a match of ``probe``'s pattern may still come or
    change as ``text`` grows (``len(text)`` when there is none before the end)."""
    match = probe.search(text, pos, partial=True)
    return len(text) if match is None else match.start()


@dataclass(frozen=True, slots=True)
class _Rule:
    """A pattern, and how a match of it becomes a finding (None: not a secret after all)."""

    pattern: regex.Pattern[str]
    resolve: Callable[[regex.Match[str]], _Found | None]
    probe: regex.Pattern[str]


def _whole(
    kind: str, group: int | str = 0, *, when: Callable[[str], bool] | None = None
) -> Callable[[regex.Match[str]], _Found | None]:
    def resolve(match: regex.Match[str]) -> _Found | None:
        value = match.group(group)
        if when is not None and not when(value):
            return None
        return match.start(group), match.end(group), kind

    return resolve


def _has_digit(value: str) -> bool:
    return any(char.isdigit() for char in value)


_PLACEHOLDER: Final = regex.compile(
    r"(?-i:\$[A-Z_][A-Z0-9_]*+)|\$\{[^}]*+\}|\$\([^)]*+\)|\{\{.*\}\}|<[^<>]*+>|%(?:\([^)]*+\))?s"
    r"|\[REDACTED[^\]]*+\]|none|null|nil|true|false|undefined|empty|string|str|redacted|hidden",
    regex.IGNORECASE,
)


def _placeholder(value: str) -> bool:
    """A value that stands for a secret without being one (``$DB_PASSWORD``, ``<token>``,
    ``****``, ``null``)."""
    value = value.strip()
    return len(set(value)) <= 1 or _PLACEHOLDER.fullmatch(value) is not None


def _keyword(match: regex.Match[str]) -> _Found | None:
    """A value assigned to a secret-naming keyword: quoted, or bare where it cannot be prose
    (after ``=``, or after ``:`` when it ends the line or mixes letters and digits)."""
    group = next(name for name in ("dq", "sq", "bare") if match.group(name) is not None)
    value = match.group(group)
    if _placeholder(value):
        return None
    if (
        group == "bare"
        and match.group("sep") == ":"
        and match.group("eol") is None
        and not (_has_digit(value) and any(char.isalpha() for char in value))
    ):
        return None
    key = match.group("key").casefold()
    kind = "secret:password" if key.startswith(("pass", "pwd")) else "secret:keyword"
    return match.start(group), match.end(group), kind


def _url_password(match: regex.Match[str]) -> _Found | None:
    if _placeholder(match.group("value")):
        return None
    return match.start("value"), match.end("value"), "secret:basic_auth"


def _rule(
    pattern: str, resolve: Callable[[regex.Match[str]], _Found | None], flags: int = 0
) -> _Rule:
    compiled = regex.compile(pattern, flags)
    return _Rule(compiled, resolve, _probe(compiled))


_B64URL: Final = "A-Za-z0-9_-"
# The secret formats, after the rule classes of detect-secrets' plugins and gitleaks' rules:
# a fixed prefix, then a bounded run of the format's alphabet. Earlier rules win a tie.
_SECRET_RULES: Final[tuple[_Rule, ...]] = (
    _rule(
        r"(?<![A-Za-z0-9])(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])",
        _whole("secret:aws_access_key"),
    ),
    _rule(
        r"aws_?secret_?access_?key[\"']?[ \t]{0,8}+[:=][ \t]{0,8}+[\"']?"
        r"(?P<value>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])",
        _whole("secret:aws_secret_key", "value"),
        regex.IGNORECASE,
    ),
    _rule(
        r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,251}+|github_pat_[A-Za-z0-9_]{22,242}+)"
        r"(?![A-Za-z0-9_])",
        _whole("secret:github_token"),
    ),
    _rule(
        rf"(?<![{_B64URL}])gl(?:pat|dt|rt|ptt|ft)-[{_B64URL}]{{20,64}}+",
        _whole("secret:gitlab_token"),
    ),
    _rule(r"(?<![A-Za-z0-9-])xox[abposr]-[A-Za-z0-9-]{10,250}+", _whole("secret:slack_token")),
    _rule(
        r"https://hooks\.slack\.com/services/[A-Za-z0-9/_+-]{20,200}+",
        _whole("secret:slack_webhook"),
    ),
    _rule(
        r"(?<![A-Za-z0-9_])[rs]k_(?:live|test|prod)_[A-Za-z0-9]{10,247}+",
        _whole("secret:stripe_key"),
    ),
    _rule(rf"(?<![{_B64URL}])sk-ant-[{_B64URL}]{{20,256}}+", _whole("secret:anthropic_key")),
    _rule(
        rf"(?<![{_B64URL}])sk-(?:proj-|svcacct-|admin-)?[{_B64URL}]{{20,256}}+",
        _whole("secret:openai_key", when=_has_digit),
    ),
    _rule(
        rf"(?<![{_B64URL}])AIza[{_B64URL}]{{35}}(?![{_B64URL}])", _whole("secret:google_api_key")
    ),
    _rule(
        rf"(?<![{_B64URL}])SG\.[{_B64URL}]{{22}}\.[{_B64URL}]{{43}}(?![{_B64URL}])",
        _whole("secret:sendgrid_key"),
    ),
    _rule(r"(?<![A-Za-z0-9_])npm_[A-Za-z0-9]{36}(?![A-Za-z0-9])", _whole("secret:npm_token")),
    _rule(rf"pypi-AgEIcHlwaS5vcmc[{_B64URL}]{{50,1000}}+", _whole("secret:pypi_token")),
    _rule(r"(?<![A-Za-z0-9_])hf_[A-Za-z]{34}(?![A-Za-z0-9])", _whole("secret:huggingface_token")),
    _rule(
        rf"eyJ[{_B64URL}]{{8,1024}}+\.[{_B64URL}]{{4,4096}}+"
        rf"(?:\.[{_B64URL}]{{0,4096}}+){{1,3}}+",
        _whole("secret:jwt"),
    ),
    _rule(
        r"authorization[\"']?[ \t]{0,8}+[:=][ \t]{0,8}+[\"']?bearer[ \t]{1,8}+"
        r"(?P<value>[A-Za-z0-9._~+/-]{8,4096}+={0,2}+)",
        _whole("secret:bearer_token", "value"),
        regex.IGNORECASE,
    ),
    _rule(
        r"(?<![A-Za-z])bearer[ \t]{1,8}+(?P<value>[A-Za-z0-9._~+/-]{16,4096}+={0,2}+)",
        _whole("secret:bearer_token", "value", when=_has_digit),
        regex.IGNORECASE,
    ),
    _rule(
        r"authorization[\"']?[ \t]{0,8}+[:=][ \t]{0,8}+[\"']?basic[ \t]{1,8}+"
        r"(?P<value>[A-Za-z0-9+/]{8,1024}+={0,2}+)",
        _whole("secret:basic_auth", "value"),
        regex.IGNORECASE,
    ),
    # scheme://user:password@host: the password only (the match starts at "://").
    _rule(
        r"://[^:/?#@\s\"'<>]{1,256}+:(?P<value>[^@/?#\s\"'<>]{1,256}+)@",
        _url_password,
    ),
    # A keyword that names a secret, as the last part of a key (DB_PASSWORD, "api_key",
    # client_secret), then = : := or =>, then its value. Not after ":" (our own markers).
    _rule(
        r"(?P<key>(?<!:)(?:pass(?:word|wd|phrase)|pwd|secret(?:[_-]?key)?|token|api[_-]?key"
        r"|access[_-]?key|private[_-]?key|account[_-]?key)|(?<![:A-Za-z])pass)"
        r"[\"']?[ \t]{0,8}+(?P<sep>:=|=>|[:=])[ \t]{0,8}+"
        r"(?:\"(?P<dq>[^\"\n]{1,256}+)\"|'(?P<sq>[^'\n]{1,256}+)'"
        r"|(?P<bare>[^\s\"'`,;(){}\[\]<>$%&]{4,256}+)(?=[\s,;#&]|$)"
        # Whether the bare value ends its line (read here, so that streaming waits for it).
        r"(?:(?=(?P<eol>[ \t]{0,16}+(?:[\r\n#]|$))))?)",
        _keyword,
        regex.IGNORECASE,
    ),
)

_PEM_BEGIN: Final = regex.compile(r"-----BEGIN (?:[A-Z0-9]{1,16} ){0,3}PRIVATE KEY(?: BLOCK)?-----")
_PEM_END: Final = regex.compile(r"-----END (?:[A-Z0-9]{1,16} ){0,3}PRIVATE KEY(?: BLOCK)?-----")
_PEM_BEGIN_PROBE: Final = _probe(_PEM_BEGIN)
_PEM_END_PROBE: Final = _probe(_PEM_END)


def _encodings(secret: str) -> set[str]:
    """``secret`` as written, in hex, and the part of its base64 that only it decides, at each
    byte alignment (so it is found inside a longer encoded string too)."""
    raw = secret.encode()
    forms = {secret, raw.hex(), raw.hex().upper()}
    for encoder in (base64.b64encode, base64.urlsafe_b64encode):
        whole = encoder(raw).decode()
        forms |= {whole, whole.rstrip("=")}
        for lead in range(3):
            encoded = encoder(b"\0" * lead + raw).decode()
            forms.add(encoded[-(-8 * lead // 6) : 8 * (lead + len(raw)) // 6])
    return forms


def _platform_rule(secrets: Iterable[str]) -> _Rule | None:
    forms = {
        form
        for secret in secrets
        if len(secret) >= MIN_PLATFORM_SECRET
        for form in _encodings(secret)
    }
    if not forms:
        return None
    ordered = sorted(forms, key=lambda form: (-len(form), form))
    return _rule("|".join(regex.escape(form) for form in ordered), _whole(PLATFORM_SECRET))


_WORD: Final = regex.compile(r"(?<!\w)\w++")
_SENTENCE_END: Final = regex.compile(r"[.!?]++(?=\s|$)|\n")
_BULLET: Final = regex.compile(r"^\s*+(?:[-*+•]|\d{1,3}[.)]|#{1,6})\s++")


@dataclass(slots=True)
class _Node:
    children: dict[str, _Node] = field(default_factory=dict)
    terminal: bool = False


def _words(text: str) -> list[str]:
    return [word.casefold() for word in _WORD.findall(text)]


@dataclass(frozen=True, slots=True)
class _PromptIndex:
    """A trie of the word sequences to redact, and the length of the longest word in it: a
    longer word is none of them (case folding never shortens a word)."""

    root: _Node
    longest_word: int


def _prompt_index(
    prompt: str, *, min_sentence_words: int, min_run_words: int
) -> _PromptIndex | None:
    """Every run of ``min_run_words`` words of ``prompt`` and every shorter sentence of
    ``min_sentence_words`` words or more (a longer sentence is covered by its runs)."""
    root = _Node()

    def add(words: list[str]) -> None:
        node = root
        for word in words:
            node = node.children.setdefault(word, _Node())
        node.terminal = True

    words = _words(prompt)
    for start in range(len(words) - min_run_words + 1):
        add(words[start : start + min_run_words])
    for sentence in _SENTENCE_END.split(prompt):
        sentence_words = _words(_BULLET.sub("", sentence))
        if min_sentence_words <= len(sentence_words) < min_run_words:
            add(sentence_words)
    if not root.children:
        return None
    return _PromptIndex(root, max(len(word) for word in words))


class Scrubber:
    """Redacts secrets, the platform's ``secrets`` and text of ``system_prompt`` from model
    output (see the module docstring). Build one per conversation or per prompt; it is
    immutable and safe to share."""

    def __init__(
        self,
        secrets: Iterable[str] = (),
        system_prompt: str = "",
        min_sentence_words: int = 5,
        *,
        min_run_words: int = 12,
    ) -> None:
        if min_sentence_words < 1 or min_run_words < 2:
            raise ValueError("min_sentence_words must be >= 1 and min_run_words >= 2")
        platform = _platform_rule(secrets)
        self._rules: tuple[_Rule, ...] = (
            (platform, *_SECRET_RULES) if platform is not None else _SECRET_RULES
        )
        self._prompt = _prompt_index(
            system_prompt, min_sentence_words=min_sentence_words, min_run_words=min_run_words
        )

    def scrub(self, text: str) -> Scrubbed:
        """``text`` with every finding replaced by its marker, and the redactions made."""
        stream = self.stream()
        scrubbed = stream._take(text, final=True)
        return Scrubbed(scrubbed, stream.redactions)

    def stream(self) -> StreamScrubber:
        """A scrubber for one text that arrives in pieces."""
        return StreamScrubber(self)


@dataclass(slots=True)
class _Span:
    start: int
    end: int
    kind: str
    priority: int


@dataclass(slots=True)
class _Region:
    """Overlapping findings, redacted as one: the kind of the first, the end of the furthest
    (a private key still open counts as unbounded until its END line is seen)."""

    start: int
    end: int
    kind: str
    open_key: _Span | None = None

    def stop(self) -> int:
        return max(self.end, self.open_key.end) if self.open_key is not None else self.end

    def add(self, span: _Span) -> None:
        if span.end == _UNBOUNDED:
            self.open_key = span
        else:
            self.end = max(self.end, span.end)


class StreamScrubber:
    """:class:`Scrubber` over a text given in pieces: :meth:`feed` returns what is safe to
    emit so far, :meth:`finish` the rest. Whatever the pieces, what they return concatenates
    to ``scrubber.scrub(whole).text``.

    Positions are absolute offsets in the whole text; the buffer keeps the text from a little
    before the cut (what has been emitted) onwards."""

    def __init__(self, scrubber: Scrubber) -> None:
        self._rules = scrubber._rules
        self._prompt = scrubber._prompt
        self._buffer = ""
        self._base = 0  # offset of _buffer[0]
        self._cut = 0  # the text before it has been emitted
        self._resume = [0] * len(self._rules)  # where each rule's next match may start
        self._prompt_resume = 0
        self._key_resume = 0
        self._open_key: _Span | None = None
        self._key_scan = 0  # where the END line of the open key may start
        self._pending: list[_Span] = []  # findings decided but starting at or after the cut
        self._region: _Region | None = None  # a redaction started before the cut
        self._redactions: list[Redaction] = []
        self._finished = False

    @property
    def redactions(self) -> tuple[Redaction, ...]:
        """The redactions made in what has been emitted so far (all of them after
        :meth:`finish`)."""
        return tuple(self._redactions)

    def feed(self, delta: str) -> str:
        """Takes the next piece of text; returns the scrubbed text that is now decided."""
        return self._take(delta, final=False)

    def finish(self) -> str:
        """Ends the text; returns the rest of it, scrubbed."""
        return self._take("", final=True)

    def _take(self, delta: str, *, final: bool) -> str:
        if self._finished:
            raise RuntimeError("the stream has been finished")
        self._finished = final
        self._buffer += delta
        end = self._base + len(self._buffer)
        found: list[_Span] = []
        frontier = min(
            self._scan_keys(found, end, final),
            self._scan_rules(found, end, final),
            self._scan_prompt(found, end, final),
        )
        out = self._render(found, end if final else frontier)
        keep = min(self._cut, self._key_scan if self._open_key else self._cut) - _CONTEXT
        if keep > self._base:
            self._buffer = self._buffer[keep - self._base :]
            self._base = keep
        return out

    def _scan_keys(self, found: list[_Span], end: int, final: bool) -> int:
        """Private keys: a BEGIN line opens one, the next END line (or the end) closes it."""
        base, text = self._base, self._buffer
        while True:
            if self._open_key is not None:
                start = self._key_scan - base
                limit = len(text) if final else _undecided(_PEM_END_PROBE, text, start)
                close = _PEM_END.search(text, start)
                if close is not None and close.start() < limit:
                    self._open_key.end = base + close.end()
                elif final:
                    self._open_key.end = end
                else:
                    self._key_scan = base + limit
                    return end
                self._key_resume = self._open_key.end
                self._open_key = None
                continue
            start = max(self._cut, self._key_resume) - base
            limit = len(text) if final else _undecided(_PEM_BEGIN_PROBE, text, start)
            begin = _PEM_BEGIN.search(text, start)
            if begin is None or begin.start() >= limit:
                self._key_resume = max(self._key_resume, base + limit)
                return base + limit
            self._open_key = _Span(base + begin.start(), _UNBOUNDED, PRIVATE_KEY, 0)
            self._key_scan = base + begin.end()
            found.append(self._open_key)

    def _scan_rules(self, found: list[_Span], end: int, final: bool) -> int:
        """Each rule's matches that no more text can change; the least of the positions from
        which a rule's match may still come is the frontier."""
        base, text = self._base, self._buffer
        frontier = end
        for index, rule in enumerate(self._rules):
            start = max(self._cut, self._resume[index]) - base
            limit = len(text) if final else _undecided(rule.probe, text, start)
            frontier = min(frontier, base + limit)
            for match in rule.pattern.finditer(text, start):
                if match.start() >= limit:
                    break
                self._resume[index] = base + match.end()
                finding = rule.resolve(match)
                if finding is not None:
                    found.append(_Span(base + finding[0], base + finding[1], finding[2], 1 + index))
            # No match starts between the last one and the limit, now or later.
            self._resume[index] = max(self._resume[index], base + limit)
        return frontier

    def _scan_prompt(self, found: list[_Span], end: int, final: bool) -> int:
        """Runs of system-prompt words, from each word on; the first word from which a run may
        still be growing (or the last word, which may still be growing itself) is the
        frontier."""
        if self._prompt is None:
            return end
        base = self._base
        start = max(self._cut, self._prompt_resume) - base
        words = [
            (base + m.start(), base + m.end(), m.group().casefold())
            for m in _WORD.finditer(self._buffer, start)
        ]
        priority = 1 + len(self._rules)
        frontier = end
        for first in range(len(words)):
            node: _Node | None = self._prompt.root
            runs: list[_Span] = []
            undecided = False
            for index in range(first, len(words)):
                word_start, word_end, word = words[index]
                growing = not final and word_end == end
                if growing and word_end - word_start <= self._prompt.longest_word:
                    undecided = True
                    break
                node = node.children.get(word) if node is not None else None
                if node is None:
                    break
                if node.terminal:
                    runs.append(_Span(words[first][0], word_end, SYSTEM_PROMPT, priority))
                if not node.children:
                    break
                if index + 1 == len(words):
                    undecided = not final and end - word_end <= _MAX_GAP
                elif words[index + 1][0] - word_end > _MAX_GAP:
                    break
            if undecided:
                frontier = words[first][0]
                break
            found.extend(runs)
        self._prompt_resume = frontier
        return frontier

    def _render(self, found: list[_Span], cut: int) -> str:
        """Emits the text from the last cut to ``cut``: decided findings become markers."""
        spans = sorted([*self._pending, *found], key=lambda span: (span.start, span.priority))
        self._pending = [span for span in spans if span.start >= cut]
        out: list[str] = []
        position = self._cut
        for span in spans:
            if span.start >= cut:
                break
            if self._region is not None:
                if span.start < self._region.stop():
                    self._region.add(span)
                    continue
                position = self._close(self._region)
            out.append(self._text(position, span.start))
            out.append(marker(span.kind))
            self._region = _Region(span.start, span.start, span.kind)
            self._region.add(span)
            position = span.start
        if self._region is not None:
            position = self._close(self._region) if self._region.stop() <= cut else cut
        out.append(self._text(position, cut))
        self._cut = cut
        return "".join(out)

    def _close(self, region: _Region) -> int:
        stop = region.stop()
        self._redactions.append(Redaction(region.kind, stop - region.start))
        self._region = None
        return stop

    def _text(self, start: int, stop: int) -> str:
        if stop <= start:
            return ""
        return self._buffer[start - self._base : stop - self._base]
