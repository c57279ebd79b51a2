-- The TUF repository (fleetd/tuf_repo): every signed metadata version is a row, so all
-- control API replicas serve and extend one repository. Rows are never changed: a new
-- version is a new row (consistent snapshots need every version servable, and clients
-- walking root rotations need every root version). Private keys are never stored here.

CREATE TABLE tuf_metadata (
    role        text NOT NULL CHECK (role ~ '^[a-z][a-z0-9-]{0,63}$'),
    version     integer NOT NULL CHECK (version >= 1),
    body        bytea NOT NULL,
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (role, version)
);

CREATE FUNCTION tuf_metadata_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'tuf_metadata is append-only: publish a new version instead';
END;
$$;

CREATE TRIGGER tuf_metadata_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON tuf_metadata
    FOR EACH STATEMENT EXECUTE FUNCTION tuf_metadata_is_append_only();

-- The targets the online delegated role has signed: which blob (by SHA-256) each target
-- path serves, so GET /tuf/targets/... serves signed targets and nothing else of the blob
-- store (log bundles live there too).
CREATE TABLE tuf_targets (
    path        text PRIMARY KEY,
    sha256      text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    length      bigint NOT NULL CHECK (length >= 0),
    custom      jsonb NOT NULL,
    added_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX tuf_targets_sha256 ON tuf_targets (sha256);
