"""Ingest bodies to insert-ready rows (:mod:`tools.logs.rows`)."""

from __future__ import annotations

import os
import uuid

from clickhouse_connect.datatypes.registry import get_from_name
from clickhouse_connect.driver.insert import InsertContext

from tools.logs.rows import IdKind, parse_rows, random_ids, warm

CONTEXT = InsertContext("t", ["id"], [get_from_name("UUID")], data=[[]], column_oriented=True)


def test_random_ids_are_version_4_uuids_as_uuid4_makes_them() -> None:
    """Their text is a version 4 UUID's, and their column the bytes clickhouse-connect's own
    UUID writer sends for those UUIDs."""
    texts, column = random_ids(2000)
    assert len(set(texts)) == 2000
    written = bytearray()
    get_from_name("UUID").write_column_data([uuid.UUID(t) for t in texts], written, CONTEXT)
    assert column == written
    for text in texts:
        made = uuid.UUID(text)
        assert str(made) == text
        assert made.version == 4
        assert made.variant == uuid.RFC_4122
    assert random_ids(0) == ([], b"")
    untold, column = random_ids(3, texts=False)
    assert untold == []
    assert len(column) == 48


def test_random_ids_past_the_asked_count_are_counted_not_handed_back() -> None:
    """Content ids are every one handed back, whatever the count: the caller looks them up."""
    body = b'{"message": "a"}\n{"message": "b"}\n{"message": "c"}\n'
    cases: list[tuple[IdKind, int | None, int]] = [
        ("random", None, 3),
        ("random", 3, 3),
        ("random", 2, 0),
        ("content", 1, 3),
    ]
    for kind, up_to, handed in cases:
        parsed = parse_rows(
            body,
            content_type=None,
            source="s",
            format="json",
            layout="json_lines",
            ids=kind,
            ids_up_to=up_to,
        )
        assert (parsed.count, len(parsed.ids)) == (3, handed)
        assert len(parsed.blocks) == 1


def test_a_body_gets_random_ids_of_its_events_in_order() -> None:
    body = b'{"message": "a"}\n{"message": "b"}\nnot json\n'
    parsed = parse_rows(body, content_type=None, source="s", format="json", layout="json_lines")
    assert len(parsed.ids) == 2
    assert all(uuid.UUID(text).version == 4 for text in parsed.ids)
    assert [r.line for r in parsed.rejected] == [3]
    assert len(parsed.blocks) == 1


def test_warm_loads_the_encoder_and_answers_the_process_id() -> None:
    assert warm() == os.getpid()
