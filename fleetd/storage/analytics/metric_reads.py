"""GetMetrics' reads: a :class:`~fleetd.domain.analytics.query_plan.QueryPlan` executed.

docs/analytics.md, section 3. Every statement of one answer runs in one read-only
REPEATABLE READ transaction, so the rollup compactor moving partials into
``metric_rollups_1m`` between two statements can neither hide a minute nor count it twice.

Per tier:

* **Group rollups** (``metric_rollups_1m`` / ``_1h``). The labels pick the stored grouping
  set that covers them (``groups.covering_set``); a set that is not stored merges its full
  groups. Rows are re-bucketed with ``date_bin`` (epoch-aligned) and folded per bucket and
  series: count, sum, min and max in SQL, sketches (``core_ext.Sketch``) merged in Python,
  so AVG = Σsum / Σcount, and P50/P95/P99 are within the sketch's 1 % of the value however
  many rows are merged. The hourly tier reads hourly rows only for the whole hours inside
  the window that the downsampler has written; the ragged ends and the hours after its last
  row come from minute rows, so the current hour is never missing. The partials of minutes
  the compactor has not reached (``metric_rollup_partials``) are always added: the compactor
  deletes a partial in the transaction that writes its merge, so a partial is counted once.
* **Census** (``fleet_census_1m`` / ``_1h``). A bucket's value is the aggregation over its
  minute snapshots of the series' device count (a minute in which the census ran without a
  row for the series counts 0 devices). Hourly rows keep sums and extremes, so MIN/MAX over
  hourly rows of a series that merges several rows (groups, or statuses for
  ``device_count``) are the sums of the rows' extremes: exact for one row, a bound
  otherwise.
* **Per device** (``device_samples`` / ``device_samples_1h``). The labels select at most
  ``MAX_DEVICES`` current devices first; raw samples answer every aggregation exactly
  (``percentile_disc``); hourly rows answer AVG (weighted by samples), MAX (the hourly
  maxima where kept), MIN (of hourly averages), SUM and COUNT.

Empty buckets are omitted; ``sample_count`` is heartbeats (rollups), samples (per device)
or minute snapshots (census). The summary folds the same rows over the whole window.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from core_ext import Sketch
from fleetd.domain.analytics import groups, metrics
from fleetd.domain.analytics.metrics import PERCENTILES, Kind, Metric
from fleetd.domain.analytics.query_plan import (
    EPOCH,
    METADATA_PREFIX,
    Label,
    MetricRead,
    QueryPlan,
    Tier,
    bucket_start,
    check_answer_size,
    check_device_count,
    quantile_disc,
)
from fleetd.storage.types import Connection, Pool

__all__ = ["Answer", "Point", "Series", "Statistics", "read_metrics"]

Key = tuple[tuple[str, str], ...]
"""A series' labels, sorted by key: its grouped values and its restrictions."""

LIVE_COUNTS_WITHIN: Final = dt.timedelta(minutes=1)
"""An end_time this close to now takes device counts from ``devices``, not the census."""
HOUR: Final = dt.timedelta(hours=1)
_GROUP_COLUMNS: Final = {"fleet": "fleet", "type": "device_type", "version": "version"}


@dataclass(frozen=True, slots=True)
class Point:
    start: dt.datetime
    value: float
    sample_count: int


@dataclass(frozen=True, slots=True)
class Series:
    metric: Metric
    labels: Key
    points: tuple[Point, ...]


@dataclass(frozen=True, slots=True)
class Statistics:
    """A metric over the whole window; percentiles are 0 where the tier keeps none."""

    min: float
    max: float
    avg: float
    p50: float
    p95: float
    p99: float
    sample_count: int


@dataclass(frozen=True, slots=True)
class Answer:
    series: tuple[Series, ...]
    statistics: dict[str, Statistics]
    """Per metric name with data in the window."""
    device_count: int
    online_count: int


