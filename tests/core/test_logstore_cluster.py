"""The log store's tables on one server and on a ClickHouse cluster: the single-server DDL as
before; on a cluster, ON CLUSTER everywhere, a ReplicatedMergeTree local table and a Distributed
table of the same columns over it; every statement parsed by the real ClickHouse engine (the
embedded chDB's ``formatQuery``); the store's start-up and inserts in cluster mode; and the
cluster setting refused on the embedded chDB."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pydantic
import pytest

from core.errors import ClickHouseUnavailable
from core.logstore.schema import (
    INGESTED_INDEX_SQL,
    TABLE_SETTINGS,
    add_index_sql,
    added_columns_sql,
    create_table_sql,
    distributed_table_sql,
    local_table,
    modify_settings_sql,
    schema_sql,
    settings_sql,
)
from core.logstore.store import COLUMNS, INSERT_SETTINGS, LogStore
from core.settings import Settings
from tests.conftest import chdb_path

CLUSTER = "soc_cluster"


def single_statements() -> list[str]:
    """Every statement the store can send to one server."""
    return [
        *schema_sql("d", "logs", retention_days=90),
        *schema_sql("d", "logs", retention_days=0, table_settings=()),
        *(statement for _, statement in added_columns_sql("d", "logs")),
        add_index_sql("d", "logs"),
        modify_settings_sql("d", "logs"),
    ]


def cluster_statements() -> list[str]:
    """Every statement the store can send to a cluster."""
    local = local_table("logs")
    return [
        *schema_sql("d", "logs", retention_days=90, cluster=CLUSTER),
        *schema_sql("d", "logs", retention_days=0, table_settings=(), cluster=CLUSTER),
        *(statement for _, statement in added_columns_sql("d", local, cluster=CLUSTER)),
        *(statement for _, statement in added_columns_sql("d", "logs", cluster=CLUSTER)),
        add_index_sql("d", local, cluster=CLUSTER),
        modify_settings_sql("d", local, cluster=CLUSTER),
    ]


@pytest.fixture
async def engine() -> AsyncIterator[LogStore]:
    """A store on the test process's one chDB, used only to parse SQL (no database made)."""
    settings = Settings(data_dir=Path("/nonexistent"), chdb_path=chdb_path())
    store = LogStore.from_settings(settings)
    try:
        yield store
    finally:
        await store.close()


async def formatted(engine: LogStore, sql: str) -> str:
    """``sql`` as ClickHouse's parser reads it and writes it back (nothing is executed)."""
    result = await engine.query("SELECT formatQuery({q:String})", {"q": sql})
    return str(result.result_rows[0][0])


def columns_of(formatted_create: str) -> dict[str, str]:
    """Column name → its definition (type, DEFAULT or MATERIALIZED expression) in a formatted
    ``CREATE TABLE``."""
    body = formatted_create.split("\n(\n", 1)[1].split("\n)\n", 1)[0]
    found = {}
    for line in body.splitlines():
        line = line.strip().removesuffix(",")
        if line.startswith("`"):
            name, definition = line[1:].split("` ", 1)
            found[name] = definition
    return found


# -- one server: the statements of before --------------------------------------------------


def test_single_server_ddl_is_a_merge_tree_table_with_no_cluster_clause() -> None:
    database_sql, table_sql = schema_sql("d", "logs", retention_days=90)
    assert database_sql == "CREATE DATABASE IF NOT EXISTS `d`"
    assert table_sql == create_table_sql("d", "logs", retention_days=90)
    assert table_sql.startswith("CREATE TABLE IF NOT EXISTS `d`.`logs` (\n  `id` UUID,")
    assert ") ENGINE = MergeTree\nPARTITION BY toDate(timestamp)\n" in table_sql
    assert "Replicated" not in table_sql
    assert all("ON CLUSTER" not in statement for statement in single_statements())
    assert add_index_sql("d", "logs") == f"ALTER TABLE `d`.`logs` ADD {INGESTED_INDEX_SQL}"
    assert modify_settings_sql("d", "logs") == (
        f"ALTER TABLE `d`.`logs` MODIFY SETTING {settings_sql(TABLE_SETTINGS)}"
    )
    assert added_columns_sql("d", "logs")[0] == (
        "source_bytes",
        "ALTER TABLE `d`.`logs` ADD COLUMN IF NOT EXISTS `source_bytes` Nullable(UInt64)",
    )


# -- a cluster: the statements -------------------------------------------------------------


def test_every_cluster_statement_runs_on_the_whole_cluster() -> None:
    statements = cluster_statements()
    assert statements
    for statement in statements:
        head = statement.split("(", 1)[0]
        assert f" ON CLUSTER `{CLUSTER}`" in head, statement[:120]


