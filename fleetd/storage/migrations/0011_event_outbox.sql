-- Transactional outbox (docs/events.md, section 2): an event is written in the transaction
-- of the change it describes and relayed to the fleet's Redis stream afterwards, so a
-- committed change always produces its event, and a crash between the two loses nothing.
CREATE TABLE event_outbox (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id     uuid NOT NULL UNIQUE,
    fleet        text NOT NULL,
    type         text NOT NULL,
    device_id    text NOT NULL DEFAULT '',
    occurred_at  timestamptz NOT NULL,
    fields       jsonb NOT NULL DEFAULT '{}'::jsonb,
    relayed_at   timestamptz
);
CREATE INDEX event_outbox_pending_idx ON event_outbox (seq) WHERE relayed_at IS NULL;
CREATE INDEX event_outbox_relayed_idx ON event_outbox (relayed_at) WHERE relayed_at IS NOT NULL;
