-- The access log's chain trigger, generated with built-ins only (runtime's
-- 0003_audit_chain_inline.sql): ~0.25 ms of server CPU per row under the chain's lock instead
-- of ~0.75 ms. The fields are access_log_content()'s (0004_access_log_chain.sql), in its order.
SELECT audit_chain_inline('access_log', ARRAY['id', 'at', 'actor_kind', 'actor_id', 'patient_id',
    'action', 'source_address', 'chart_form_id', 'user_agent', 'detail', 'document_id']);
