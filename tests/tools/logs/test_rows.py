"""Ingest bodies to insert-ready rows (:mod:`tools.logs.rows`)."""

from __future__ import annotations

import os
import uuid

from tools.logs.rows import parse_rows, random_ids, warm


def test_random_ids_are_version_4_uuids_as_uuid4_makes_them() -> None:
    ids = random_ids(2000)
    assert len(ids) == 2000
    assert len({text for text, _ in ids}) == 2000
    for text, number in ids:
        made = uuid.UUID(text)
        assert made.int == number
        assert str(made) == text
        assert made.version == 4
        assert made.variant == uuid.RFC_4122
    assert random_ids(0) == []


def test_a_body_gets_random_ids_of_its_events_in_order() -> None:
    body = b'{"message": "a"}\n{"message": "b"}\nnot json\n'
    parsed = parse_rows(body, content_type=None, source="s", format="json", layout="json_lines")
    assert len(parsed.ids) == 2
    assert all(uuid.UUID(text).version == 4 for text in parsed.ids)
    assert [r.line for r in parsed.rejected] == [3]
    assert len(parsed.blocks) == 1


def test_warm_loads_the_encoder_and_answers_the_process_id() -> None:
    assert warm() == os.getpid()
