-- Forms keeps a chart per patient registered by identity (ids only; demographics stay there).
CREATE TABLE charts (
    patient_id    uuid PRIMARY KEY,
    portal_access boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE access_log (
    id             bigserial PRIMARY KEY,
    at             timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor_kind     text NOT NULL,
    actor_id       text NOT NULL,
    patient_id     uuid,
    action         text NOT NULL,
    source_address text NOT NULL DEFAULT ''
);