async def read_metrics(pool: Pool, plan: QueryPlan, *, now: dt.datetime) -> Answer:
    """Answer ``plan``; raises ``InvalidQuery`` when the labels give more series (or match
    more devices) than the bounds allow, before any metric row is read."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        reader = _Reader(conn, plan)
        await reader.resolve()
        check_answer_size(plan, reader.series_count())
        series: list[Series] = []
        statistics: dict[str, Statistics] = {}
        for read in plan.reads:
            found, stats = await reader.read(read)
            series.extend(found)
            if stats is not None:
                statistics[read.metric.name] = stats
        device_count, online_count = await _device_counts(conn, plan.end, now)
    return Answer(tuple(series), statistics, device_count, online_count)


# --- accumulation -------------------------------------------------------------------------


@dataclass(slots=True)
class _Cell:
    """One bucket of one series, or a whole window: exact count/sum/min/max and a sketch."""

    count: int = 0
    total: float = 0.0
    low: float = math.inf
    high: float = -math.inf
    sketch: Sketch | None = None

    def add(self, count: int, total: float, low: float, high: float) -> None:
        self.count += count
        self.total += total
        self.low = min(self.low, low)
        self.high = max(self.high, high)

    def merge_sketch(self, other: Sketch) -> None:
        if self.sketch is None:
            self.sketch = Sketch(other.relative_accuracy, other.max_bins)
        self.sketch.merge(other)

    def fold(self, other: _Cell) -> None:
        self.add(other.count, other.total, other.low, other.high)
        if other.sketch is not None:
            self.merge_sketch(other.sketch)


def _rollup_value(cell: _Cell, aggregation: str) -> float | None:
    if aggregation == "AVG":
        return cell.total / cell.count
    if aggregation == "MIN":
        return cell.low
    if aggregation == "MAX":
        return cell.high
    if aggregation == "SUM":
        return cell.total
    if aggregation == "COUNT":
        return float(cell.count)
    return cell.sketch.quantile(PERCENTILES[aggregation]) if cell.sketch else None


def _cell_statistics(cell: _Cell) -> Statistics | None:
    if cell.count == 0:
        return None
    p50 = p95 = p99 = 0.0
    if cell.sketch is not None and cell.sketch.count:
        p50, p95, p99 = (cell.sketch.quantile(q) or 0.0 for q in (0.5, 0.95, 0.99))
    return Statistics(cell.low, cell.high, cell.total / cell.count, p50, p95, p99, cell.count)


def _values_statistics(values: list[float], sample_count: int) -> Statistics | None:
    if not values:
        return None
    ordered = sorted(values)
    p50, p95, p99 = (quantile_disc(ordered, q) for q in (0.5, 0.95, 0.99))
    avg = math.fsum(ordered) / len(ordered)
    return Statistics(ordered[0], ordered[-1], avg, p50, p95, p99, sample_count)


# --- the reader ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Group:
    group_id: int
    values: dict[str, str | None]


@dataclass
class _Reader:
    conn: Connection
    plan: QueryPlan
    groups: list[_Group] = field(default_factory=list)
    partials: list[tuple[Key, dt.datetime, int, int, float, float, float, bytes]] = field(
        default_factory=list
    )
    rollup_keys: dict[int, Key] = field(default_factory=dict)
    """Group id → series key, for the rollup tiers (every label a group label)."""
    census: dict[str, tuple[list[Series], Statistics | None]] = field(default_factory=dict)
    devices: list[tuple[int, Key]] = field(default_factory=list)
    """(device_key, series key) for the per-device tiers; with ``tags="*"`` a device is here
    once per tag."""

    async def resolve(self) -> None:
        """Everything needed to count the series, and the (cheap) census answers."""
        tiers = {read.tier for read in self.plan.reads}
        if tiers & {Tier.ROLLUPS_1M, Tier.ROLLUPS_1H, Tier.CENSUS_1M, Tier.CENSUS_1H}:
            rows = await self.conn.fetch(
                "SELECT group_id, fleet, device_type, version FROM metric_groups"
            )
            self.groups = [
                _Group(
                    r["group_id"],
                    {"fleet": r["fleet"], "type": r["device_type"], "version": r["version"]},
                )
                for r in rows
            ]
        if tiers & {Tier.ROLLUPS_1M, Tier.ROLLUPS_1H}:
            self.rollup_keys = self._group_keys(self.plan.labels)
            await self._read_partials()
        for read in self.plan.reads:
            if read.tier in (Tier.CENSUS_1M, Tier.CENSUS_1H):
                self.census[read.metric.name] = await self._read_census(read)
        if tiers & {Tier.SAMPLES, Tier.SAMPLES_1H}:
            await self._select_devices()

    def series_count(self) -> int:
        count = 0
        rollup_keys = len(set(self.rollup_keys.values()) | {p[0] for p in self.partials})
        device_keys = len({key for _, key in self.devices})
        for read in self.plan.reads:
            if read.tier in (Tier.CENSUS_1M, Tier.CENSUS_1H):
                count += len(self.census[read.metric.name][0])
            elif read.tier in (Tier.SAMPLES, Tier.SAMPLES_1H):
                count += device_keys
            else:
                count += rollup_keys
        return count

    async def read(self, read: MetricRead) -> tuple[list[Series], Statistics | None]:
        if read.tier in (Tier.CENSUS_1M, Tier.CENSUS_1H):
            return self.census[read.metric.name]
        if read.tier in (Tier.SAMPLES, Tier.SAMPLES_1H):
            return await self._read_samples(read)
        return await self._read_rollups(read)

    # --- groups ---------------------------------------------------------------------------

    def _group_keys(self, labels: Sequence[Label]) -> dict[int, Key]:
        """The groups of the stored set covering ``labels`` that pass their restrictions."""
        stored = groups.covering_set(frozenset(label.key for label in labels))
        keys: dict[int, Key] = {}
        for group in self.groups:
            if any((group.values[name] is not None) != (name in stored) for name in groups.LABELS):
                continue
            key = _key_of(group.values, labels)
            if key is not None:
                keys[group.group_id] = key
        return keys

    # --- rollups --------------------------------------------------------------------------

    async def _read_partials(self) -> None:
        ids = [m.metric_id for m in _rollup_metrics(self.plan)]
        rows = await self.conn.fetch(
            """SELECT date_bin($1, bucket_start, $2) AS bucket, fleet, device_type, version,
                      metric, count, sum, min, max, sketch
               FROM metric_rollup_partials
               WHERE metric = ANY($3::smallint[]) AND bucket_start >= $4 AND bucket_start < $5""",
            self.plan.interval,
            EPOCH,
            ids,
            self.plan.start,
            self.plan.end,
        )
        for r in rows:
            values: dict[str, str | None] = {
                "fleet": r["fleet"],
                "type": r["device_type"],
                "version": r["version"],
            }
            key = _key_of(values, self.plan.labels)
            if key is not None:
                self.partials.append(
                    (
                        key,
                        r["bucket"],
                        r["metric"],
                        r["count"],
                        r["sum"],
                        r["min"],
                        r["max"],
                        r["sketch"],
                    )
                )

    async def _read_rollups(self, read: MetricRead) -> tuple[list[Series], Statistics | None]:
        plan = self.plan
        rate = read.metric.kind is Kind.HEARTBEAT_RATE
        metric = metrics.HEARTBEAT_COUNT_METRIC if rate else read.metric
        assert metric.metric_id is not None  # the plan sends only rolled-up metrics here
        cells: dict[Key, dict[dt.datetime, _Cell]] = defaultdict(dict)
        ids = list(self.rollup_keys)
        for table, start, end in await self._rollup_ranges(read.tier, ids, metric.metric_id):
            rows = await self.conn.fetch(
                _ROLLUP_CELLS.format(table=table, sketches="" if rate else _SKETCHES),
                plan.interval,
                EPOCH,
                ids,
                [metric.metric_id],
                start,
                end,
            )
            for r in rows:
                cell = cells[self.rollup_keys[r["group_id"]]].setdefault(r["bucket"], _Cell())
                cell.add(r["count"], r["sum"], r["min"], r["max"])
                if not rate:
                    for data in r["sketches"]:
                        cell.merge_sketch(Sketch.from_bytes(data))
        for key, bucket, metric_id, count, total, low, high, sketch in self.partials:
            if metric_id == metric.metric_id:
                cell = cells[key].setdefault(bucket, _Cell())
                cell.add(count, total, low, high)
                if not rate:
                    cell.merge_sketch(Sketch.from_bytes(sketch))
        if rate:
            return _rate_series(read.metric, cells, plan)
        window = _Cell()
        found: list[Series] = []
        for key in sorted(cells):
            points: list[Point] = []
            for bucket in sorted(cells[key]):
                cell = cells[key][bucket]
                window.fold(cell)
                value = _rollup_value(cell, plan.aggregation)
                if value is not None and cell.count:
                    points.append(Point(bucket, value, cell.count))
            if points:
                found.append(Series(read.metric, key, tuple(points)))
        return found, _cell_statistics(window)

    async def _rollup_ranges(
        self, tier: Tier, group_ids: list[int], metric_id: int
    ) -> list[tuple[str, dt.datetime, dt.datetime]]:
        """(table, from, to) covering the window: hourly rows for the whole hours the
        downsampler has written, minute rows for the rest."""
        start, end = self.plan.start, self.plan.end
        minute = Tier.ROLLUPS_1M.value
        if tier is Tier.ROLLUPS_1M:
            return [(minute, start, end)]
        first_hour = _ceil_hour(start)
        last_hour = _floor_hour(end)
        if first_hour >= last_hour:
            return [(minute, start, end)]
        latest: dt.datetime | None = await self.conn.fetchval(
            """SELECT max(bucket_start) FROM metric_rollups_1h
               WHERE group_id = ANY($1::int[]) AND metric = $2
                 AND bucket_start >= $3 AND bucket_start < $4""",
            group_ids,
            metric_id,
            first_hour,
            last_hour,
        )
        hourly_end = first_hour if latest is None else latest + HOUR
        ranges = [(minute, start, first_hour), (Tier.ROLLUPS_1H.value, first_hour, hourly_end)]
        ranges.append((minute, hourly_end, end))
        return [(table, a, b) for table, a, b in ranges if a < b]

    # --- census ---------------------------------------------------------------------------

    async def _read_census(self, read: MetricRead) -> tuple[list[Series], Statistics | None]:
        plan = self.plan
        group_labels = [label for label in plan.labels if label.key != "status"]
        keys = self._group_keys(group_labels)
        everyone = self._group_keys([])
        status_label = next((label for label in plan.labels if label.key == "status"), None)
        statuses = _census_statuses(read.metric, status_label)
        if not keys or not everyone or statuses == []:
            return [], None
        hourly = read.tier is Tier.CENSUS_1H
        status_filter = "" if statuses is None else "AND status = ANY($4::text[])"
        args: list[object] = [list(keys), plan.start, plan.end]
        if statuses is not None:
            args.append(statuses)
        columns = "minutes, devices_sum, devices_min, devices_max" if hourly else "devices"
        rows = await self.conn.fetch(
            f"""SELECT bucket_start, group_id, status, {columns} FROM {read.tier.value}
                WHERE group_id = ANY($1::int[]) AND bucket_start >= $2 AND bucket_start < $3
                {status_filter}""",  # noqa: S608 - catalogue identifiers; values are parameters
            *args,
        )
        # How many snapshots each minute (or hour) had: the fleet-wide rows, present
        # whenever the census counted any device.
        snapshot_rows = await self.conn.fetch(
            f"""SELECT bucket_start, max({"minutes" if hourly else "1"}) AS minutes
                FROM {read.tier.value}
                WHERE group_id = $1 AND bucket_start >= $2 AND bucket_start < $3
                GROUP BY bucket_start""",  # noqa: S608 - catalogue identifiers; values are parameters
            next(iter(everyone)),
            plan.start,
            plan.end,
        )
        snapshots = {r["bucket_start"]: int(r["minutes"]) for r in snapshot_rows}
        grouped_status = status_label is not None and status_label.grouped
        series_rows: dict[Key, dict[dt.datetime, list[int]]] = defaultdict(dict)
        for r in rows:
            key = keys[r["group_id"]]
            if grouped_status:
                key = tuple(sorted((*key, ("status", r["status"]))))
            elif status_label is not None:
                key = tuple(sorted((*key, ("status", status_label.value))))
            if hourly:
                stats = [r["devices_sum"], r["devices_min"], r["devices_max"]]
            else:
                stats = [r["devices"]] * 3
            acc = series_rows[key].setdefault(r["bucket_start"], [0, 0, 0])
            for i in range(3):
                acc[i] += stats[i]
        return _census_series(read.metric, series_rows, snapshots, plan, hourly)

    # --- per device -----------------------------------------------------------------------

    async def _select_devices(self) -> None:
        where, args, grouped = _device_selection(self.plan.labels)
        tags = any(label.key == "tags" and label.grouped for label in self.plan.labels)
        unnest = " CROSS JOIN LATERAL unnest(d.tags) AS t(tag)" if tags else ""
        count: int = await self.conn.fetchval(
            f"SELECT count(*) FROM devices d WHERE {where}",  # noqa: S608 - catalogue identifiers; values are parameters
            *args,
        )
        check_device_count(self.plan.labels, count)
        columns = ", ".join(["d.device_key", *(expr for _, expr in grouped)])
        rows = await self.conn.fetch(
            f"SELECT {columns} FROM devices d{unnest} WHERE {where}",  # noqa: S608 - catalogue identifiers; values are parameters
            *args,
        )
        restricted = [(label.key, label.value) for label in self.plan.labels if not label.grouped]
        for r in rows:
            pairs = [(name, str(r[i + 1])) for i, (name, _) in enumerate(grouped)]
            self.devices.append((r["device_key"], tuple(sorted(pairs + restricted))))

    async def _read_samples(self, read: MetricRead) -> tuple[list[Series], Statistics | None]:
        plan = self.plan
        keys = sorted({key for _, key in self.devices})
        if not keys:
            return [], None
        index = {key: i for i, key in enumerate(keys)}
        device_keys = [device for device, _ in self.devices]
        series_ids = [index[key] for _, key in self.devices]
        hourly = read.tier is Tier.SAMPLES_1H
        value, count, time_column = _sample_expressions(read.metric, plan.aggregation, hourly)
        rows = await self.conn.fetch(
            f"""SELECT date_bin($1, s.{time_column}, $2) AS bucket, sel.series,
                       {value} AS value, {count} AS n
                FROM unnest($3::int[], $4::int[]) AS sel(device_key, series)
                JOIN {read.tier.value} s ON s.device_key = sel.device_key
                WHERE s.{time_column} >= $5 AND s.{time_column} < $6
                GROUP BY 1, 2 HAVING {count} > 0
                ORDER BY 2, 1""",  # noqa: S608 - catalogue identifiers; values are parameters
            plan.interval,
            EPOCH,
            device_keys,
            series_ids,
            plan.start,
            plan.end,
            *(
                [PERCENTILES[plan.aggregation]]
                if plan.percentile is not None and not hourly
                else []
            ),
        )
        points: dict[int, list[Point]] = defaultdict(list)
        for r in rows:
            points[r["series"]].append(Point(r["bucket"], float(r["value"]), int(r["n"])))
        found = [
            Series(read.metric, keys[i], tuple(points[i])) for i in range(len(keys)) if points[i]
        ]
        return found, await self._sample_statistics(read, sorted(set(device_keys)), hourly)

    async def _sample_statistics(
        self, read: MetricRead, device_keys: list[int], hourly: bool
    ) -> Statistics | None:
        metric = read.metric
        if hourly:
            avg = metric.hourly_avg_column
            high = metric.hourly_max_column or avg
            row = await self.conn.fetchrow(
                f"""SELECT min({avg}) AS low, max({high}) AS high,
                           sum({avg}::float8 * samples)
                               / sum(samples) FILTER (WHERE {avg} IS NOT NULL) AS avg,
                           NULL::float8[] AS ps,
                           coalesce(sum(samples) FILTER (WHERE {avg} IS NOT NULL), 0) AS n
                    FROM device_samples_1h
                    WHERE device_key = ANY($1::int[]) AND hour_start >= $2 AND hour_start < $3""",  # noqa: S608 - catalogue identifiers; values are parameters
                device_keys,
                self.plan.start,
                self.plan.end,
            )
        else:
            column = metric.sample_column
            row = await self.conn.fetchrow(
                f"""SELECT min({column}) AS low, max({column}) AS high, avg({column}) AS avg,
                           percentile_disc(ARRAY[0.5, 0.95, 0.99]::float8[])
                               WITHIN GROUP (ORDER BY {column}::float8) AS ps,
                           count({column}) AS n
                    FROM device_samples
                    WHERE device_key = ANY($1::int[]) AND seen_at >= $2 AND seen_at < $3""",  # noqa: S608 - catalogue identifiers; values are parameters
                device_keys,
                self.plan.start,
                self.plan.end,
            )
        if row is None or not row["n"]:
            return None
        p50, p95, p99 = row["ps"] or (0.0, 0.0, 0.0)
        return Statistics(
            float(row["low"]),
            float(row["high"]),
            float(row["avg"]),
            float(p50),
            float(p95),
            float(p99),
            int(row["n"]),
        )


_SKETCHES: Final = ", array_agg(sketch) AS sketches"
_ROLLUP_CELLS: Final = """
SELECT date_bin($1, bucket_start, $2) AS bucket, group_id,
       sum(count)::bigint AS count, sum(sum) AS sum, min(min) AS min, max(max) AS max{sketches}