def test_the_local_table_is_replicated_per_shard_and_replica() -> None:
    _, local, distributed = schema_sql("d", "logs", retention_days=90, cluster=CLUSTER)
    assert local.startswith(f"CREATE TABLE IF NOT EXISTS `d`.`logs_local` ON CLUSTER `{CLUSTER}` (")
    assert (
        ") ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/logs_local', "
        "'{replica}')\n"
    ) in local
    # Everything but the name and the engine as on one server.
    single = create_table_sql("d", "logs_local", retention_days=90)
    assert local.split("ENGINE = ", 1)[0] == single.split("ENGINE = ", 1)[0].replace(
        "`logs_local` (", f"`logs_local` ON CLUSTER `{CLUSTER}` ("
    )
    assert (
        local.split("\n", 1)[1].split(") ENGINE")[0]
        == single.split("\n", 1)[1].split(") ENGINE")[0]
    )
    assert local.split("PARTITION BY", 1)[1] == single.split("PARTITION BY", 1)[1]
    assert distributed == distributed_table_sql("d", "logs", cluster=CLUSTER)
    assert distributed.startswith(f"CREATE TABLE IF NOT EXISTS `d`.`logs` ON CLUSTER `{CLUSTER}`")
    assert distributed.endswith(
        f") ENGINE = Distributed(`{CLUSTER}`, `d`, `logs_local`, cityHash64(id))"
    )


def test_an_index_and_table_settings_go_to_the_local_table_only() -> None:
    assert add_index_sql("d", "logs_local", cluster=CLUSTER) == (
        f"ALTER TABLE `d`.`logs_local` ON CLUSTER `{CLUSTER}` ADD INDEX IF NOT EXISTS "
        "ix_ingested_at ingested_at TYPE minmax GRANULARITY 1"
    )
    distributed = distributed_table_sql("d", "logs", cluster=CLUSTER)
    assert "INDEX" not in distributed
    assert "SETTINGS" not in distributed


# -- every statement through ClickHouse's own parser ---------------------------------------


@pytest.mark.parametrize("cluster", [None, CLUSTER])
async def test_every_statement_parses_in_clickhouse(engine: LogStore, cluster: str | None) -> None:
    statements = cluster_statements() if cluster else single_statements()
    for statement in statements:
        text = await formatted(engine, statement)
        assert await formatted(engine, text) == text  # what it read is what it writes back
        assert ("ON CLUSTER" in text) == (cluster is not None), statement[:120]


async def test_a_malformed_cluster_statement_is_refused_by_the_parser(engine: LogStore) -> None:
    broken = distributed_table_sql("d", "logs", cluster=CLUSTER).replace(f" `{CLUSTER}` (", " (")
    with pytest.raises(ClickHouseUnavailable):
        await formatted(engine, broken)


async def test_the_parsed_cluster_tables_have_the_same_columns(engine: LogStore) -> None:
    _, local_sql, distributed_sql = schema_sql("d", "logs", retention_days=90, cluster=CLUSTER)
    local = await formatted(engine, local_sql)
    distributed = await formatted(engine, distributed_sql)
    assert f"CREATE TABLE IF NOT EXISTS d.logs_local ON CLUSTER {CLUSTER}\n" in local
    assert (
        "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/logs_local', "
        "'{replica}')\n"
    ) in local
    assert "TTL toDateTime(ingested_at) + toIntervalDay(90)" in local
    assert "fsync_after_insert = 1" in local
    assert f"ENGINE = Distributed({CLUSTER}, d, logs_local, cityHash64(id))" in distributed
    local_columns, distributed_columns = columns_of(local), columns_of(distributed)
    # Types, DEFAULT and MATERIALIZED expressions alike: reads of a promoted column through the
    # Distributed table work, and inserts leave it to the shards.
    assert distributed_columns == local_columns
    assert set(COLUMNS) <= set(local_columns)
    assert local_columns["x_Channel"] == "String MATERIALIZED fields['Channel']"
    assert local_columns["doc"].startswith("String DEFAULT toJSONString(")
    single = await formatted(engine, create_table_sql("d", "logs_local", retention_days=90))
    assert columns_of(single) == local_columns


# -- the store on a cluster ----------------------------------------------------------------


class ClusterNode:
    """Stands in for a node of a ClickHouse cluster, which cannot run here: answers the store's
    look-ups in the system tables from what it is given, and records what the store sends."""

    def __init__(
        self,
        *,
        settings: set[str],
        columns: dict[str, set[str]],
        tables: dict[str, tuple[str, str]],
    ) -> None:
        self.settings, self.columns, self.tables = settings, columns, tables
        self.commands: list[str] = []
        self.inserts: list[tuple[str, dict[str, Any]]] = []

    def query(
        self, sql: str, parameters: dict[str, Any] | None = None, settings: Any = None
    ) -> SimpleNamespace:
        values = parameters or {}
        if re.search(r"FROM system\.(merge_tree_)?settings ", sql):
            return SimpleNamespace(result_rows=[[n] for n in values["n"] if n in self.settings])
        if "FROM system.columns" in sql:
            return SimpleNamespace(result_rows=[[c] for c in self.columns.get(values["t"], ())])
        if "FROM system.tables" in sql:
            wanted = {values["t"], values["p"]}
            rows = [[n, e, q] for n, (e, q) in self.tables.items() if n in wanted]
            return SimpleNamespace(result_rows=rows)
        raise AssertionError(f"unexpected query: {sql}")

    def command(self, sql: str) -> None:
        self.commands.append(sql)

    def raw_insert(
        self, table: str, columns: list[str], data: Any, fmt: str, settings: dict[str, Any]
    ) -> None:
        self.inserts.append((table, settings))


