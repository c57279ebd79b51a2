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
    -- Serialized fleetd.v1.DeploymentConfig, defaults resolved.
    config           bytea NOT NULL,
    device_filter    text NOT NULL DEFAULT '',
    target_device_count integer NOT NULL CHECK (target_device_count >= 0),
    -- Cumulative number of targets once wave i is done; the last equals the count.
    wave_ends        integer[] NOT NULL,
    current_wave     integer NOT NULL DEFAULT 0,
    awaiting_approval boolean NOT NULL DEFAULT false,
    -- When the current wave's devices all reached a terminal state (validation starts).
    wave_settled_at  timestamptz,
    -- Failures an operator acknowledged by resuming after a halt; the failure budget
    -- counts only failures beyond them.
    acknowledged_failures integer NOT NULL DEFAULT 0,
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
CREATE TABLE deployment_targets (
    deployment_id    text NOT NULL REFERENCES deployments (deployment_id) ON DELETE CASCADE,
    device_id        text NOT NULL,
    wave             integer NOT NULL,
    state            text NOT NULL DEFAULT 'waiting'
                     CHECK (state IN ('waiting', 'pending', 'downloading', 'verifying',
                                      'applying', 'healthy', 'rolled_back', 'failed',
                                      'cancelled', 'skipped')),
    assignment_id    text,
    previous_version text NOT NULL DEFAULT '',
    installed_version text NOT NULL DEFAULT '',
    reason           text NOT NULL DEFAULT '',
    message          text NOT NULL DEFAULT '',
    assigned_at      timestamptz,
    updated_at       timestamptz,
    completed_at     timestamptz,
    PRIMARY KEY (deployment_id, device_id)
);

CREATE INDEX deployment_targets_wave_idx ON deployment_targets (deployment_id, wave, state);

-- Per-state counters of a deployment, sharded so concurrent status reports about one
-- deployment do not all wait on one row: a report moves one count between two states
-- of one shard (O(1)); readers sum the shards.
CREATE TABLE deployment_counters (
    deployment_id    text NOT NULL REFERENCES deployments (deployment_id) ON DELETE CASCADE,
    shard            smallint NOT NULL,
    state            text NOT NULL,
    count            integer NOT NULL,
    PRIMARY KEY (deployment_id, shard, state)
);
