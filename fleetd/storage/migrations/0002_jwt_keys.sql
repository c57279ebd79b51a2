-- Public halves of the JWT signing keys, shared by every control API replica.
-- Private keys stay in the data directory of the node that mints tokens.

CREATE TABLE jwt_keys (
    kid              text PRIMARY KEY,
    algorithm        text NOT NULL CHECK (algorithm = 'EdDSA'),
    public_key       text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    retired_at       timestamptz
);
