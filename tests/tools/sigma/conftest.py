"""A real log table in embedded chDB for the Sigma tests, and rule-building helpers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import clickhouse_connect
import pytest
import yaml
from clickhouse_connect.driver.client import Client

from core.logstore.schema import FIELDS, META_COLUMNS, create_table_sql
from tests.conftest import chdb_path

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
COLUMNS: tuple[str, ...] = tuple(
    [name for name, _ in META_COLUMNS[:2]]
    + [f.column for f in FIELDS]
    + [name for name, _ in META_COLUMNS[2:]]
)
INT_COLUMNS = frozenset(f.column for f in FIELDS if f.kind == "int")


class LogTable:
    """The schema's log table in a database of its own; rows are dicts of column → value."""

    def __init__(self, client: Client, database: str) -> None:
        self.client = client
        self.database = database
        self.quoted = f"`{database}`.`logs`"

    def insert(self, rows: list[dict[str, Any]]) -> None:
        self.client.command(f"TRUNCATE TABLE {self.quoted}")
        data = [[self._value(column, row) for column in COLUMNS] for row in rows]
        self.client.insert("logs", data, column_names=list(COLUMNS), database=self.database)

    @staticmethod
    def _value(column: str, row: dict[str, Any]) -> Any:
        if column in row:
            return row[column]
        if column == "id":
            return uuid.uuid4()
        if column in ("timestamp", "ingested_at"):
            return T0
        if column == "fields":
            return {}
        if column in INT_COLUMNS:
            return None
        if column == "format":
            return "windows"
        return ""

    def matching(self, condition: str) -> list[str]:
        """``raw`` of every row the condition selects, sorted."""
        sql = f"SELECT raw FROM {self.quoted} WHERE ({condition}) ORDER BY raw"  # noqa: S608
        result = self.client.query(sql)
        return [row[0] for row in result.result_rows]


@pytest.fixture(scope="module")
def log_table() -> Iterator[LogTable]:
    client = clickhouse_connect.get_client(interface="chdb", path=str(chdb_path()))
    database = f"sigma_{uuid.uuid4().hex[:12]}"
    client.command(f"CREATE DATABASE `{database}`")
    client.command(create_table_sql(database, "logs", retention_days=0))
    try:
        yield LogTable(client, database)
    finally:
        client.command(f"DROP DATABASE IF EXISTS `{database}`")
        client.close()


def rule_text(
    detection: dict[str, Any],
    *,
    logsource: dict[str, str] | None = None,
    **meta: Any,
) -> str:
    """A Sigma rule as YAML text around ``detection``."""
    body: dict[str, Any] = {
        "title": meta.pop("title", "Test rule"),
        "id": meta.pop("id", "5d8fd9da-6916-45ef-8d4d-3fa9d19d1a64"),
        "status": meta.pop("status", "test"),
        "level": meta.pop("level", "high"),
        "logsource": logsource or {"product": "windows", "category": "process_creation"},
        "detection": detection,
        **meta,
    }
    return yaml.safe_dump(body, sort_keys=False, allow_unicode=True)
