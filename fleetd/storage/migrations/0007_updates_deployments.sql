-- Updates (immutable sets of artifacts), deployments (rollouts of an update to resolved
-- targets, in waves) and each target's progress. The rollout engine (fleetd/rollout/)
-- drives deployments; assignments (0004) are what devices are told.

CREATE TABLE updates (
    update_id        text PRIMARY KEY,
    name             text NOT NULL,
    version          text NOT NULL,
    description      text NOT NULL DEFAULT '',
    -- Serialized fleetd.v1.UpdateStrategy (the default for its deployments).
    strategy         bytea NOT NULL,
    metadata         jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_by       text NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (name, version)
);

CREATE INDEX updates_created_idx ON updates (created_at DESC, update_id);

-- One artifact of an update, for one platform ('' = every device type).
CREATE TABLE update_artifacts (
    artifact_id      text PRIMARY KEY,
    update_id        text NOT NULL REFERENCES updates (update_id) ON DELETE CASCADE,
    position         integer NOT NULL,
    name             text NOT NULL,
    platform         text NOT NULL DEFAULT '',
    kind             text NOT NULL CHECK (kind IN ('file', 'model', 'config', 'container')),
    version          text NOT NULL,
    -- The fleetd.v1.Artifact as GetUpdate returns it (id and tuf_target_path filled in).
    spec             bytea NOT NULL,
    -- The fleetd.device.v1.ArtifactAssignment a device of this platform receives, without
    -- assignment_id, deployment_id and previous (the rollout engine fills those in).
    assignment_template bytea NOT NULL,
    target_path      text NOT NULL,
    sha256           text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    length           bigint NOT NULL CHECK (length >= 0),
    -- Anti-rollback counter signed into the TUF target: strictly increasing per
    -- (name, platform) across updates.
    release_counter  bigint NOT NULL CHECK (release_counter >= 1),
    UNIQUE (update_id, name, platform),
    UNIQUE (name, platform, release_counter)
);

CREATE TABLE deployments (
    deployment_id    text PRIMARY KEY,
    update_id        text NOT NULL REFERENCES updates (update_id),
    state            text NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'running', 'paused', 'completed', 'failed',
                                      'cancelled', 'rolling_back', 'rolled_back')),
    -- Serialized fleetd.v1.DeploymentConfig, defaults resolved (waves always explicit).
    config           bytea NOT NULL,
    device_filter    text NOT NULL DEFAULT '',
    -- Every resolved target, skipped ones included.
    target_device_count integer NOT NULL CHECK (target_device_count >= 0),
    -- Cumulative number of targets to update (skipped ones excluded) once wave i is done;
    -- the last equals the targets that are not skipped.
    wave_ends        integer[] NOT NULL,
    current_wave     integer NOT NULL DEFAULT 0,
    awaiting_approval boolean NOT NULL DEFAULT false,
    -- When the current wave's devices all reached a terminal state (validation starts).
    wave_settled_at  timestamptz,
    -- Failures (failed + rolled back) and rollbacks an operator acknowledged by resuming
    -- after a halt; the failure budget and the rollback gate count only those beyond.
    acknowledged_failures integer NOT NULL DEFAULT 0,
    acknowledged_rolled_back integer NOT NULL DEFAULT 0,
    message          text NOT NULL DEFAULT '',
    created_by       text NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz
);

CREATE INDEX deployments_created_idx ON deployments (created_at DESC, deployment_id);
CREATE INDEX deployments_active_idx ON deployments (state)
    WHERE state IN ('pending', 'running', 'paused', 'rolling_back');

-- Every resolved target of a deployment: its wave (by a stable hash of deployment and
-- device id, fixed at creation) and its progress. state 'waiting' = not yet assigned.
-- A device gets one assignment per artifact of the update that fits its type
-- (assignment_ids); previous_assignment_ids[i] is the assignment assignment_ids[i]
-- superseded ('' when there was none: a first install), the rollback source;
-- rollback_assignment_ids are the assignments RollbackDeployment gave it.
-- No foreign key to deployments: a million-row INSERT would run the referential check
-- once per row (a large share of DeployUpdate's time); rows are only ever written by
-- code that has just created or locked their deployment, and deployments are not deleted.
CREATE TABLE deployment_targets (
    deployment_id    text NOT NULL,
    device_id        text NOT NULL,
    wave             integer NOT NULL,
    state            text NOT NULL DEFAULT 'waiting'
                     CHECK (state IN ('waiting', 'pending', 'downloading', 'verifying',
                                      'applying', 'healthy', 'rolled_back', 'failed',
                                      'cancelled', 'skipped')),
    -- NULL until set (cheaper than empty arrays in a million-row insert).
    assignment_ids   text[],
    previous_assignment_ids text[],
    rollback_assignment_ids text[],
    previous_version text NOT NULL DEFAULT '',
    installed_version text NOT NULL DEFAULT '',
    reason           text NOT NULL DEFAULT '',
    message          text NOT NULL DEFAULT '',
    assigned_at      timestamptz,
    updated_at       timestamptz,
    completed_at     timestamptz,
    PRIMARY KEY (deployment_id, device_id)
);

-- Only the primary key is written when a deployment is created (every further index
-- would cost DeployUpdate about as much again): the engine walks a wave's waiting devices
-- in primary-key order from a cursor. Devices in flight (timeouts, withdrawal) have a
-- partial index, which creation does not touch.
CREATE INDEX deployment_targets_in_flight_idx ON deployment_targets (deployment_id, assigned_at)
    WHERE state IN ('pending', 'downloading', 'verifying', 'applying');

-- Per-wave, per-state counters of a deployment, sharded so concurrent status reports
-- about one deployment do not all wait on one row: a report moves one count between two
-- states of one shard (O(1), whatever the deployment's size); readers sum the shards. A
-- shard's count may be negative (creation writes every count into shard 0); the sum over
-- shards is the number of targets in that wave and state. The extra state
-- 'rollback_pending' counts targets whose rollback assignments have not all ended.
CREATE TABLE deployment_counters (
    deployment_id    text NOT NULL REFERENCES deployments (deployment_id) ON DELETE CASCADE,
    wave             integer NOT NULL,
    shard            smallint NOT NULL,
    state            text NOT NULL,
    count            bigint NOT NULL,
    PRIMARY KEY (deployment_id, wave, shard, state)
);
