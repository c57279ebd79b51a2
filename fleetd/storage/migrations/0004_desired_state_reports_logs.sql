-- What the gateway tells devices and what devices tell it back: desired state (artifact
-- assignments under a per-device revision), status reports, log requests and bundles,
-- the blob index, and the per-minute fleet rollups.

-- The device's desired-state revision. Bumped (in the same transaction) whenever its
-- active assignments or its pending log requests change; the gateway answers a heartbeat
-- that echoes the current revision with "unchanged". offboard_notified_at records that
-- the agent was told it is offboarded (it is told once, then refused).
ALTER TABLE devices
    ADD COLUMN desired_revision     bigint NOT NULL DEFAULT 0 CHECK (desired_revision >= 0),
    ADD COLUMN offboard_notified_at timestamptz;

-- The liveness sweeper's PostgreSQL backstop: online devices by last heartbeat.
CREATE INDEX devices_online_last_seen_idx ON devices (last_seen) WHERE status = 'online';

-- Content-addressed blobs (uploaded binaries, log bundles). The bytes live in the blob
-- store (fleetd/blobs.py) under their SHA-256; this is the index.
CREATE TABLE blobs (
    sha256           text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size_bytes       bigint NOT NULL CHECK (size_bytes >= 0),
    created_at       timestamptz NOT NULL DEFAULT now()
);

-- One artifact a device should converge on. spec is the serialized
-- fleetd.device.v1.ArtifactAssignment the agent receives. Lifecycle states only move
-- forward: pending -> downloading -> verifying -> applying -> healthy | rolled_back |
-- failed; cancelled is set by the server (rollback or cancel before the device acted).
CREATE TABLE assignments (
    assignment_id     text PRIMARY KEY,
    device_id         text NOT NULL REFERENCES devices (device_id) ON DELETE CASCADE,
    deployment_id     text NOT NULL DEFAULT '',
    name              text NOT NULL,
    version           text NOT NULL,
    spec              bytea NOT NULL,
    -- Part of the device's current desired state (false once superseded or cancelled).
    active            boolean NOT NULL DEFAULT true,
    state             text NOT NULL DEFAULT 'pending'
                      CHECK (state IN ('pending', 'downloading', 'verifying', 'applying',
                                       'healthy', 'rolled_back', 'failed', 'cancelled')),
    reason            text NOT NULL DEFAULT '',
    message           text NOT NULL DEFAULT '',
    installed_version text NOT NULL DEFAULT '',
    last_sequence     bigint,
    observed_at       timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX assignments_active_name_idx ON assignments (device_id, name) WHERE active;
CREATE INDEX assignments_deployment_idx ON assignments (deployment_id, state);

-- Every status report a device sent, deduplicated by its outbox sequence.
CREATE TABLE artifact_status_reports (
    device_id         text NOT NULL REFERENCES devices (device_id) ON DELETE CASCADE,
    sequence          bigint NOT NULL CHECK (sequence > 0),
    assignment_id     text NOT NULL REFERENCES assignments (assignment_id) ON DELETE CASCADE,
    state             text NOT NULL,
    reason            text NOT NULL DEFAULT '',
    message           text NOT NULL DEFAULT '',
    installed_version text NOT NULL DEFAULT '',
    observed_at       timestamptz,
    received_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, sequence)
);

CREATE INDEX artifact_status_reports_assignment_idx
    ON artifact_status_reports (assignment_id, received_at);

-- An operator's request for a log bundle from one device.
CREATE TABLE log_requests (
    log_request_id    text PRIMARY KEY,
    device_id         text NOT NULL REFERENCES devices (device_id) ON DELETE CASCADE,
    source            text NOT NULL CHECK (source IN ('agent_journal', 'agent_log_file')),
    since             timestamptz,
    until             timestamptz,
    max_bytes         bigint NOT NULL CHECK (max_bytes > 0),
    requested_by      text NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz NOT NULL,
    fulfilled_at      timestamptz,
    bundle_id         text
);

CREATE INDEX log_requests_pending_idx ON log_requests (device_id) WHERE fulfilled_at IS NULL;

-- A stored log bundle (its bytes are a blob).
CREATE TABLE log_bundles (
    bundle_id         text PRIMARY KEY,
    log_request_id    text NOT NULL UNIQUE REFERENCES log_requests (log_request_id)
                      ON DELETE CASCADE,
    device_id         text NOT NULL REFERENCES devices (device_id) ON DELETE CASCADE,
    sha256            text NOT NULL REFERENCES blobs (sha256),
    size_bytes        bigint NOT NULL,
    content_encoding  text NOT NULL,
    uncompressed_size bigint NOT NULL,
    stored_at         timestamptz NOT NULL DEFAULT now()
);

-- Per-minute heartbeat rollups per device group (device_type, version), merged from every
-- gateway process: counts and sums add up, min and max combine.
CREATE TABLE fleet_rollups (
    bucket_start      timestamptz NOT NULL,
    device_type       text NOT NULL,
    version           text NOT NULL,
    metric            text NOT NULL,
    count             bigint NOT NULL,
    sum               double precision NOT NULL,
    min               double precision NOT NULL,
    max               double precision NOT NULL,
    PRIMARY KEY (bucket_start, device_type, version, metric)
);
