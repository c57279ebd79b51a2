-- A rollback gives devices their previous version back. The previous version's TUF target
-- carries an older release counter, which agents refuse (anti-rollback), so the rollout
-- engine re-signs the previous content under a new target path with a new counter: an
-- explicit, signed "roll forward to the old bits". This records, per deployment, which
-- previous target each rollback assignment points at instead.
CREATE TABLE rollback_targets (
    deployment_id    text NOT NULL REFERENCES deployments (deployment_id) ON DELETE CASCADE,
    from_path        text NOT NULL,
    to_path          text NOT NULL,
    release_counter  bigint NOT NULL CHECK (release_counter >= 1),
    PRIMARY KEY (deployment_id, from_path)
);
