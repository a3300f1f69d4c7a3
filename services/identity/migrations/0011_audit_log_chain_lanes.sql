-- The audit log's chain in 8 lanes (runtime's 0004_audit_chain_lanes.sql): audit_chain_inline()
-- adds chain_lane and the lane heads and regenerates the trigger. Fields as in 0009.
SELECT audit_chain_inline('audit_log', ARRAY['id', 'at', 'actor_kind', 'actor_id', 'actor_name',
    'patient_id', 'action', 'outcome', 'source_address', 'detail']);
