-- Changes to their contact details that patients propose and staff accept or reject.
-- A proposed_* column is NULL when the patient does not ask to change that field ('' clears
-- it); previous_* hold the patient's values of the proposed fields when it was decided.
CREATE TABLE profile_updates (
    id                         uuid PRIMARY KEY,
    patient_id                 uuid NOT NULL REFERENCES patients (id),
    status                     text NOT NULL DEFAULT 'pending'
                               CHECK (status IN ('pending', 'accepted', 'rejected', 'replaced')),
    proposed_address           text,
    proposed_phone             text,
    proposed_email             text,
    proposed_preferred_contact text
                               CHECK (proposed_preferred_contact IN ('', 'email', 'phone', 'mail')),
    previous_address           text,
    previous_phone             text,
    previous_email             text,
    previous_preferred_contact text,
    decision_note              text NOT NULL DEFAULT '',
    decided_by_id              text NOT NULL DEFAULT '',
    decided_by_name            text NOT NULL DEFAULT '',
    replaced_by                uuid REFERENCES profile_updates (id),
    created_at                 timestamptz NOT NULL DEFAULT clock_timestamp(),
    decided_at                 timestamptz,
    CHECK ((status = 'pending') = (decided_at IS NULL)),
    CHECK (num_nonnulls(proposed_address, proposed_phone, proposed_email,
                        proposed_preferred_contact) > 0)
);
-- At most one pending proposal per patient: proposing again replaces it.
CREATE UNIQUE INDEX profile_updates_one_pending ON profile_updates (patient_id)
    WHERE status = 'pending';
CREATE INDEX profile_updates_patient ON profile_updates (patient_id, created_at);
CREATE INDEX profile_updates_status ON profile_updates (status, created_at);
