-- A cheaper chain trigger, generated per table. The generic audit_chain_append() costs ~0.75 ms
-- of server CPU per row (its dynamic EXECUTE of <table>_content and that SQL function's planning
-- in every transaction), all of it under the chain's lock, so it bounds every audited write.
-- audit_chain_inline(table, fields) writes <table>_chain_append(), which spells the content out
-- with built-ins (~0.25 ms), and makes it the table's trigger. `fields` are the columns
-- <table>_content() covers, in its order: the bytes must be the same, because verification
-- (services/runtime/audit_chain.py) recomputes the hashes with <table>_content(). Each field is
-- audit_chain_field() inlined (4-byte length then UTF-8, or -1 for NULL; all the functions used
-- are strict), a timestamptz in audit_chain_time()'s spelling, anything else as its ::text.
-- 0004_audit_chain_lanes.sql replaces this function with a lane-aware one.
CREATE FUNCTION audit_chain_inline(chained text, fields text[]) RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
    field text;
    field_type regtype;
    value text;
    content text := '';
    mismatched bigint;
BEGIN
    FOREACH field IN ARRAY fields LOOP
        SELECT atttypid::regtype INTO field_type FROM pg_attribute
            WHERE attrelid = chained::regclass AND attname = field AND attnum > 0
              AND NOT attisdropped;
        IF NOT FOUND THEN
            RAISE EXCEPTION '%.% does not exist', chained, field;
        END IF;
        IF field_type = 'timestamptz'::regtype THEN
            value := format('to_char(@row@.%I AT TIME ZONE ''UTC'', ''YYYY-MM-DD"T"HH24:MI:SS.US"Z"'')',
                            field);
        ELSIF field_type IN ('text'::regtype, 'uuid'::regtype, 'bigint'::regtype,
                             'integer'::regtype) THEN
            value := format('@row@.%I::text', field);
        ELSE
            -- Other types have no one obvious spelling: extend this function deliberately.
            RAISE EXCEPTION '%.% has type %, which audit_chain_inline does not spell', chained,
                field, field_type;
        END IF;
        content := content || chr(10) || format(
            '        || coalesce(int4send(octet_length(convert_to(%1$s, ''UTF8''))) '
            '|| convert_to(%1$s, ''UTF8''), ''\xffffffff''::bytea)', value);
    END LOOP;

    -- The same expression over the newest existing rows must give <table>_content()'s bytes:
    -- refuse to install a trigger whose hashes verification would not reproduce.
    EXECUTE format('SELECT count(*) FROM %1$I r '
                   'WHERE id IN (SELECT id FROM %1$I ORDER BY id DESC LIMIT 1000) '
                   'AND (''''::bytea %2$s) IS DISTINCT FROM %3$I(r)',
                   chained, replace(content, '@row@', 'r'), chained || '_content')
        INTO mismatched;
    IF mismatched > 0 THEN
        RAISE EXCEPTION 'audit_chain_inline(%): % rows differ from %_content()', chained,
            mismatched, chained;
    END IF;

    EXECUTE format($f$
CREATE OR REPLACE FUNCTION %1$I() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public AS $body$
DECLARE
    previous bytea;
BEGIN
    SELECT last_hash INTO previous FROM audit_chain_heads WHERE table_name = %3$L FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no audit chain head for %%', %3$L;
    END IF;
    NEW.id := nextval(%4$L::regclass);
    NEW.prev_hash := previous;
    NEW.hash := sha256(previous %5$s);
    UPDATE audit_chain_heads SET last_id = NEW.id, last_hash = NEW.hash WHERE table_name = %3$L;
    RETURN NEW;
END $body$
$f$,
        chained || '_chain_append', chained, chained,
        pg_get_serial_sequence(quote_ident(chained), 'id'), replace(content, '@row@', 'NEW'));

    EXECUTE format('DROP TRIGGER IF EXISTS %1$I ON %2$I', chained || '_chain', chained);
    EXECUTE format('CREATE TRIGGER %1$I BEFORE INSERT ON %2$I FOR EACH ROW EXECUTE FUNCTION %3$I()',
                   chained || '_chain', chained, chained || '_chain_append');
END $fn$;
