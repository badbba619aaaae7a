"""IOC extraction eval: ioc-finder's published test cases, scored per indicator kind.

The dataset (``ioc/ioc_finder/ioc_finder_test_cases.json`` in the shared data) holds 132 texts,
each with the indicators ioc-finder is expected to find, under ioc-finder's type names. Only the
kinds AuroraSOC extracts are scored (:data:`KINDS`). Two reading rules keep it fair to every
extractor:

- a case that restricts ``included_ioc_types`` is scored on those kinds only;
- a case that turns off one of ioc-finder's default parsing options (``parse_domain_from_url``
  and the like) tests that configuration rather than extraction, so it is left out.

Each case is also scored *defanged* (``http`` → ``hxxp``, ``.`` → ``[.]``, ``@`` → ``[@]``) on
the kinds that defanging touches (IPv4, domains, URLs, e-mail addresses): analysts paste
defanged reports, and this variant does not depend on which library wrote the expectations.

Those cases come from ioc-finder's own tests, so they favour the library the extractor wraps.
The held-out figure is the one on ``evals/cases/ioc_reports.jsonl``: passages written in the
notation of public threat reports (CISA, Unit 42, Talos, Mandiant, The DFIR Report, abuse.ch and
other publishers; each case names its report), with the indicators a reader would take from
them, refanged and normalised, and passages with none (to count false positives). Every kind is
scored on every report case. A case lists what the report lists; the loader adds what
:func:`tools.ioc.extract_iocs` reports beside it by contract: the host of a URL (a domain or an
IP address) and the domain of an e-mail address.

Usage::

    python -m evals.ioc_extraction             # score AuroraSOC's extract_iocs
    python -m evals.ioc_extraction --compare   # and ioc-finder, iocsearcher, iocextract
    python -m evals.ioc_extraction --json report.json
    python -m evals.ioc_extraction --report-cases other.jsonl   # another report case set

The shared cases are skipped (with a note) when the shared data is absent; the report cases
are part of the project. The libraries compared are optional
(``pip install -e '.[ioc-eval]'``); one that is not installed is reported as such and skipped.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evals.data import shared_data_root
from tools.ioc import Ioc, extract_iocs, normalise_ioc

KINDS: tuple[str, ...] = (
    "ipv4",
    "ipv6",
    "domain",
    "url",
    "email",
    "md5",
    "sha1",
    "sha256",
    "sha512",
    "cve",
    "registry_key",
    "attack_technique",
)
"""The indicator kinds scored: AuroraSOC's types, with IPs and hashes split by subtype."""

FINDER_KINDS: dict[str, str] = {
    "ipv4s": "ipv4",
    "ipv6s": "ipv6",
    "domains": "domain",
    "urls": "url",
    "email_addresses": "email",
    "md5s": "md5",
    "sha1s": "sha1",
    "sha256s": "sha256",
    "sha512s": "sha512",
    "cves": "cve",
    "registry_key_paths": "registry_key",
    "attack_techniques": "attack_technique",
}
"""ioc-finder's type names (the dataset's) mapped onto :data:`KINDS`."""

DEFANGED_KINDS: frozenset[str] = frozenset({"ipv4", "domain", "url", "email"})
"""The kinds scored on the defanged variant of each case."""

CASES_RELATIVE_PATH = Path("ioc/ioc_finder/ioc_finder_test_cases.json")

REPORT_CASES_PATH = Path(__file__).resolve().parent / "cases" / "ioc_reports.jsonl"
"""The held-out case set, written from public threat reports (part of the project)."""

Extractor = Callable[[str], dict[str, set[str]]]
"""Text in, raw indicator values by kind out (canonicalised by the scorer)."""


@dataclass(frozen=True)
class Case:
    """One scored text: canonical expected values for each kind in ``scored``."""

    id: str
    text: str
    expected: Mapping[str, frozenset[str]]
    scored: frozenset[str]


@dataclass
class Tally:
    """True positives, false positives and false negatives of one kind (or of all)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, other: Tally) -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn

    @property
    def precision(self) -> float | None:
        """None when nothing was predicted."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        """None when nothing was expected."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def f1(self) -> float | None:
        """None when nothing was expected nor predicted; 0.0 when either side is empty."""
        if not self.tp + self.fp + self.fn:
            return None
        return 2 * self.tp / (2 * self.tp + self.fp + self.fn)

    def as_dict(self) -> dict[str, Any]:
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
        }


