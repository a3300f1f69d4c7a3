-- The access log's chain trigger, cheaper: booking writes one access_log row per appointment,
-- and the generic audit_chain_append() cost ~0.6 ms of server CPU per row (its dynamic EXECUTE
-- and the SQL functions of access_log_content, planned again in every transaction), all of it
-- under the chain's lock. This one spells the content out with built-ins only. It must give the
-- same bytes as access_log_content(), which verification recomputes: fields in the same order,
-- each audit_chain_field(), the time as audit_chain_time().
CREATE FUNCTION access_log_chain_append() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public AS $$
DECLARE
    previous bytea;
    id_text text;
    at_text text;
BEGIN
    SELECT last_hash INTO previous FROM audit_chain_heads
        WHERE table_name = 'access_log' FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no audit chain head for access_log';
    END IF;
    NEW.id := nextval('access_log_id_seq');
    NEW.prev_hash := previous;
    -- id and at are never NULL here (at: its default is in NEW already).
    id_text := NEW.id::text;
    at_text := to_char(NEW.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
    NEW.hash := sha256(previous
        || int4send(octet_length(id_text)) || convert_to(id_text, 'UTF8')
        || int4send(octet_length(at_text)) || convert_to(at_text, 'UTF8')
        || CASE WHEN NEW.actor_kind IS NULL THEN '\xffffffff'::bytea
             ELSE int4send(octet_length(convert_to(NEW.actor_kind, 'UTF8')))
                  || convert_to(NEW.actor_kind, 'UTF8') END
        || CASE WHEN NEW.actor_id IS NULL THEN '\xffffffff'::bytea
             ELSE int4send(octet_length(convert_to(NEW.actor_id, 'UTF8')))
                  || convert_to(NEW.actor_id, 'UTF8') END
        || CASE WHEN NEW.actor_name IS NULL THEN '\xffffffff'::bytea
             ELSE int4send(octet_length(convert_to(NEW.actor_name, 'UTF8')))
                  || convert_to(NEW.actor_name, 'UTF8') END
        || CASE WHEN NEW.patient_id::text IS NULL THEN '\xffffffff'::bytea
             ELSE int4send(octet_length(convert_to(NEW.patient_id::text, 'UTF8')))
                  || convert_to(NEW.patient_id::text, 'UTF8') END
        || CASE WHEN NEW.appointment_id::text IS NULL THEN '\xffffffff'::bytea
             ELSE int4send(octet_length(convert_to(NEW.appointment_id::text, 'UTF8')))
                  || convert_to(NEW.appointment_id::text, 'UTF8') END
        || CASE WHEN NEW.action IS NULL THEN '\xffffffff'::bytea
             ELSE int4send(octet_length(convert_to(NEW.action, 'UTF8')))
                  || convert_to(NEW.action, 'UTF8') END
        || CASE WHEN NEW.source_address IS NULL THEN '\xffffffff'::bytea
             ELSE int4send(octet_length(convert_to(NEW.source_address, 'UTF8')))
                  || convert_to(NEW.source_address, 'UTF8') END);
    UPDATE audit_chain_heads SET last_id = NEW.id, last_hash = NEW.hash
        WHERE table_name = 'access_log';
    RETURN NEW;
END $$;

DROP TRIGGER access_log_chain ON access_log;
CREATE TRIGGER access_log_chain BEFORE INSERT ON access_log
    FOR EACH ROW EXECUTE FUNCTION access_log_chain_append();
