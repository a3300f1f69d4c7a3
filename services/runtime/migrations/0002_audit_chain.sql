-- Hash chains over append-only audit tables (identity's audit_log, the access_log of forms and
-- scheduling). Each row stores prev_hash (the previous row's hash; empty for the first row) and
-- hash = sha256(prev_hash || <table>_content(row)), where <table>_content is defined by the
-- service's own migration. Appends are serialized on the table's row here (SELECT … FOR UPDATE
-- until commit), so concurrent inserts never fork the chain, and ids are assigned under that lock
-- so id order is chain order. The head also remembers the last row, so removing rows from the end
-- is noticed too. See services/runtime/audit_chain.py for verification. 0004_audit_chain_lanes.sql
-- splits each table's chain into 8 lanes with a head row each.
CREATE TABLE audit_chain_heads (
    table_name text PRIMARY KEY,
    last_id    bigint NOT NULL DEFAULT 0,
    last_hash  bytea NOT NULL DEFAULT ''::bytea
);

-- One field of a row's canonical content: 4-byte big-endian length then UTF-8 bytes (-1: NULL),
-- so no two different rows share an encoding.
CREATE FUNCTION audit_chain_field(value text) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN value IS NULL THEN '\xffffffff'::bytea
                ELSE int4send(octet_length(convert_to(value, 'UTF8'))) || convert_to(value, 'UTF8')
           END
$$;

-- Timestamps in one spelling whatever the session's TimeZone and DateStyle.
CREATE FUNCTION audit_chain_time(value timestamptz) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT to_char(value AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- BEFORE INSERT FOR EACH ROW on a chained table. SECURITY DEFINER: the service's runtime role
-- may neither read-modify the head nor set the hash columns itself.
CREATE FUNCTION audit_chain_append() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public AS $$
DECLARE
    previous bytea;
    content bytea;
BEGIN
    SELECT last_hash INTO previous FROM audit_chain_heads
        WHERE table_name = TG_TABLE_NAME FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no audit chain head for %', TG_TABLE_NAME;
    END IF;
    NEW.id := nextval(pg_get_serial_sequence(quote_ident(TG_TABLE_NAME), 'id'));
    EXECUTE format('SELECT %I($1)', TG_TABLE_NAME || '_content') INTO content USING NEW;
    NEW.prev_hash := previous;
    NEW.hash := sha256(previous || content);
    UPDATE audit_chain_heads SET last_id = NEW.id, last_hash = NEW.hash
        WHERE table_name = TG_TABLE_NAME;
    RETURN NEW;
END $$;

-- Statement-level BEFORE UPDATE OR DELETE OR TRUNCATE on a chained table: even the owner has to
-- switch this off (ALTER TABLE … DISABLE TRIGGER) to change rows.
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END $$;

-- Used by the services' migrations: chain the rows a table already holds, in id order.
CREATE FUNCTION audit_chain_backfill(chained text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    row_id bigint;
    previous bytea := ''::bytea;
BEGIN
    INSERT INTO audit_chain_heads (table_name) VALUES (chained);
    FOR row_id IN EXECUTE format('SELECT id FROM %I ORDER BY id', chained) LOOP
        EXECUTE format(
            'UPDATE %1$I t SET prev_hash = $1, hash = sha256($1 || %2$I(t)) WHERE id = $2 RETURNING hash',
            chained, chained || '_content')
            INTO previous USING previous, row_id;
        UPDATE audit_chain_heads SET last_id = row_id, last_hash = previous
            WHERE table_name = chained;
    END LOOP;
END $$;
