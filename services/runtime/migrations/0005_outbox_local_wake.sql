-- NOTIFY makes every notifying transaction take one database-wide lock from its commit until the
-- end of its WAL flush, so all writers of events committed one at a time (measured: 1.4 booking
-- transactions waiting on it on average, 20% of the booking throughput). A service's own
-- connections announce their events to the relay of their process instead (outbox.py: woken
-- when the connection returns to the pool) and say so with portal.outbox_wake = 'local'; any
-- other writer (psql, tools, another process) still wakes the relays with NOTIFY.
CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('portal.outbox_wake', true) IS DISTINCT FROM 'local' THEN
        PERFORM pg_notify('portal_outbox', '');
    END IF;
    RETURN NULL;
END $$;