FROM {table}
WHERE group_id = ANY($3::int[]) AND metric = ANY($4::smallint[])
  AND bucket_start >= $5 AND bucket_start < $6
GROUP BY 1, 2"""


# --- helpers ------------------------------------------------------------------------------


def _key_of(values: Mapping[str, str | None], labels: Iterable[Label]) -> Key | None:
    """The series key of a group with ``values``, or None when a restriction excludes it."""
    pairs: list[tuple[str, str]] = []
    for label in labels:
        value = values[label.key]
        if value is None or (not label.grouped and value != label.value):
            return None
        pairs.append((label.key, value))
    return tuple(sorted(pairs))


def _rollup_metrics(plan: QueryPlan) -> list[Metric]:
    chosen: list[Metric] = []
    for read in plan.reads:
        if read.tier in (Tier.ROLLUPS_1M, Tier.ROLLUPS_1H):
            metric = (
                metrics.HEARTBEAT_COUNT_METRIC
                if read.metric.kind is Kind.HEARTBEAT_RATE
                else read.metric
            )
            chosen.append(metric)
    return chosen


def _rate_series(
    metric: Metric, cells: Mapping[Key, Mapping[dt.datetime, _Cell]], plan: QueryPlan
) -> tuple[list[Series], Statistics | None]:
    """heartbeat_rate: a bucket's heartbeat count over its seconds (AVG), or the count."""
    seconds = plan.interval.total_seconds()
    found: list[Series] = []
    per_bucket: dict[dt.datetime, int] = defaultdict(int)
    for key in sorted(cells):
        points = []
        for bucket in sorted(cells[key]):
            count = cells[key][bucket].count
            per_bucket[bucket] += count
            value = count / seconds if plan.aggregation == "AVG" else float(count)
            points.append(Point(bucket, value, count))
        if points:
            found.append(Series(metric, key, tuple(points)))
    rates = [count / seconds for count in per_bucket.values()]
    stats = _values_statistics(rates, sum(per_bucket.values()))
    if stats is not None:
        window = (plan.end - plan.start).total_seconds()
        stats = Statistics(
            stats.min,
            stats.max,
            stats.sample_count / window,
            stats.p50,
            stats.p95,
            stats.p99,
            stats.sample_count,
        )
    return found, stats


