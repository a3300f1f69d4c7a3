-- Transactional outbox: rows are written in the same transaction as the state change they
-- announce and published by the relay in seq order.
CREATE TABLE outbox (
    seq          bigserial PRIMARY KEY,
    id           uuid NOT NULL UNIQUE,
    subject      text NOT NULL,
    aggregate_id text NOT NULL,
    event_type   text NOT NULL,
    payload      bytea NOT NULL,
    trace_headers jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_pending ON outbox (seq) WHERE published_at IS NULL;

-- The relay LISTENs on this channel; NOTIFY is delivered when the writing transaction commits.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('portal_outbox', '');
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- Idempotent consumers: one row per handled event per consumer.
CREATE TABLE inbox (
    consumer   text NOT NULL,
    event_id   uuid NOT NULL,
    subject    text NOT NULL,
    handled_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- Events a consumer gave up on after its maximum deliveries, for operators to inspect and replay.
CREATE TABLE dead_letters (
    id          bigserial PRIMARY KEY,
    consumer    text NOT NULL,
    event_id    text NOT NULL,
    subject     text NOT NULL,
    event_type  text NOT NULL,
    payload     bytea NOT NULL,
    deliveries  integer NOT NULL,
    error       text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