@dataclass
class Report:
    """Scores of one extractor on one variant of the cases."""

    name: str
    variant: str
    supported: frozenset[str]
    per_kind: dict[str, Tally] = field(default_factory=dict)
    misses: list[tuple[str, str, str]] = field(default_factory=list)
    """(case id, kind, value) of every false negative, for reading the failures."""
    extras: list[tuple[str, str, str]] = field(default_factory=list)
    """(case id, kind, value) of every false positive."""

    @property
    def overall(self) -> Tally:
        """Micro-averaged over every scored kind, unsupported kinds counting as misses."""
        total = Tally()
        for tally in self.per_kind.values():
            total.add(tally)
        return total

    @property
    def macro_f1(self) -> float | None:
        """The mean F1 of the kinds that were expected or predicted at least once."""
        scores = [f1 for tally in self.per_kind.values() if (f1 := tally.f1) is not None]
        return sum(scores) / len(scores) if scores else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "extractor": self.name,
            "variant": self.variant,
            "per_kind": {
                kind: {**tally.as_dict(), "supported": kind in self.supported}
                for kind, tally in self.per_kind.items()
            },
            "overall": self.overall.as_dict(),
            "macro_f1": self.macro_f1,
        }


def default_cases_path() -> Path:
    """The dataset in the shared data: ``$AURORA_SHARED_DATA`` or ``../shared/data``."""
    root = shared_data_root()
    return root / CASES_RELATIVE_PATH


def canonical(kind: str, value: str) -> str:
    """The form two extractors' values are compared in: case-folded where case means nothing,
    IPs in ``ipaddress`` form, URLs with only scheme and authority lower-cased."""
    value = value.strip()
    if kind in ("ipv4", "ipv6"):
        try:
            return str(ipaddress.ip_address(value.strip("[]")))
        except ValueError:
            return value.lower()
    if kind == "url":
        match = re.match(r"(?i)^([a-z][a-z0-9+.-]*://)?([^/?#]*)(.*)$", value, re.DOTALL)
        if match:
            return (match[1] or "").lower() + match[2].lower() + match[3]
        return value
    return value.lower()


def _flatten(values: Any) -> list[str]:
    # ioc-finder groups ATT&CK ids by matrix: {"enterprise": [...], "pre_attack": [...]}.
    if isinstance(values, Mapping):
        return [item for group in values.values() for item in _flatten(group)]
    return [str(item) for item in values]


def load_cases(path: Path) -> tuple[list[Case], int]:
    """The scored cases of the dataset at ``path``, and how many were left out (see module)."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    cases: list[Case] = []
    left_out = 0
    for item in raw:
        options = dict(item.get("find_iocs_kwargs") or {})
        included = options.pop("included_ioc_types", None)
        if options:
            left_out += 1
            continue
        scored = (
            frozenset(FINDER_KINDS[name] for name in included if name in FINDER_KINDS)
            if included is not None
            else frozenset(KINDS)
        )
        if not scored:
            continue
        expected: dict[str, set[str]] = {kind: set() for kind in scored}
        for name, values in item["expected"].items():
            kind = FINDER_KINDS.get(name)
            if kind in scored:
                expected[kind].update(canonical(kind, value) for value in _flatten(values))
        cases.append(
            Case(
                id=str(item["id"]),
                text=str(item["text"]),
                expected={kind: frozenset(values) for kind, values in expected.items()},
                scored=scored,
            )
        )
    return cases, left_out


def defang(text: str) -> str:
    """The way analysts defang a report: ``hxxp``, ``[.]`` between word characters, ``[@]``."""
    text = re.sub(r"(?i)\bhttp(s?)://", r"hxxp\1://", text)
    text = re.sub(r"(?<=\w)\.(?=\w)", "[.]", text)
    return text.replace("@", "[@]")


def score(name: str, extractor: Extractor, cases: Iterable[Case], *, defanged: bool) -> Report:
    """Run ``extractor`` on every case (defanged or not) and tally it per kind."""
    supported = SUPPORTED.get(name, frozenset(KINDS))
    report = Report(name=name, variant="defanged" if defanged else "plain", supported=supported)
    for case in cases:
        kinds = case.scored & DEFANGED_KINDS if defanged else case.scored
        if not kinds:
            continue
        found = extractor(defang(case.text) if defanged else case.text)
        for kind in sorted(kinds):
            predicted = {canonical(kind, value) for value in found.get(kind, ())}
            expected = case.expected[kind]
            tally = report.per_kind.setdefault(kind, Tally())
            tally.tp += len(predicted & expected)
            tally.fp += len(predicted - expected)
            tally.fn += len(expected - predicted)
            report.misses.extend((case.id, kind, value) for value in sorted(expected - predicted))
            report.extras.extend((case.id, kind, value) for value in sorted(predicted - expected))
    report.per_kind = {kind: report.per_kind[kind] for kind in KINDS if kind in report.per_kind}
    return report


def aurora_extractor(text: str) -> dict[str, set[str]]:
    """AuroraSOC's :func:`tools.ioc.extract_iocs`, by kind."""
    found: dict[str, set[str]] = {}
    for ioc in extract_iocs(text):
        found.setdefault(_kind(ioc), set()).add(ioc.value)
    return found


