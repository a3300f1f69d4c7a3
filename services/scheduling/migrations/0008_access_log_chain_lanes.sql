-- The access log's chain in 8 lanes (runtime's 0004_audit_chain_lanes.sql): audit_chain_inline()
-- adds chain_lane and the lane heads and regenerates the trigger. Fields as in 0006.
SELECT audit_chain_inline('access_log', ARRAY['id', 'at', 'actor_kind', 'actor_id', 'actor_name',
    'patient_id', 'appointment_id', 'action', 'source_address']);
