"""Telemetry status from a real chDB store: per sensor and format, last seen, rates, gaps, and
silent or never-seen sensors flagged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from core.logstore.schema import LogEvent
from core.logstore.store import LogStore
from gateway.network.configuration import NetworkConfig, Sensor, TelemetrySource
from gateway.network.status import (
    DEFAULT_SILENCE_SECONDS,
    SensorStatus,
    StatusQuery,
    TelemetryStatus,
    gaps_in,
    telemetry_status,
)
from tests.core.logstore.conftest import open_store

NOW = datetime(2026, 3, 2, 12, 0, 30, tzinfo=UTC)


def event(at: datetime, fmt: str, *, source: str, observer: str = "") -> LogEvent:
    values: dict[str, str | int] = {"event.code": "conn", "source.ip": "10.0.0.1"}
    if observer:
        values["observer.name"] = observer
    return LogEvent(timestamp=at, format=fmt, source=source, raw="{}", values=values, fields={})


def minutes_ago(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


@pytest.fixture
async def store() -> AsyncIterator[LogStore]:
    async with open_store() as opened:
        events: list[LogEvent] = []
        # zeek-a: one event a minute for the last hour, except minutes 45..26 ago (20 silent
        # minutes), sent through ingest label "zeek-ingest" with its node as observer.name
        for m in range(60, 0, -1):
            if not 26 <= m <= 45:
                events.append(
                    event(minutes_ago(m - 0.5), "zeek", source="zeek-ingest", observer="zeek-a")
                )
        # suri-b: no observer.name, known by its ingest label; stopped 30 minutes ago
        events += [event(minutes_ago(m), "suricata", source="suri-b") for m in range(90, 30, -1)]
        # edge: a flow exporter that sent only before the window
        events += [
            event(NOW - timedelta(hours=3, minutes=m), "netflow", source="n", observer="edge")
            for m in range(5)
        ]
        # not network telemetry: never a sensor
        events += [event(minutes_ago(1), "windows", source="dc1", observer="dc1")]
        # the same sensor in a second format
        events += [event(minutes_ago(2), "suricata", source="x", observer="zeek-a")]
        # in the future of NOW: not counted
        events += [event(NOW + timedelta(minutes=5), "zeek", source="zeek-ingest", observer="z")]
        await opened.insert(events)
        yield opened


CONFIG = NetworkConfig(
    sensors=[
        Sensor(name="zeek-a", kind=TelemetrySource.ZEEK, silence_seconds=600),
        Sensor(name="suri-b", kind=TelemetrySource.SURICATA, silence_seconds=1200),
        Sensor(name="flow-c", kind=TelemetrySource.NETFLOW, description="core router"),
    ],
    sources=[TelemetrySource.ZEEK, TelemetrySource.SURICATA],
)


def by_key(status: TelemetryStatus) -> dict[tuple[str, str], SensorStatus]:
    return {(s.sensor, s.format): s for s in status.sensors}


async def test_sensors_rates_gaps_and_silence(store: LogStore) -> None:
    status = await telemetry_status(store, CONFIG, now=NOW, window=timedelta(hours=1))
    assert status.window_start == datetime(2026, 3, 2, 11, 0, tzinfo=UTC)
    sensors = by_key(status)
    assert set(sensors) == {
        ("zeek-a", "zeek"),
        ("zeek-a", "suricata"),
        ("suri-b", "suricata"),
        ("edge", "netflow"),
        ("flow-c", "netflow"),
    }

    zeek = sensors["zeek-a", "zeek"]
    assert (zeek.named_by, zeek.configured, zeek.enabled) == ("observer", True, True)
    assert zeek.state == "active"
    assert not zeek.silent
    assert zeek.events == 40
    assert zeek.last_seen == minutes_ago(0.5)
    assert zeek.seconds_since_last == 30.0
    assert zeek.events_per_second_5m == round(5 / 300, 3)
    assert zeek.events_per_second_1h == round(40 / 3600, 3)
    # the 20 silent minutes: 11:16 (the minute after the event of 11:15:00) up to 11:36
    assert [(g.start, g.end, g.seconds, g.open) for g in zeek.gaps] == [
        (
            datetime(2026, 3, 2, 11, 16, tzinfo=UTC),
            datetime(2026, 3, 2, 11, 36, tzinfo=UTC),
            1200,
            False,
        )
    ]
    assert zeek.gaps_total == 1

    suri = sensors["suri-b", "suricata"]
    assert (suri.named_by, suri.configured, suri.silence_seconds) == ("source", True, 1200)
    assert suri.state == "silent"
    assert suri.silent
    assert suri.last_seen == minutes_ago(31)
    assert suri.events == 30  # 60..31 minutes ago: 11:00:30 is in, 10:59:30 is not
    assert suri.events_per_second_5m == 0
    # sent before the window, so no leading gap; the open gap is the current silence
    assert [(g.start, g.open) for g in suri.gaps] == [(minutes_ago(30.5), True)]
    assert suri.gaps[0].end == NOW

    edge = sensors["edge", "netflow"]
    assert not edge.configured
    assert not edge.enabled  # netflow is not an enabled source
    assert edge.silence_seconds == DEFAULT_SILENCE_SECONDS
    assert edge.state == "silent"
    assert edge.events == 0
    assert edge.last_seen == NOW - timedelta(hours=3)
    assert [(g.start, g.end, g.open) for g in edge.gaps] == [(status.window_start, NOW, True)]

    never = sensors["flow-c", "netflow"]
    assert (never.state, never.named_by, never.last_seen) == ("never_seen", "config", None)
    assert never.description == "core router"

    other = sensors["zeek-a", "suricata"]
    assert other.events == 1
    assert other.state == "active"

    totals = status.totals
    assert totals.sensors == 4
    assert (totals.active, totals.silent, totals.never_seen) == (2, 2, 1)
    assert totals.events == 40 + 30 + 1
    assert totals.by_format == {"netflow": 0, "suricata": 31, "zeek": 40}


async def test_a_sensor_that_resumes_has_its_gap_closed(store: LogStore) -> None:
    """Gaps shorter than the sensor's threshold are no gaps; max_gaps keeps the newest."""
    quiet = CONFIG.model_copy(
        update={"sensors": [Sensor(name="zeek-a", kind=TelemetrySource.ZEEK, silence_seconds=1500)]}
    )
    status = await telemetry_status(store, quiet, now=NOW, window=timedelta(hours=1))
    assert by_key(status)["zeek-a", "zeek"].gaps == []
    capped = await telemetry_status(store, CONFIG, now=NOW, window=timedelta(hours=1), max_gaps=0)
    zeek = by_key(capped)["zeek-a", "zeek"]
    assert (zeek.gaps, zeek.gaps_total) == ([], 1)