# -- report cases (held out) -----------------------------------------------------------------


@dataclass(frozen=True)
class ReportSource:
    """The public report a case was written from."""

    publisher: str
    title: str
    url: str


@dataclass(frozen=True)
class IocCase:
    """One passage written in a report's notation, and the indicators it holds by kind
    (canonical values; the hosts of URLs and domains of e-mail addresses included)."""

    id: str
    source: ReportSource
    text: str
    expected: Mapping[str, frozenset[str]]


@dataclass
class CaseScore:
    """True positives, false positives and false negatives of one case, per kind."""

    case_id: str
    per_kind: dict[str, Tally] = field(default_factory=dict)
    misses: list[tuple[str, str]] = field(default_factory=list)
    """(kind, value) of every expected indicator not extracted."""
    extras: list[tuple[str, str]] = field(default_factory=list)
    """(kind, value) of every extracted indicator not expected."""

    @property
    def overall(self) -> Tally:
        total = Tally()
        for tally in self.per_kind.values():
            total.add(tally)
        return total


def _kind(ioc: Ioc) -> str:
    return ioc.subtype if ioc.type in ("ip", "hash") and ioc.subtype else ioc.type


def _implied(ioc: Ioc) -> Ioc | None:
    """The host of a URL or the domain of an e-mail address, as its own indicator."""
    if ioc.type == "url":
        host = re.sub(r"^[a-z][a-z0-9+.-]*://", "", ioc.value).split("/", 1)[0]
        host = re.split(r"[?#]", host, maxsplit=1)[0].rpartition("@")[2]
        host = host[1 : host.index("]")] if host.startswith("[") else host.partition(":")[0]
        kind = "ip" if re.fullmatch(r"[\d.]+|[0-9a-f:.]*:[0-9a-f:.]*", host) else "domain"
        return normalise_ioc(kind, host)
    if ioc.type == "email":
        return normalise_ioc("domain", ioc.value.rpartition("@")[2])
    return None


def _report_case(item: Mapping[str, Any]) -> IocCase:
    source = item["source"]
    expected: dict[str, set[str]] = {kind: set() for kind in KINDS}
    for written in item["expected"]:
        ioc = normalise_ioc(written["type"], written["value"])
        if ioc.value != written["value"]:
            raise ValueError(
                f"case {item['id']}: {written['value']!r} is not normalised ({ioc.value!r})"
            )
        for found in (ioc, _implied(ioc)):
            if found is not None:
                expected[_kind(found)].add(canonical(_kind(found), found.value))
    return IocCase(
        id=str(item["id"]),
        source=ReportSource(
            publisher=str(source["publisher"]), title=str(source["title"]), url=str(source["url"])
        ),
        text=str(item["text"]),
        expected={kind: frozenset(values) for kind, values in expected.items()},
    )


def load_report_cases(path: Path | None = None) -> list[IocCase]:
    """The report cases at ``path`` (default :data:`REPORT_CASES_PATH`), one JSON object a
    line: ``{id, source: {publisher, title, url}, text, expected: [{type, value}]}``.

    Raises ValueError for a duplicate id or an expected value that is not written refanged and
    normalised, and :class:`~core.errors.ValidationFailed` for one that is not an indicator.
    """
    lines = (path or REPORT_CASES_PATH).read_text(encoding="utf-8").splitlines()
    cases = [_report_case(json.loads(line)) for line in lines if line.strip()]
    seen: set[str] = set()
    for case in cases:
        if case.id in seen:
            raise ValueError(f"duplicate case id {case.id!r}")
        seen.add(case.id)
    return cases