def cluster_store(node: ClusterNode) -> LogStore:
    return LogStore(lambda: node, database="d", retention_days=90, workers=1, cluster=CLUSTER)


async def test_start_on_a_cluster_makes_the_tables_and_adds_only_what_is_missing() -> None:
    all_columns = {name for name, _ in added_columns_sql("d", "logs")}
    node = ClusterNode(
        settings={
            *(name for name, _ in TABLE_SETTINGS),
            "distributed_foreground_insert",
            "insert_distributed_sync",
        },
        # The local tables predate the promoted x_AccessMask; the Distributed one predates doc.
        columns={
            "logs_local": all_columns - {"x_AccessMask"},
            "logs": all_columns - {"doc"},
        },
        # Made before the ingestion index and the table settings.
        tables={
            "logs_local": ("ReplicatedMergeTree", "CREATE TABLE d.logs_local (...)"),
            "logs": ("Distributed", "CREATE TABLE d.logs (...)"),
        },
    )
    store = cluster_store(node)
    try:
        await store.start()
        await store.insert_block(b"")
    finally:
        await store.close()
    local = "logs_local"
    assert node.commands == [
        *schema_sql("d", "logs", retention_days=90, cluster=CLUSTER),
        dict(added_columns_sql("d", local, cluster=CLUSTER))["x_AccessMask"],
        dict(added_columns_sql("d", "logs", cluster=CLUSTER))["doc"],
        add_index_sql("d", local, cluster=CLUSTER),
        modify_settings_sql("d", local, cluster=CLUSTER),
    ]
    # Reads and inserts name the Distributed table; an insert returns once the shards have it.
    assert store.table == "`d`.`logs`"
    assert node.inserts == [
        ("`d`.`logs`", INSERT_SETTINGS | {"distributed_foreground_insert": 1}),
    ]


async def test_a_server_before_the_rename_gets_the_older_setting() -> None:
    node = ClusterNode(
        settings={"insert_distributed_sync"},
        columns={},
        tables={
            "logs_local": ("ReplicatedMergeTree", "... ix_ingested_at ..."),
            "logs": ("Distributed", "..."),
        },
    )
    store = cluster_store(node)
    try:
        await store.start()
        await store.insert_block(b"")
    finally:
        await store.close()
    assert node.inserts == [("`d`.`logs`", INSERT_SETTINGS | {"insert_distributed_sync": 1})]
    assert not any("MODIFY SETTING" in command for command in node.commands)


async def test_a_single_server_table_is_not_taken_for_the_distributed_one() -> None:
    node = ClusterNode(
        settings=set(),
        columns={},
        tables={
            "logs_local": ("ReplicatedMergeTree", "... ix_ingested_at ..."),
            "logs": ("MergeTree", "... ix_ingested_at ..."),
        },
    )
    store = cluster_store(node)
    try:
        with pytest.raises(ClickHouseUnavailable) as caught:
            await store.start()
        # Nothing goes to the one node's MergeTree table afterwards either.
        with pytest.raises(ClickHouseUnavailable) as refused:
            await store.insert_block(b"")
    finally:
        await store.close()
    assert caught.value.code == "AURORA-5032"
    assert "is a MergeTree table, not the Distributed table" in str(caught.value.detail)
    assert refused.value.detail == caught.value.detail
    assert not any(command.startswith("ALTER") for command in node.commands)
    assert node.inserts == []


# -- the setting ---------------------------------------------------------------------------


def test_the_cluster_setting_is_refused_with_the_embedded_chdb(tmp_path: Path) -> None:
    # The configuration is refused as a whole: `aurora` says so instead of starting.
    with pytest.raises(pydantic.ValidationError, match="needs AURORA_CLICKHOUSE_URL"):
        Settings(data_dir=tmp_path, chdb_path=chdb_path(), clickhouse_cluster=CLUSTER)


def test_the_cluster_setting_reaches_a_server_store(tmp_path: Path) -> None:
    with_cluster = Settings(
        data_dir=tmp_path,
        clickhouse_url="http://default:secret@127.0.0.1:1",
        clickhouse_cluster=CLUSTER,
    )
    without = Settings(data_dir=tmp_path, clickhouse_url="http://127.0.0.1:1")
    assert LogStore.from_settings(with_cluster).cluster == CLUSTER
    assert LogStore.from_settings(without).cluster is None


@pytest.mark.parametrize("name", ["", "a-b", "c` DROP", "1c", "x" * 64])
def test_a_cluster_name_that_is_not_an_identifier_is_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(pydantic.ValidationError, match="clickhouse_cluster"):
        Settings(data_dir=tmp_path, clickhouse_cluster=name)
