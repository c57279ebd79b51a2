-- Binaries uploaded through BinaryService.UploadBinary. The bytes are a content-addressed
-- blob (fleetd/blobs.py); many binaries may share one blob (dedupe). A binary is
-- immutable once stored.

CREATE TABLE binaries (
    binary_id        text PRIMARY KEY,
    sha256           text NOT NULL REFERENCES blobs (sha256),
    size_bytes       bigint NOT NULL CHECK (size_bytes >= 0),
    name             text NOT NULL,
    version          text NOT NULL DEFAULT '',
    platform         text NOT NULL DEFAULT '',
    arch             text NOT NULL DEFAULT '',
    content_type     text NOT NULL DEFAULT 'application/octet-stream',
    description      text NOT NULL DEFAULT '',
    metadata         jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Per-chunk SHA-256 digests (core_ext's manifest), concatenated 32-byte digests of
    -- chunk_size-byte chunks, for resumable and verifiable downloads.
    chunk_size       integer NOT NULL CHECK (chunk_size > 0),
    chunk_digests    bytea NOT NULL,
    uploaded_by      text NOT NULL DEFAULT '',
    uploaded_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX binaries_sha256_idx ON binaries (sha256);
CREATE INDEX binaries_uploaded_idx ON binaries (uploaded_at DESC, binary_id);