def score_case(case: IocCase, extracted: Iterable[Ioc] | Mapping[str, Iterable[str]]) -> CaseScore:
    """Tally ``extracted`` (indicators from :func:`tools.ioc.extract_iocs`, or raw values by
    kind as an :data:`Extractor` returns them) against ``case`` on every kind."""
    found: dict[str, set[str]] = {}
    if isinstance(extracted, Mapping):
        for kind, values in extracted.items():
            found.setdefault(kind, set()).update(canonical(kind, value) for value in values)
    else:
        for ioc in extracted:
            found.setdefault(_kind(ioc), set()).add(canonical(_kind(ioc), ioc.value))
    result = CaseScore(case_id=case.id)
    for kind in KINDS:
        predicted = found.get(kind, set())
        expected = case.expected.get(kind, frozenset())
        result.per_kind[kind] = Tally(
            tp=len(predicted & expected),
            fp=len(predicted - expected),
            fn=len(expected - predicted),
        )
        result.misses.extend((kind, value) for value in sorted(expected - predicted))
        result.extras.extend((kind, value) for value in sorted(predicted - expected))
    return result


def score_reports(name: str, extractor: Extractor, cases: Iterable[IocCase]) -> Report:
    """Run ``extractor`` on every report case and tally it per kind (variant ``reports``)."""
    supported = SUPPORTED.get(name, frozenset(KINDS))
    report = Report(name=name, variant="reports", supported=supported)
    for case in cases:
        result = score_case(case, extractor(case.text))
        for kind, tally in result.per_kind.items():
            report.per_kind.setdefault(kind, Tally()).add(tally)
        report.misses.extend((case.id, kind, value) for kind, value in result.misses)
        report.extras.extend((case.id, kind, value) for kind, value in result.extras)
    # Kinds no case holds and no extractor reported say nothing: leave them out of the table.
    report.per_kind = {
        kind: tally for kind, tally in report.per_kind.items() if tally.tp + tally.fp + tally.fn
    }
    return report


def _ioc_finder() -> Extractor:
    from ioc_finder import find_iocs  # type: ignore[import-untyped,import-not-found,unused-ignore]

    # Its defaults parse nine types; ask for every type scored here.
    included = list(FINDER_KINDS)

    def extract(text: str) -> dict[str, set[str]]:
        result = find_iocs(text, included_ioc_types=included)
        return {
            kind: set(_flatten(result.get(name) or []))
            for name, kind in FINDER_KINDS.items()
            if result.get(name)
        }

    return extract


_IOCSEARCHER_KINDS = {
    "ip4": "ipv4",
    "ip6": "ipv6",
    "fqdn": "domain",
    "url": "url",
    "email": "email",
    "md5": "md5",
    "sha1": "sha1",
    "sha256": "sha256",
    "cve": "cve",
    "registry": "registry_key",
    "ttp": "attack_technique",
}


def _iocsearcher() -> Extractor:
    from iocsearcher.searcher import Searcher  # type: ignore[import-untyped,import-not-found,unused-ignore]

    searcher = Searcher()

    def extract(text: str) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for ioc in searcher.search_data(text):
            kind = _IOCSEARCHER_KINDS.get(ioc.name)
            if kind:
                found.setdefault(kind, set()).add(str(ioc.value))
        return found

    return extract


def _iocextract() -> Extractor:
    import iocextract  # type: ignore[import-untyped,import-not-found,unused-ignore]

    def extract(text: str) -> dict[str, set[str]]:
        return {
            "ipv4": set(iocextract.extract_ipv4s(text, refang=True)),
            "ipv6": set(iocextract.extract_ipv6s(text)),
            "url": set(iocextract.extract_urls(text, refang=True)),
            "email": set(iocextract.extract_emails(text, refang=True)),
            "md5": set(iocextract.extract_md5_hashes(text)),
            "sha1": set(iocextract.extract_sha1_hashes(text)),
            "sha256": set(iocextract.extract_sha256_hashes(text)),
            "sha512": set(iocextract.extract_sha512_hashes(text)),
        }

    return extract


LIBRARIES: dict[str, Callable[[], Extractor]] = {
    "ioc-finder": _ioc_finder,
    "iocsearcher": _iocsearcher,
    "iocextract": _iocextract,
}
"""The IOC libraries compared, each a factory (the import happens on use)."""

SUPPORTED: dict[str, frozenset[str]] = {
    "ioc-finder": frozenset(KINDS),
    "iocsearcher": frozenset(_IOCSEARCHER_KINDS.values()),
    "iocextract": frozenset({"ipv4", "ipv6", "url", "email", "md5", "sha1", "sha256", "sha512"}),
    "aurorasoc": frozenset(KINDS),
}
"""The kinds each extractor has a notion of; the others count as misses."""


