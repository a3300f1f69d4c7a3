-- The patients scheduling knows: a projection of identity's patient.registered events (ids
-- only; identity owns the patients). Staff book only for these (servicer.BookAppointment).
CREATE TABLE patients (
    id            uuid PRIMARY KEY,
    registered_at timestamptz NOT NULL DEFAULT now()
);

-- Appointments booked before this rule name their patients; the replayed stream (a new durable
-- consumer starts at the first event) adds every other registration.
INSERT INTO patients (id) SELECT DISTINCT patient_id FROM appointments ON CONFLICT DO NOTHING;
