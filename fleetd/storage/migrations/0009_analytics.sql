-- Analytics storage (docs/analytics.md): per-device samples and hourly aggregates, group
-- rollups with DDSketches per minute and per hour, a device census, export jobs.
-- Partitioned tables get their partitions from the partition maintenance role
-- (fleetd/services/analytics/partition_maintenance.py), never a DEFAULT partition: a row
-- with no partition is refused, not hidden.

-- A compact surrogate key for the per-device tiers (a device id is up to 128 characters,
-- repeated in every sample and index entry), and the latest temperature for health checks
-- and filters.
ALTER TABLE devices
    ADD COLUMN device_key integer GENERATED ALWAYS AS IDENTITY,
    ADD COLUMN temperature real;
CREATE UNIQUE INDEX devices_device_key_idx ON devices (device_key);

-- One sample per device per FLEETD_SAMPLE_INTERVAL (GCRA in the batcher), every
-- DeviceStats field; network counters as rates in bytes/s (NULL: unknown).
CREATE TABLE device_samples (
    seen_at          timestamptz NOT NULL,
    device_key       integer NOT NULL,
    cpu_usage        real NOT NULL,
    memory_usage     real NOT NULL,
    memory_used_mb   integer NOT NULL,
    memory_total_mb  integer NOT NULL,
    disk_usage       real NOT NULL,
    disk_used_gb     real NOT NULL,
    disk_total_gb    real NOT NULL,
    uptime_seconds   integer NOT NULL,
    load_avg_1m      real NOT NULL,
    load_avg_5m      real NOT NULL,
    load_avg_15m     real NOT NULL,
    temperature      real,
    network_rx_rate  real,
    network_tx_rate  real
) PARTITION BY RANGE (seen_at);
CREATE UNIQUE INDEX device_samples_key_idx ON device_samples (device_key, seen_at);
CREATE INDEX device_samples_seen_brin ON device_samples USING brin (seen_at);

-- Per device per hour, downsampled from device_samples by the device downsampler.
CREATE TABLE device_samples_1h (
    hour_start           timestamptz NOT NULL,
    device_key           integer NOT NULL,
    samples              smallint NOT NULL,
    cpu_usage_avg        real,
    cpu_usage_max        real,
    memory_usage_avg     real,
    memory_usage_max     real,
    memory_used_mb_avg   real,
    memory_total_mb      integer,
    disk_usage_avg       real,
    disk_usage_max       real,
    disk_used_gb         real,
    disk_total_gb        real,
    uptime_seconds       integer,
    load_avg_1m_avg      real,
    load_avg_1m_max      real,
    load_avg_5m_avg      real,
    load_avg_15m_avg     real,
    temperature_avg      real,
    temperature_max      real,
    network_rx_rate_avg  real,
    network_rx_rate_max  real,
    network_tx_rate_avg  real,
    network_tx_rate_max  real,
    PRIMARY KEY (device_key, hour_start)
) PARTITION BY RANGE (hour_start);

-- Interned rollup and census labels; NULL means "all" (the grouping-set rows).
CREATE TABLE metric_groups (
    group_id     integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    fleet        text,
    device_type  text,
    version      text,
    UNIQUE NULLS NOT DISTINCT (fleet, device_type, version)
);

-- Written by gateway workers (append-only, one row per writer, minute, group and metric),
-- merged into metric_rollups_1m/_1h by the rollup compactor, which deletes what it merged.
CREATE TABLE metric_rollup_partials (
    writer        text NOT NULL,
    bucket_start  timestamptz NOT NULL,
    fleet         text NOT NULL,
    device_type   text NOT NULL,
    version       text NOT NULL,
    metric        smallint NOT NULL,
    count         bigint NOT NULL,
    sum           double precision NOT NULL,
    min           double precision NOT NULL,
    max           double precision NOT NULL,
    sketch        bytea NOT NULL
);
CREATE INDEX metric_rollup_partials_bucket_idx ON metric_rollup_partials (bucket_start);

-- metric ids: fleetd/domain/analytics/metrics.py. The sketch is a core_ext Sketch
-- (DDSketch, relative accuracy 1 %), kept inline and uncompressed.
CREATE TABLE metric_rollups_1m (
    bucket_start  timestamptz NOT NULL,
    group_id      integer NOT NULL,
    metric        smallint NOT NULL,
    count         bigint NOT NULL,
    sum           double precision NOT NULL,
    min           double precision NOT NULL,
    max           double precision NOT NULL,
    sketch        bytea NOT NULL,
    PRIMARY KEY (group_id, metric, bucket_start)
) PARTITION BY RANGE (bucket_start);
ALTER TABLE metric_rollups_1m ALTER COLUMN sketch SET STORAGE EXTERNAL;

CREATE TABLE metric_rollups_1h (
    bucket_start  timestamptz NOT NULL,
    group_id      integer NOT NULL,
    metric        smallint NOT NULL,
    count         bigint NOT NULL,
    sum           double precision NOT NULL,
    min           double precision NOT NULL,
    max           double precision NOT NULL,
    sketch        bytea NOT NULL,
    PRIMARY KEY (group_id, metric, bucket_start)
) PARTITION BY RANGE (bucket_start);
ALTER TABLE metric_rollups_1h ALTER COLUMN sketch SET STORAGE EXTERNAL;

-- Devices per group and status, one snapshot a minute; hourly rows fold the minutes.
CREATE TABLE fleet_census_1m (
    bucket_start  timestamptz NOT NULL,
    group_id      integer NOT NULL,
    status        text NOT NULL,
    devices       integer NOT NULL,
    PRIMARY KEY (group_id, status, bucket_start)
) PARTITION BY RANGE (bucket_start);

CREATE TABLE fleet_census_1h (
    bucket_start  timestamptz NOT NULL,
    group_id      integer NOT NULL,
    status        text NOT NULL,
    minutes       integer NOT NULL,
    devices_sum   bigint NOT NULL,
    devices_min   integer NOT NULL,
    devices_max   integer NOT NULL,
    PRIMARY KEY (group_id, status, bucket_start)
) PARTITION BY RANGE (bucket_start);

-- How far each analytics role got (the compactor, the downsamplers, the census).
CREATE TABLE analytics_watermarks (
    role  text PRIMARY KEY,
    upto  timestamptz NOT NULL
);

-- ExportData jobs: claimed with a lease by any control API replica, published whole.
CREATE TABLE export_jobs (
    export_id     uuid PRIMARY KEY,
    principal     text NOT NULL,
    request       jsonb NOT NULL,
    state         text NOT NULL DEFAULT 'queued'
                  CHECK (state IN ('queued', 'running', 'ready', 'failed', 'expired')),
    attempts      integer NOT NULL DEFAULT 0,
    lease_owner   text,
    lease_until   timestamptz,
    rows          bigint NOT NULL DEFAULT 0,
    size_bytes    bigint NOT NULL DEFAULT 0,
    file_sha256   text,                 -- the export file's checksum (not a blob reference)
    error         text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    expires_at    timestamptz NOT NULL
);
CREATE INDEX export_jobs_state_idx ON export_jobs (state, created_at);
CREATE INDEX export_jobs_principal_idx ON export_jobs (principal, state);

-- Replaced by metric_rollup_partials / metric_rollups_1m (count, sum, min, max and a sketch).
DROP TABLE fleet_rollups;