def _census_statuses(metric: Metric, label: Label | None) -> list[str] | None:
    """The statuses to read (None: all); an empty list when the label excludes them all."""
    if metric.census_status is not None:
        if label is not None and not label.grouped and label.value != metric.census_status:
            return []
        return [metric.census_status]
    if label is not None and not label.grouped:
        return [label.value]
    return None


def _census_series(
    metric: Metric,
    series_rows: Mapping[Key, Mapping[dt.datetime, list[int]]],
    snapshots: Mapping[dt.datetime, int],
    plan: QueryPlan,
    hourly: bool,
) -> tuple[list[Series], Statistics | None]:
    """Per bucket, the aggregation over its snapshots (minutes without a row count 0)."""
    buckets: dict[dt.datetime, list[dt.datetime]] = defaultdict(list)
    for moment in sorted(snapshots):
        buckets[bucket_start(moment, plan.interval)].append(moment)
    found: list[Series] = []
    window_values: dict[dt.datetime, int] = defaultdict(int)
    for key in sorted(series_rows):
        rows = series_rows[key]
        points: list[Point] = []
        for bucket, moments in sorted(buckets.items()):
            minutes = sum(snapshots[m] for m in moments)
            present = [rows.get(m, [0, 0, 0]) for m in moments]
            for m in moments:
                window_values[m] += rows.get(m, [0, 0, 0])[0]
            value = _census_value(present, [snapshots[m] for m in moments], plan, hourly)
            points.append(Point(bucket, value, minutes))
        found.append(Series(metric, key, tuple(points)))
    if not found:
        return [], None
    # The summary is over the selection's total per snapshot (every series together).
    if hourly:
        minutes = sum(snapshots.values())
        total = sum(window_values.values())
        lows = [_series_rows_sum(series_rows, m, 1) for m in snapshots]
        highs = [_series_rows_sum(series_rows, m, 2) for m in snapshots]
        stats = Statistics(min(lows), max(highs), total / minutes, 0.0, 0.0, 0.0, minutes)
    else:
        values = [float(window_values[m]) for m in snapshots]
        stats_or_none = _values_statistics(values, len(values))
        assert stats_or_none is not None
        stats = stats_or_none
    return found, stats


