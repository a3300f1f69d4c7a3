-- The audit log's chain trigger, generated with built-ins only (runtime's
-- 0003_audit_chain_inline.sql): ~0.25 ms of server CPU per row under the chain's lock instead
-- of ~0.75 ms. The fields are audit_log_content()'s (0003_audit_chain.sql), in its order.
SELECT audit_chain_inline('audit_log', ARRAY['id', 'at', 'actor_kind', 'actor_id', 'actor_name',
    'patient_id', 'action', 'outcome', 'source_address', 'detail']);
