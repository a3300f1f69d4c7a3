-- The audit log becomes a hash chain (services/runtime/migrations/0002_audit_chain.sql): rows
-- written so far are chained in id order, new rows by the BEFORE INSERT trigger.
ALTER TABLE audit_log ADD COLUMN prev_hash bytea, ADD COLUMN hash bytea;

-- What a row's hash covers: every column except the two hash columns, in this order.
CREATE FUNCTION audit_log_content(r audit_log) RETURNS bytea LANGUAGE sql STABLE AS $$
    SELECT audit_chain_field(r.id::text)
        || audit_chain_field(audit_chain_time(r.at))
        || audit_chain_field(r.actor_kind)
        || audit_chain_field(r.actor_id)
        || audit_chain_field(r.actor_name)
        || audit_chain_field(r.patient_id::text)
        || audit_chain_field(r.action)
        || audit_chain_field(r.outcome)
        || audit_chain_field(r.source_address)
        || audit_chain_field(r.detail)
$$;

ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only;
SELECT audit_chain_backfill('audit_log');
ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only;
ALTER TABLE audit_log ALTER COLUMN prev_hash SET NOT NULL, ALTER COLUMN hash SET NOT NULL;

CREATE TRIGGER audit_log_chain BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_chain_append();
-- Ids come from the trigger, under the chain's lock (the sequence stays owned by the column).
ALTER TABLE audit_log ALTER COLUMN id DROP DEFAULT;

-- The audit page filters by staff username: the actor ids of one staff user.
CREATE INDEX audit_log_actor_kind ON audit_log (actor_kind, actor_id, id);