def _series_rows_sum(
    series_rows: Mapping[Key, Mapping[dt.datetime, list[int]]], moment: dt.datetime, i: int
) -> int:
    return sum(rows.get(moment, [0, 0, 0])[i] for rows in series_rows.values())


def _census_value(
    present: list[list[int]], minutes: list[int], plan: QueryPlan, hourly: bool
) -> float:
    aggregation = plan.aggregation
    total_minutes = sum(minutes)
    if aggregation == "COUNT":
        return float(total_minutes)
    if hourly:
        sums = [p[0] for p in present]
        if aggregation == "AVG":
            return sum(sums) / total_minutes
        if aggregation == "SUM":
            return float(sum(sums))
        if aggregation == "MIN":
            return float(min(p[1] for p in present))
        return float(max(p[2] for p in present))
    values = sorted(float(p[0]) for p in present)
    if aggregation == "AVG":
        return math.fsum(values) / len(values)
    if aggregation == "SUM":
        return math.fsum(values)
    if aggregation == "MIN":
        return values[0]
    if aggregation == "MAX":
        return values[-1]
    return quantile_disc(values, PERCENTILES[aggregation])


def _device_selection(
    labels: Sequence[Label],
) -> tuple[str, list[object], list[tuple[str, str]]]:
    """The WHERE clause over ``devices d`` and the grouped (label, expression) pairs."""
    where = ["d.offboarded_at IS NULL"]
    args: list[object] = []
    grouped: list[tuple[str, str]] = []

    def param(value: object) -> str:
        args.append(value)
        return f"${len(args)}"

    for label in labels:
        if label.key == "tags":
            if label.grouped:
                grouped.append(("tags", "t.tag"))
            else:
                where.append(f"d.tags @> ARRAY[{param(label.value)}]::text[]")
            continue
        if label.key.startswith(METADATA_PREFIX):
            name = param(label.key[len(METADATA_PREFIX) :])
            expr = f"(d.metadata ->> {name})"
        else:
            column = "device_id" if label.key == "device_id" else label.key
            expr = f"d.{_GROUP_COLUMNS.get(column, column)}"
        if label.grouped:
            where.append(f"{expr} IS NOT NULL")
            grouped.append((label.key, expr))
        else:
            where.append(f"{expr} = {param(label.value)}")
    return " AND ".join(where), args, grouped