async def test_the_span_read_keeps_its_edges_off_the_hour() -> None:
    """The status reads [window start - horizon, now]: an event at either edge is seen, one a
    millisecond outside is not, with the edges inside their hours (the read bounds the sorting
    key's hour as well as the time)."""
    window = timedelta(minutes=90)  # starts at 10:30, the horizon 6 hours before: 04:30
    horizon = datetime(2026, 3, 2, 4, 30, tzinfo=UTC)
    ms = timedelta(milliseconds=1)
    async with open_store() as edges:
        await edges.insert(
            [
                event(horizon, "zeek", source="z", observer="at-horizon"),
                event(horizon - ms, "zeek", source="z", observer="before-horizon"),
                event(NOW, "zeek", source="z", observer="at-now"),
                event(NOW + ms, "zeek", source="z", observer="after-now"),
            ]
        )
        status = await telemetry_status(edges, NetworkConfig(), now=NOW, window=window)
    seen = {(s.sensor, s.last_seen, s.events) for s in status.sensors}
    assert seen == {("at-horizon", horizon, 0), ("at-now", NOW, 1)}


async def test_an_empty_store_lists_the_configured_sensors() -> None:
    async with open_store() as empty:
        status = await telemetry_status(empty, CONFIG, now=NOW, window=timedelta(minutes=10))
    assert [(s.sensor, s.state) for s in status.sensors] == [
        ("flow-c", "never_seen"),
        ("suri-b", "never_seen"),
        ("zeek-a", "never_seen"),
    ]
    assert status.totals.events == 0


def test_gaps_in_minutes() -> None:
    start = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    now = start + timedelta(minutes=30)
    minute = [int((start + timedelta(minutes=m)).timestamp()) for m in (5, 6, 20)]
    found = gaps_in(minute, start=start, now=now, leading=True, shortest=timedelta(minutes=5))
    assert [(g.start.minute, g.end.minute, g.open) for g in found] == [
        (0, 5, False),
        (7, 20, False),
        (21, 30, True),
    ]
    found = gaps_in(minute, start=start, now=now, leading=False, shortest=timedelta(minutes=10))
    assert [(g.start.minute, g.end.minute) for g in found] == [(7, 20)]


def test_status_query_bounds() -> None:
    assert StatusQuery().window_seconds == 3600
    with pytest.raises(ValueError, match="greater than or equal"):
        StatusQuery(window_seconds=10)
