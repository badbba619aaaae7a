"""The log store's one table: normalised fields with ECS-style names, the original event, and its
source.

Every field has an ECS name (what the API, the query language and the Sigma pipeline speak:
``process.command_line``), a column (the name with dots as underscores: ``process_command_line``)
and a ClickHouse type; numbers are typed so they compare as numbers. A field an event lacks is
the column's default (empty string, or NULL for numbers). Whatever the normalised fields do not
cover stays searchable in ``fields``: every leaf of the original event, flattened (``EventData``
names of Windows events under their own names, nested keys joined with dots), as text.

On one server the table is a ``MergeTree`` table. On a cluster (:func:`schema_sql` with a
cluster name) the rows live in a ``ReplicatedMergeTree`` table of the same structure on every
shard and replica (:func:`local_table`), and the table of that name is a ``Distributed`` table
over them: what reads and writes it does not change.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

type Kind = Literal["string", "low_cardinality", "int", "datetime"]


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    """The ECS-style name."""
    kind: Kind
    description: str
    bits: int = 32
    """Width of an integer field (UInt16 for ports, UInt32 for ids)."""

    @property
    def column(self) -> str:
        return self.name.replace(".", "_")

    @property
    def clickhouse_type(self) -> str:
        if self.kind == "int":
            return f"Nullable(UInt{self.bits})"
        if self.kind == "low_cardinality":
            return "LowCardinality(String)"
        if self.kind == "datetime":
            return "DateTime64(3, 'UTC')"
        return "String"


FIELDS: Final[tuple[Field, ...]] = (
    Field("timestamp", "datetime", "when the event happened (UTC, millisecond precision)"),
    Field("event.code", "low_cardinality", "the event's code: Windows EventID, Zeek log, ..."),
    Field("event.category", "low_cardinality", "process, network, dns, file, registry, ..."),
    Field("event.action", "low_cardinality", "what happened: process_creation, alert, ..."),
    Field("event.outcome", "low_cardinality", "success, failure or unknown"),
    Field("event.provider", "low_cardinality", "Windows channel / provider, syslog app, ..."),
    Field("event.severity", "int", "the source's own severity (0 lowest)", bits=8),
    Field("host.name", "low_cardinality", "the host the event is about"),
    Field("host.ip", "string", "its address"),
    Field("user.name", "string", "the account (without domain)"),
    Field("user.domain", "string", "the account's domain"),
    Field("process.name", "string", "image file name, e.g. powershell.exe"),
    Field("process.executable", "string", "full image path"),
    Field("process.command_line", "string", "the full command line"),
    Field("process.pid", "int", "process id"),
    Field("process.parent.name", "string", "the parent's image file name"),
    Field("process.parent.executable", "string", "the parent's full image path"),
    Field("process.parent.command_line", "string", "the parent's command line"),
    Field("process.parent.pid", "int", "the parent's process id"),
    Field("process.hash.sha256", "string", "SHA-256 of the image"),
    Field("source.ip", "string", "source address (IPv4 or IPv6 text)"),
    Field("source.port", "int", "source port", bits=16),
    Field("destination.ip", "string", "destination address"),
    Field("destination.port", "int", "destination port", bits=16),
    Field("network.transport", "low_cardinality", "tcp, udp, icmp, ..."),
    Field("network.protocol", "low_cardinality", "application protocol: http, dns, tls, ..."),
    Field("dns.question.name", "string", "the name looked up"),
    Field("url.full", "string", "the full URL"),
    Field("http.request.method", "low_cardinality", "GET, POST, ..."),
    Field("http.response.status_code", "int", "HTTP status", bits=16),
    Field("user_agent.original", "string", "the User-Agent header"),
    Field("file.path", "string", "full path of the file the event is about"),
    Field("file.name", "string", "its file name"),
    Field("file.hash.sha256", "string", "its SHA-256"),
    Field("file.hash.md5", "string", "its MD5"),
    Field("registry.path", "string", "registry key (and value) path"),
    Field("registry.value", "string", "the data written"),
    Field("rule.name", "string", "the rule or signature that produced the event (IDS, AV)"),
    Field("message", "string", "the human-readable message (syslog, CEF name, ...)"),
    # Flow and sensor telemetry (NetFlow/IPFIX, Zeek conn.log, Suricata flow): what volume
    # detectors read. Added after the first release: a table made before them gets them
    # (:func:`added_columns_sql`).
    Field("source.bytes", "int", "bytes the source sent (flows)", bits=64),
    Field("destination.bytes", "int", "bytes the destination sent back (flows)", bits=64),
    Field("source.packets", "int", "packets the source sent (flows)", bits=64),
    Field("destination.packets", "int", "packets the destination sent back (flows)", bits=64),
    Field("event.duration", "int", "how long the flow or event lasted, in nanoseconds", bits=64),
    Field("observer.name", "low_cardinality", "the sensor or exporter that recorded the event"),
)
"""The normalised fields, in column order."""

BY_NAME: Final[dict[str, Field]] = {f.name: f for f in FIELDS}

META_COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("id", "UUID"),
    ("ingested_at", "DateTime64(3, 'UTC')"),
    ("source", "LowCardinality(String)"),
    ("format", "LowCardinality(String)"),
    ("raw", "String"),
    ("fields", "Map(LowCardinality(String), String)"),
)
"""Columns besides the normalised fields: the event id, when it was ingested, its source (the
ingesting client's label, or the parser's), the parser that read it, the original event, and its
flattened leaves."""

PROMOTED_FIELDS: Final[tuple[str, ...]] = (
    "Channel",
    "OriginalFileName",
    "ScriptBlockText",
    "ImageLoaded",
    "Provider_Name",
    "Description",
    "Product",
    "Company",
    "Hashes",
    "Initiated",
    "ImagePath",
    "Data",
    "ServiceName",
    "ServiceFileName",
    "SourceImage",
    "TargetImage",
    "IntegrityLevel",
    "ObjectName",
    "ObjectType",
    "User",
    "Payload",
    "DestinationHostname",
    "ProcessName",
    "GrantedAccess",
    "CallTrace",
    "PipeName",
    "RelativeTargetName",
    "ShareName",
    "TargetUserName",
    "SubjectUserName",
    "Signed",
    "Signature",
    "LogonType",
    "ContextInfo",
    "FileName",
    "AccessMask",
    "Image",
    "ParentImage",
)
"""Original field names that detection rules test often and no normalised column holds (the
most frequent in the SigmaHQ corpus's Windows rules, plus ``Channel``, and the image paths an
analyst searches by: ``Image:*\\powershell.exe`` cannot be answered from
``process.executable``, which the Windows mapping fills from other fields too): each gets a
MATERIALIZED column (``x_<Name>``), filled from ``fields`` at insert, so a condition on it reads
one narrow column instead of the whole ``fields`` map."""


DOC_COLUMN: Final = "doc"
"""The event's normalised fields again, as one JSON object (ECS names, empty ones left out), so
that reading whole events back (a page of search results, a rule's matches) reads a handful of
columns instead of forty: ClickHouse pays per column read, and a page of 100 events scattered
over a day costs about half as much this way. The ingest path writes it beside the columns from
the same values; rows written without it (a table made before it existed, an ``INSERT`` that
leaves it out) get it from :func:`doc_expression`."""


def doc_expression() -> str:
    """SQL computing :data:`DOC_COLUMN` from the normalised columns: the ``DEFAULT`` of the
    column (numbers come out as text there; readers take both)."""
    pairs = []
    for f in FIELDS:
        if f.kind == "datetime":
            continue
        value = f"ifNull(toString(`{f.column}`), '')" if f.kind == "int" else f"`{f.column}`"
        pairs.append(f"'{f.name}', {value}")
    return f"toJSONString(mapFilter((k, v) -> v != '', map({', '.join(pairs)})))"


INGESTED_INDEX: Final = "ix_ingested_at"
_INGESTED_INDEX_DEFINITION: Final = f"{INGESTED_INDEX} ingested_at TYPE minmax GRANULARITY 1"
INGESTED_INDEX_SQL: Final = f"INDEX {_INGESTED_INDEX_DEFINITION}"
"""A skip index of each granule's ingestion times: a question about what arrived lately
(``ingested_at > t``, the network scheduler's look for late telemetry) reads the granules
written since ``t``, not the whole ``ingested_at`` column of every partition."""


def promoted_column(name: str) -> str:
    """The MATERIALIZED column of a promoted original field."""
    return f"x_{name}"


LATER_FIELDS: Final[tuple[str, ...]] = (
    "source.bytes",
    "destination.bytes",
    "source.packets",
    "destination.packets",
    "event.duration",
    "observer.name",
)
"""Normalised fields that came after the first release (a table made before them gets them)."""


def added_columns_sql(
    database: str, table: str, *, cluster: str | None = None
) -> list[tuple[str, str]]:
    """(column, ``ALTER TABLE`` statement) adding each column that came after the first
    release (the later fields, :data:`DOC_COLUMN`, the promoted columns) to a table made
    before it (idempotent; existing parts compute it on read until merged). On a cluster the
    statements run on every node; the local table and the Distributed table over it each need
    them (the local one first: the Distributed table must not name a column its shards lack)."""
    alter = f"ALTER TABLE `{database}`.`{table}`{on_cluster(cluster)} ADD COLUMN IF NOT EXISTS"
    return [
        *(
            (
                BY_NAME[name].column,
                f"{alter} `{BY_NAME[name].column}` {BY_NAME[name].clickhouse_type}",
            )
            for name in LATER_FIELDS
        ),
        (DOC_COLUMN, f"{alter} `{DOC_COLUMN}` String DEFAULT {doc_expression()}"),
        *(
            (
                promoted_column(name),
                f"{alter} `{promoted_column(name)}` String MATERIALIZED fields['{name}']",
            )
            for name in PROMOTED_FIELDS
        ),
    ]


FORMATS: Final[tuple[str, ...]] = (
    "windows",
    "zeek",
    "suricata",
    "netflow",
    "syslog",
    "cef",
    "json",
)


@dataclass(slots=True)
class LogEvent:
    """One parsed event, ready to store. ``values`` maps ECS names of :data:`FIELDS` (not
    ``timestamp``) to str or int values; absent means empty."""

    timestamp: datetime
    """Timezone-aware."""
    format: str
    source: str
    raw: str
    """The original event: its JSON text, or the original line."""
    values: dict[str, str | int]
    fields: dict[str, str]
    """Every leaf of the original event, flattened, as text."""


GRANULE_BYTES: Final = 1024 * 1024
"""The table's ``index_granularity_bytes`` (set when it is created)."""

PREWARM_SETTING: Final = "prewarm_mark_cache"
"""A MergeTree setting of recent releases (the embedded chDB has it): the marks of every part
(where each granule of each column starts) are loaded into memory when the store opens and when
an insert or a merge writes a part, not by the first search that reads it (some 15 ms a part and
column otherwise; 10 MB for 5M events)."""
WIDE_PART_ROWS: Final = 20_000
"""Parts of fewer rows are written Compact (see :data:`TABLE_SETTINGS`)."""
FORCED_MERGE_AGE: Final = 300
"""Seconds after its last insert that a partition is merged into one part."""
TABLE_SETTINGS: Final[tuple[tuple[str, str], ...]] = (
    (PREWARM_SETTING, "1"),
    # A part's files, fewer: an insert of a 10,000-event body wrote about 450 files (each
    # created, compressed and fsynced on its own; creating them was a third of the insert's
    # time), 190 with these three. A String column in one stream, its lengths inline, not in a
    # file of their own (the `with_size_stream` of recent releases); no sparse variant of a
    # mostly empty column (two more files each); a column empty in the whole insert not
    # written at all (it reads as empty). Searches read the same or faster; 5% less disk.
    ("string_serialization_version", "'single_stream'"),
    ("ratio_of_defaults_for_sparse_serialization", "1"),
    ("skip_empty_columns_on_insert", "1"),
    ("serialization_info_version", "'with_missing_columns'"),
    # An insert of fewer than 20,000 events is written as a Compact part, its columns in one
    # file: a Wide part's 190 files, each created and fsynced, made the gateway's work an
    # ingested event about a third more (27 against 20 µs). Its merges, with 20,000 rows and
    # 10 MiB, are Wide parts again, which searches read 5-25% faster (a column's granules in
    # a file of their own). A partition that takes no insert for FORCED_MERGE_AGE seconds (a
    # past day; a store at rest) is merged into one part, so no Compact part stays where the
    # merge selector would leave it; only whole partitions, and only up to the engine's
    # largest merge (max_bytes_to_merge_at_max_space_in_pool), so today's, which keeps
    # taking inserts, is merged as usual.
    ("min_rows_for_wide_part", str(WIDE_PART_ROWS)),
    ("min_age_to_force_merge_on_partition_only", "1"),
    ("min_age_to_force_merge_seconds", str(FORCED_MERGE_AGE)),
)
"""The table's settings beyond ClickHouse's defaults (some of newer releases), ``(name,
value)``: a table gets those its server has (:func:`usable_settings`), one made before them too
(``ALTER TABLE ... MODIFY SETTING``)."""
_NEEDS: Final = {
    "serialization_info_version": "skip_empty_columns_on_insert",
    # Forced merges of ranges within a partition would merge today's big part again and
    # again: only with the partition-wide kind.
    "min_age_to_force_merge_seconds": "min_age_to_force_merge_on_partition_only",
}
"""A setting whose value in :data:`TABLE_SETTINGS` only the releases having another accept."""


def usable_settings(known: Collection[str]) -> tuple[tuple[str, str], ...]:
    """Those of :data:`TABLE_SETTINGS` a server whose MergeTree settings are ``known`` takes."""
    return tuple(
        (name, value)
        for name, value in TABLE_SETTINGS
        if name in known and _NEEDS.get(name, name) in known
    )


def settings_sql(settings: Iterable[tuple[str, str]]) -> str:
    """``name = value, ...`` of ``settings``."""
    return ", ".join(f"{name} = {value}" for name, value in settings)


HOUR_KEY: Final = "toStartOfHour(timestamp)"
SORTING_KEY: Final = f"{HOUR_KEY}, host_name, timestamp"
"""The table's order: by hour, then host, then time (time-and-host queries read few marks)."""


def time_bounds(
    start: datetime | None, end: datetime | None, *, end_inclusive: bool = False
) -> tuple[list[str], dict[str, Any]]:
    """The conditions of events in ``[start, end)`` (``[start, end]`` when ``end_inclusive``; a
    bound that is None is open) and their parameters (UTC; a naive bound is taken as UTC), with
    the same bounds on the sorting key's hour. The engine does not derive those from the
    timestamp's: without them a part's primary index is searched on the timestamp (its third
    column) alone, and a query over an hour of a day's part reads the whole day's filter
    columns to find it."""
    conditions: list[str] = []
    parameters: dict[str, Any] = {}
    for bound, name, time_op in (
        (start, "start", ">="),
        (end, "end", "<=" if end_inclusive else "<"),
    ):
        if bound is None:
            continue
        moment = bound if bound.tzinfo is None else bound.astimezone(UTC).replace(tzinfo=None)
        hour_op = time_op[0] + "="  # the hour of the bound itself is always in
        conditions.append(f"timestamp {time_op} {{{name}:DateTime64(3)}}")
        conditions.append(f"{HOUR_KEY} {hour_op} {{{name}_hour:DateTime64(3)}}")
        parameters[name] = moment
        parameters[f"{name}_hour"] = moment.replace(minute=0, second=0, microsecond=0)
    return conditions, parameters


def in_key_order(direction: Literal["ASC", "DESC"]) -> str:
    """``ORDER BY`` for events by (timestamp, id) in ``direction``, spelled with the sorting key's
    first column: the same order (the hour is monotonic in the timestamp), but the engine can
    then read the parts in key order and stop once a ``LIMIT`` is filled, instead of reading the
    whole range and sorting it."""
    return f"{HOUR_KEY} {direction}, timestamp {direction}, id {direction}"


def on_cluster(cluster: str | None) -> str:
    """The ``ON CLUSTER`` clause that runs a DDL statement on every node of ``cluster`` (through
    ClickHouse Keeper's DDL queue); nothing on a single server."""
    return f" ON CLUSTER `{cluster}`" if cluster else ""


def local_table(table: str) -> str:
    """On a cluster, the name of the table holding ``table``'s rows on each shard; ``table``
    itself is the Distributed table over them."""
    return f"{table}_local"


SHARDING_KEY: Final = "cityHash64(id)"
"""How the Distributed table spreads rows over the shards. By the event id (random): a noisy
host's events spread over every shard instead of filling one, as ``rand()`` would too; but
unlike ``rand()`` the same rows always go to the same shard, so a block sent again after a
failed acknowledgement reaches the same replicas, whose insert deduplication can drop it, and
a lookup by id could be sent to one shard (``optimize_skip_unused_shards``). Reads are
correct with any key: the Distributed table reads every shard."""


def _column_definitions() -> list[str]:
    """The table's columns, in order: the same on a single server's table, a cluster's local
    tables and the Distributed table over them."""
    columns = [f"`{name}` {kind}" for name, kind in META_COLUMNS[:2]]
    columns += [f"`{f.column}` {f.clickhouse_type}" for f in FIELDS]
    columns += [f"`{name}` {kind}" for name, kind in META_COLUMNS[2:]]
    columns.append(f"`{DOC_COLUMN}` String DEFAULT {doc_expression()}")
    columns += [
        f"`{promoted_column(name)}` String MATERIALIZED fields['{name}']"
        for name in PROMOTED_FIELDS
    ]
    return columns


def create_table_sql(
    database: str,
    table: str,
    *,
    retention_days: int,
    table_settings: Sequence[tuple[str, str]] = TABLE_SETTINGS,
    cluster: str | None = None,
) -> str:
    """The ``CREATE TABLE`` of the log table: partitioned by day, ordered for time-and-host
    queries, events removed by TTL ``retention_days`` after they were ingested (0: kept for
    good). The TTL counts from ingestion, not from the event's own time: an analyst replaying
    last year's logs keeps them for the retention period too, instead of losing them at once.
    ``table_settings``: those of :data:`TABLE_SETTINGS` the server has (:func:`usable_settings`).

    With ``cluster``, the table is made on every node as a ``ReplicatedMergeTree``, its replicas
    of a shard kept in step through ClickHouse Keeper under a path of the shard's, named by the
    ``{shard}`` and ``{replica}`` macros of each server's config (pass :func:`local_table`'s
    name: the Distributed table over it is :func:`distributed_table_sql`)."""
    columns = [*_column_definitions(), INGESTED_INDEX_SQL]
    ttl = (
        f"\nTTL toDateTime(ingested_at) + INTERVAL {int(retention_days)} DAY DELETE"
        if retention_days > 0
        else ""
    )
    engine = (
        # ClickHouse expands the macros when the table is made: the shard's path in Keeper (the
        # same for its replicas, another for each database) and this server's replica name.
        f"ReplicatedMergeTree('/clickhouse/tables/{{shard}}/{{database}}/{table}', '{{replica}}')"
        if cluster
        else "MergeTree"
    )
    return (
        f"CREATE TABLE IF NOT EXISTS `{database}`.`{table}`{on_cluster(cluster)} (\n  "
        + ",\n  ".join(columns)
        + f"\n) ENGINE = {engine}\nPARTITION BY toDate(timestamp)\n"
        f"ORDER BY ({SORTING_KEY})"
        + ttl
        # Granules of at most 1 MiB (about 300 events, not ClickHouse's 10 MiB default): a page
        # of search results reads each of its events' granules whole, and a search with a LIMIT
        # stops sooner. On 5M events a page costs about half, for 4 % more disk.
        + f"\nSETTINGS index_granularity = 8192, index_granularity_bytes = {GRANULE_BYTES}, "
        # An insert returns once its part is fsynced: the API acknowledges only durable events.
        "fsync_after_insert = 1, fsync_part_directory = 1"
        + (f", {settings_sql(table_settings)}" if table_settings else "")
    )


def distributed_table_sql(database: str, table: str, *, cluster: str) -> str:
    """The ``CREATE TABLE`` of the Distributed table ``table`` over :func:`local_table` of every
    shard of ``cluster``, made on every node. Its columns are the local table's, defaults and
    MATERIALIZED expressions included: a column it lacks cannot be read through it, and one
    declared plainly would be sent to the shards on insert, which refuse a value for a
    MATERIALIZED column (declared alike, the shard computes it)."""
    return (
        f"CREATE TABLE IF NOT EXISTS `{database}`.`{table}`{on_cluster(cluster)} (\n  "
        + ",\n  ".join(_column_definitions())
        + f"\n) ENGINE = Distributed(`{cluster}`, `{database}`, `{local_table(table)}`, "
        f"{SHARDING_KEY})"
    )


def schema_sql(
    database: str,
    table: str,
    *,
    retention_days: int,
    table_settings: Sequence[tuple[str, str]] = TABLE_SETTINGS,
    cluster: str | None = None,
) -> list[str]:
    """The statements that make the database and the log table ``table`` (idempotent), in
    order: on a single server the database and the table (:func:`create_table_sql`); on
    ``cluster`` the database on every node, then the local tables, then the Distributed table
    ``table`` over them."""
    database_sql = f"CREATE DATABASE IF NOT EXISTS `{database}`{on_cluster(cluster)}"
    if cluster is None:
        table_sql = create_table_sql(
            database, table, retention_days=retention_days, table_settings=table_settings
        )
        return [database_sql, table_sql]
    return [
        database_sql,
        create_table_sql(
            database,
            local_table(table),
            retention_days=retention_days,
            table_settings=table_settings,
            cluster=cluster,
        ),
        distributed_table_sql(database, table, cluster=cluster),
    ]


def add_index_sql(database: str, table: str, *, cluster: str | None = None) -> str:
    """The ``ALTER TABLE`` adding :data:`INGESTED_INDEX` to a table made before it (on a
    cluster, to the local tables: a Distributed table has no index). The store checks one
    node's table before it; on a cluster another node may have it already, hence ``IF NOT
    EXISTS`` there."""
    if cluster is None:
        return f"ALTER TABLE `{database}`.`{table}` ADD {INGESTED_INDEX_SQL}"
    return (
        f"ALTER TABLE `{database}`.`{table}`{on_cluster(cluster)} "
        f"ADD INDEX IF NOT EXISTS {_INGESTED_INDEX_DEFINITION}"
    )


def modify_settings_sql(
    database: str,
    table: str,
    settings: Sequence[tuple[str, str]] = TABLE_SETTINGS,
    *,
    cluster: str | None = None,
) -> str:
    """The ``ALTER TABLE`` giving a table made before them ``settings`` (of
    :data:`TABLE_SETTINGS`; on a cluster, the local tables: a Distributed table has no MergeTree
    settings). The parts already written keep how they were written until merged."""
    return (
        f"ALTER TABLE `{database}`.`{table}`{on_cluster(cluster)} "
        f"MODIFY SETTING {settings_sql(settings)}"
    )
