-- Devices, their certificates, enrolment tokens and API keys.

CREATE TABLE devices (
    device_id        text PRIMARY KEY
                     CHECK (device_id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'),
    fleet            text NOT NULL,
    name             text NOT NULL DEFAULT '',
    device_type      text NOT NULL DEFAULT '',
    version          text NOT NULL DEFAULT '',
    agent_version    text NOT NULL DEFAULT '',
    -- Lower-case DeviceState names: unknown (UNSPECIFIED), online, offline, maintenance,
    -- updating, error, offboarded. Liveness (online/offline) is driven by heartbeats.
    status           text NOT NULL DEFAULT 'unknown',
    metadata         jsonb NOT NULL DEFAULT '{}'::jsonb,
    tags             text[] NOT NULL DEFAULT '{}',
    system_info      jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Latest stats, coalesced from heartbeats about once a second.
    cpu_usage        double precision,
    memory_usage     double precision,
    disk_usage       double precision,
    uptime_seconds   bigint,
    last_seen        timestamptz,
    ip_address       inet,
    registered_at    timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    offboarded_at    timestamptz
);

CREATE INDEX devices_last_seen_idx ON devices (last_seen DESC NULLS LAST, device_id);
CREATE INDEX devices_type_status_idx ON devices (device_type, status);
CREATE INDEX devices_name_idx ON devices (name, device_id);

CREATE TABLE device_certificates (
    serial           text PRIMARY KEY,
    device_id        text NOT NULL REFERENCES devices (device_id) ON DELETE CASCADE,
    fingerprint      text NOT NULL UNIQUE,
    not_before       timestamptz NOT NULL,
    not_after        timestamptz NOT NULL,
    issued_at        timestamptz NOT NULL DEFAULT now(),
    revoked_at       timestamptz,
    revoke_reason    text
);

CREATE INDEX device_certificates_device_idx ON device_certificates (device_id);

CREATE TABLE enrollment_tokens (
    token_id         text PRIMARY KEY,
    secret_hash      bytea NOT NULL,
    fleet            text NOT NULL,
    description      text NOT NULL DEFAULT '',
    max_uses         integer NOT NULL CHECK (max_uses > 0),
    uses             integer NOT NULL DEFAULT 0 CHECK (uses >= 0),
    expires_at       timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    created_by       text NOT NULL DEFAULT '',
    revoked_at       timestamptz,
    CHECK (uses <= max_uses)
);

CREATE TABLE api_keys (
    key_id           text PRIMARY KEY,
    secret_hash      bytea NOT NULL,
    name             text NOT NULL DEFAULT '',
    role             text NOT NULL
                     CHECK (role IN ('admin', 'operator', 'viewer', 'device', 'service')),
    device_id        text REFERENCES devices (device_id) ON DELETE CASCADE,
    created_at       timestamptz NOT NULL DEFAULT now(),
    created_by       text NOT NULL DEFAULT '',
    last_used_at     timestamptz,
    revoked_at       timestamptz,
    CHECK ((role = 'device') = (device_id IS NOT NULL))
);

-- Secrets shared by every control API replica (e.g. the page-token signing key).
CREATE TABLE server_secrets (
    name             text PRIMARY KEY,
    secret           bytea NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