def evaluate(
    cases: list[Case], extractors: Mapping[str, Extractor]
) -> dict[str, tuple[Report, Report]]:
    """The plain and defanged reports of each extractor."""
    return {
        name: (
            score(name, extractor, cases, defanged=False),
            score(name, extractor, cases, defanged=True),
        )
        for name, extractor in extractors.items()
    }


def _fmt(value: float | None) -> str:
    return "   —" if value is None else f"{value:.3f}"


def render(report: Report) -> str:
    """A per-kind table of one report, with the micro (overall) and macro averages."""
    lines = [
        f"{report.name} ({report.variant})",
        f"  {'kind':<17}{'tp':>5}{'fp':>5}{'fn':>5}  {'prec':>6}  {'recall':>6}  {'f1':>6}",
    ]
    rows = [*report.per_kind.items(), ("overall", report.overall)]
    for kind, tally in rows:
        note = "" if kind == "overall" or kind in report.supported else "  (unsupported)"
        lines.append(
            f"  {kind:<17}{tally.tp:>5}{tally.fp:>5}{tally.fn:>5}"
            f"  {_fmt(tally.precision):>6}  {_fmt(tally.recall):>6}  {_fmt(tally.f1):>6}{note}"
        )
    lines.append(f"  {'macro F1':<17}{'':>15}  {'':>6}  {'':>6}  {_fmt(report.macro_f1):>6}")
    return "\n".join(lines)


def _print_failures(report: Report) -> None:
    for case_id, kind, value in report.misses:
        print(f"  miss  [{report.variant}] {case_id}: {kind} {value!r}")
    for case_id, kind, value in report.extras:
        print(f"  extra [{report.variant}] {case_id}: {kind} {value!r}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m evals.ioc_extraction``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--cases", type=Path, default=None, help="ioc_finder_test_cases.json")
    parser.add_argument("--report-cases", type=Path, default=None, help="report cases (JSON lines)")
    parser.add_argument("--compare", action="store_true", help="also score the IOC libraries")
    parser.add_argument("--json", type=Path, default=None, help="write the scores here")
    parser.add_argument("--misses", action="store_true", help="list every miss and extra")
    args = parser.parse_args(argv)

    path: Path = args.cases or default_cases_path()
    if args.cases is not None and not path.is_file():
        print(f"dataset not found: {path} (set AURORA_SHARED_DATA or --cases)", file=sys.stderr)
        return 2
    report_path: Path = args.report_cases or REPORT_CASES_PATH
    if not report_path.is_file():
        print(f"report cases not found: {report_path}", file=sys.stderr)
        return 2

    extractors: dict[str, Extractor] = {}
    if args.compare:
        for name, factory in LIBRARIES.items():
            try:
                extractors[name] = factory()
            except ImportError as err:
                print(f"{name}: not installed ({err}); skipped\n")
    extractors["aurorasoc"] = aurora_extractor
    payload: dict[str, Any] = {}

    if path.is_file():
        cases, left_out = load_cases(path)
        print(f"ioc-finder's cases (in-sample): {len(cases)} scored, {left_out} left out\n")
        results = evaluate(cases, extractors)
        for plain, defanged in results.values():
            print(render(plain), end="\n\n")
            print(render(defanged), end="\n\n")
            if args.misses:
                _print_failures(plain)
                _print_failures(defanged)
                print()
        payload |= {
            "dataset": CASES_RELATIVE_PATH.as_posix(),
            "cases": len(cases),
            "left_out": left_out,
            "reports": [report.as_dict() for pair in results.values() for report in pair],
        }
    else:
        print(f"ioc-finder's cases skipped: {path} not found (set AURORA_SHARED_DATA)\n")

    report_cases = load_report_cases(report_path)
    negatives = sum(1 for case in report_cases if not any(case.expected.values()))
    print(
        f"report cases (held out): {len(report_cases)} passages, {negatives} without indicators\n"
    )
    held_out = [
        score_reports(name, extractor, report_cases) for name, extractor in extractors.items()
    ]
    for report in held_out:
        print(render(report), end="\n\n")
        if args.misses:
            _print_failures(report)
            print()
    payload["held_out"] = {
        "dataset": report_path.name,
        "cases": len(report_cases),
        "negatives": negatives,
        "reports": [report.as_dict() for report in held_out],
    }
    if args.json:
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
