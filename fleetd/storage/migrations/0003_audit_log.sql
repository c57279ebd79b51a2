-- Append-only, hash-chained audit log of mutating operator API calls.
-- hash = SHA-256(prev_hash || canonical JSON of the entry); see fleetd/storage/audit.py.

CREATE TABLE audit_log (
    seq              bigint PRIMARY KEY,
    at               timestamptz NOT NULL,
    actor            text NOT NULL,
    actor_kind       text NOT NULL,
    role             text NOT NULL,
    method           text NOT NULL,
    target           text NOT NULL,
    request_id       text NOT NULL,
    outcome          text NOT NULL,
    prev_hash        bytea NOT NULL,
    hash             bytea NOT NULL
);

CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;

CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();
