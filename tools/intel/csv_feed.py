"""Import CSV feeds: one indicator per row, columns named by a :class:`CsvMapping`."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.errors import ValidationFailed
from core.schemas import Severity
from tools.intel._feed import checked, commit, parse_timestamp
from tools.intel.models import ImportReport, Indicator, IndicatorType
from tools.intel.normalise import indicator_type
from tools.intel.store import IntelStore

_COLUMN_FIELDS = (
    "value",
    "type",
    "confidence",
    "severity",
    "tags",
    "description",
    "first_seen",
    "last_seen",
    "valid_until",
    "reference",
    "techniques",
    "threat_actors",
    "malware_families",
)


class CsvMapping(BaseModel):
    """Which CSV columns carry what. ``value`` is required; every other column is optional.

    The type comes from the ``type`` column (values such as ``ip``, ``ipv4``, ``domain``,
    ``sha256``, ``FileHash-MD5``: see ``tools.intel.normalise.TYPE_ALIASES``) or, for a file of
    one kind, from ``fixed_type``: exactly one of the two. List columns (tags, techniques,
    actors, families) are split on ``list_separator``. ``columns`` names the columns of a
    file without a header row (abuse.ch-style feeds put theirs in a comment). Lines starting
    with ``comment_prefix`` are ignored.
    """

    model_config = ConfigDict(frozen=True)

    value: str
    type: str | None = None
    fixed_type: IndicatorType | None = None
    confidence: str | None = None
    severity: str | None = None
    tags: str | None = None
    description: str | None = None
    first_seen: str | None = None
    last_seen: str | None = None
    valid_until: str | None = None
    reference: str | None = None
    techniques: str | None = None
    threat_actors: str | None = None
    malware_families: str | None = None
    extra_tags: frozenset[str] = frozenset()
    """Tags added to every row (``tlp:green``, the feed's name)."""
    default_confidence: Annotated[int, Field(ge=0, le=100)] = 50
    list_separator: Annotated[str, Field(min_length=1)] = ";"
    delimiter: Annotated[str, Field(min_length=1, max_length=1)] = ","
    comment_prefix: str | None = "#"
    columns: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _one_type_source(self) -> Self:
        if (self.type is None) == (self.fixed_type is None):
            raise ValueError("give exactly one of 'type' (a column) and 'fixed_type'")
        return self

    def used_columns(self) -> dict[str, str]:
        """Field name -> column name, for every column this mapping reads."""
        return {
            name: column for name in _COLUMN_FIELDS if (column := getattr(self, name)) is not None
        }


def _lines(handle: Iterable[str], prefix: str | None, numbers: list[int]) -> Iterator[str]:
    """The lines of ``handle`` less comments; ``numbers`` gets each one's line in the file."""
    for number, line in enumerate(handle, start=1):
        if prefix and line.lstrip().startswith(prefix):
            continue
        numbers.append(number)
        yield line


def import_csv(
    store: IntelStore, path: Path | str, mapping: CsvMapping, *, source: str
) -> ImportReport:
    """Import a CSV feed into ``store`` under ``source``, one indicator per row.

    Rows with an empty or invalid value, an unknown type, or an unreadable confidence,
    severity or timestamp are skipped with their line number. Raises ValidationFailed,
    writing nothing, when the file cannot be read or lacks a mapped column; the import is
    one transaction.
    """
    file = Path(path)
    report = ImportReport(source=source)
    ready: list[Indicator] = []
    numbers: list[int] = []
    try:
        with file.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(
                _lines(handle, mapping.comment_prefix, numbers),
                fieldnames=list(mapping.columns) if mapping.columns else None,
                delimiter=mapping.delimiter,
            )
            header = [name.strip() for name in reader.fieldnames or []]
            reader.fieldnames = header
            missing = sorted(set(mapping.used_columns().values()) - set(header))
            if missing:
                raise ValidationFailed(
                    {"feed": file.name, "reason": f"missing columns: {', '.join(missing)}"}
                )
            for row in reader:
                # line_num counts the lines csv has read, comments excluded: map it back.
                where = f"line {numbers[reader.line_num - 1]}"
                try:
                    ready.append(_row_indicator(row, mapping, source))
                except ValueError as err:
                    report.skip(where, str(err))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ValidationFailed(
            {"feed": file.name, "reason": f"cannot read CSV: {type(err).__name__}"}
        ) from err
    commit(store, report, ready)
    return report


def _row_indicator(row: dict[str, str | None], mapping: CsvMapping, source: str) -> Indicator:
    def cell(column: str | None) -> str:
        value = row.get(column) if column else None
        return value.strip() if isinstance(value, str) else ""

    def items(column: str | None) -> frozenset[str]:
        return frozenset(
            part.strip() for part in cell(column).split(mapping.list_separator) if part.strip()
        )

    value = cell(mapping.value)
    if not value:
        raise ValueError("empty value")
    if mapping.fixed_type is not None:
        kind = mapping.fixed_type
    elif not (type_name := cell(mapping.type)):
        raise ValueError("empty type")
    else:
        kind = indicator_type(type_name)
    confidence = mapping.default_confidence
    if text := cell(mapping.confidence):
        try:
            confidence = int(float(text))
        except ValueError as err:
            raise ValueError(f"confidence {text[:20]!r} is not a number") from err
        if not 0 <= confidence <= 100:
            raise ValueError(f"confidence {confidence} is outside 0..100")
    severity = None
    if text := cell(mapping.severity):
        try:
            severity = Severity(text.lower())
        except ValueError as err:
            raise ValueError(f"severity {text[:20]!r} is not one of the platform's") from err
    return checked(
        Indicator(
            type=kind,
            value=value,
            source=source,
            confidence=confidence,
            severity=severity,
            tags=items(mapping.tags) | mapping.extra_tags,
            description=cell(mapping.description) or None,
            first_seen=parse_timestamp(cell(mapping.first_seen)),
            last_seen=parse_timestamp(cell(mapping.last_seen)),
            valid_until=parse_timestamp(cell(mapping.valid_until)),
            reference=cell(mapping.reference) or None,
            techniques=frozenset(t.upper() for t in items(mapping.techniques)),
            threat_actors=items(mapping.threat_actors),
            malware_families=items(mapping.malware_families),
        )
    )