def _sample_expressions(metric: Metric, aggregation: str, hourly: bool) -> tuple[str, str, str]:
    """(value, count, time column) SQL for one metric over raw or hourly per-device rows."""
    if not hourly:
        column = f"s.{metric.sample_column}"
        values = {
            "AVG": f"avg({column}::float8)",
            "MIN": f"min({column})",
            "MAX": f"max({column})",
            "SUM": f"sum({column}::float8)",
            "COUNT": f"count({column})",
        }
        value = values.get(
            aggregation, f"percentile_disc($7::float8) WITHIN GROUP (ORDER BY {column}::float8)"
        )
        return value, f"count({column})", "seen_at"
    avg = f"s.{metric.hourly_avg_column}"
    high = f"s.{metric.hourly_max_column or metric.hourly_avg_column}"
    count = f"coalesce(sum(s.samples) FILTER (WHERE {avg} IS NOT NULL), 0)"
    values = {
        "AVG": f"sum({avg}::float8 * s.samples) / nullif({count}, 0)",
        "MIN": f"min({avg})",
        "MAX": f"max({high})",
        "SUM": f"sum({avg}::float8 * s.samples)",
        "COUNT": count,
    }
    return values[aggregation], count, "hour_start"


async def _device_counts(conn: Connection, end: dt.datetime, now: dt.datetime) -> tuple[int, int]:
    """Devices registered and online at ``end``: live near now, else the census."""
    if end >= now - LIVE_COUNTS_WITHIN:
        row = await conn.fetchrow(
            """SELECT count(*) AS devices, count(*) FILTER (WHERE status = 'online') AS online
               FROM devices WHERE offboarded_at IS NULL"""
        )
        assert row is not None
        return int(row["devices"]), int(row["online"])
    row = await conn.fetchrow(
        """WITH everyone AS (
               SELECT group_id FROM metric_groups
               WHERE fleet IS NULL AND device_type IS NULL AND version IS NULL),
           latest AS (
               SELECT max(c.bucket_start) AS at FROM fleet_census_1m c, everyone e
               WHERE c.group_id = e.group_id AND c.bucket_start <= $1
                 AND c.bucket_start > $1 - interval '1 hour')
           SELECT coalesce(sum(c.devices), 0) AS devices,
                  coalesce(sum(c.devices) FILTER (WHERE c.status = 'online'), 0) AS online
           FROM fleet_census_1m c, everyone e, latest l
           WHERE c.group_id = e.group_id AND c.bucket_start = l.at""",
        end,
    )
    assert row is not None
    return int(row["devices"]), int(row["online"])


def _floor_hour(moment: dt.datetime) -> dt.datetime:
    return bucket_start(moment, HOUR)


def _ceil_hour(moment: dt.datetime) -> dt.datetime:
    floor = _floor_hour(moment)
    return floor if floor == moment else floor + HOUR
