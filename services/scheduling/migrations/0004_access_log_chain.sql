-- The access log becomes append-only and a hash chain, like identity's audit log
-- (services/runtime/migrations/0002_audit_chain.sql).
ALTER TABLE access_log ADD COLUMN prev_hash bytea, ADD COLUMN hash bytea;

-- What a row's hash covers: every column except the two hash columns, in this order.
CREATE FUNCTION access_log_content(r access_log) RETURNS bytea LANGUAGE sql STABLE AS $$
    SELECT audit_chain_field(r.id::text)
        || audit_chain_field(audit_chain_time(r.at))
        || audit_chain_field(r.actor_kind)
        || audit_chain_field(r.actor_id)
        || audit_chain_field(r.actor_name)
        || audit_chain_field(r.patient_id::text)
        || audit_chain_field(r.appointment_id::text)
        || audit_chain_field(r.action)
        || audit_chain_field(r.source_address)
$$;

SELECT audit_chain_backfill('access_log');
ALTER TABLE access_log ALTER COLUMN prev_hash SET NOT NULL, ALTER COLUMN hash SET NOT NULL;

CREATE TRIGGER access_log_chain BEFORE INSERT ON access_log
    FOR EACH ROW EXECUTE FUNCTION audit_chain_append();
-- Ids come from the trigger, under the chain's lock (the sequence stays owned by the column).
ALTER TABLE access_log ALTER COLUMN id DROP DEFAULT;

CREATE TRIGGER access_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON access_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
