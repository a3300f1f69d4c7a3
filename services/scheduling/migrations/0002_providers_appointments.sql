-- Providers, their hours, full appointment types, appointments (no overlap per provider, enforced
-- here), idempotency keys and the access log of patients' appointments.
CREATE TABLE providers (
    id           uuid PRIMARY KEY,
    display_name text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    active       boolean NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Weekly hours in the clinic's time zone as minutes after local midnight (1440 = 24:00, which
-- a time column cannot round-trip); ISO weekday 1 = Monday.
CREATE TABLE working_hours (
    provider_id  uuid NOT NULL REFERENCES providers ON DELETE CASCADE,
    weekday      smallint NOT NULL CHECK (weekday BETWEEN 1 AND 7),
    start_minute smallint NOT NULL CHECK (start_minute BETWEEN 0 AND 1439),
    end_minute   smallint NOT NULL CHECK (end_minute <= 1440 AND start_minute < end_minute),
    PRIMARY KEY (provider_id, weekday, start_minute)
);

-- A date override replaces that date's weekly hours; without ranges the provider is off.
CREATE TABLE date_overrides (
    provider_id uuid NOT NULL REFERENCES providers ON DELETE CASCADE,
    day         date NOT NULL,
    PRIMARY KEY (provider_id, day)
);
CREATE TABLE date_override_ranges (
    provider_id uuid NOT NULL,
    day         date NOT NULL,
    start_minute smallint NOT NULL CHECK (start_minute BETWEEN 0 AND 1439),
    end_minute   smallint NOT NULL CHECK (end_minute <= 1440 AND start_minute < end_minute),
    PRIMARY KEY (provider_id, day, start_minute),
    FOREIGN KEY (provider_id, day) REFERENCES date_overrides ON DELETE CASCADE
);

CREATE TABLE time_off (
    id          uuid PRIMARY KEY,
    provider_id uuid NOT NULL REFERENCES providers ON DELETE CASCADE,
    during      tstzrange NOT NULL CHECK (NOT isempty(during)),
    reason      text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX time_off_provider ON time_off USING gist (provider_id, during);

ALTER TABLE appointment_types RENAME COLUMN portal_bookable TO bookable_online;
ALTER TABLE appointment_types
    ADD COLUMN slot_interval_minutes integer,
    ADD COLUMN buffer_before_minutes integer NOT NULL DEFAULT 0
        CHECK (buffer_before_minutes BETWEEN 0 AND 240),
    ADD COLUMN buffer_after_minutes integer NOT NULL DEFAULT 0
        CHECK (buffer_after_minutes BETWEEN 0 AND 240),
    ADD COLUMN minimum_notice_minutes integer NOT NULL DEFAULT 60
        CHECK (minimum_notice_minutes BETWEEN 0 AND 43200),
    ADD COLUMN horizon_days integer NOT NULL DEFAULT 90 CHECK (horizon_days BETWEEN 1 AND 365),
    ADD COLUMN cancellation_notice_minutes integer NOT NULL DEFAULT 1440
        CHECK (cancellation_notice_minutes BETWEEN 0 AND 43200),
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
UPDATE appointment_types SET slot_interval_minutes = duration_minutes;
ALTER TABLE appointment_types
    ALTER COLUMN slot_interval_minutes SET NOT NULL,
    ADD CONSTRAINT appointment_types_slot_interval CHECK (slot_interval_minutes BETWEEN 5 AND 480);

CREATE TABLE appointment_type_providers (
    appointment_type_id uuid NOT NULL REFERENCES appointment_types ON DELETE CASCADE,
    provider_id         uuid NOT NULL REFERENCES providers ON DELETE CASCADE,
    PRIMARY KEY (appointment_type_id, provider_id)
);
CREATE INDEX appointment_type_providers_provider ON appointment_type_providers (provider_id);

-- FHIR Appointment.status. `blocked` = [start - buffer before, end + buffer after): the time the
-- provider cannot give anyone else. Statuses that hold time may never overlap per provider;
-- cancelled, noshow, entered-in-error, proposed and waitlist release it.
CREATE TABLE appointments (
    id                  uuid PRIMARY KEY,
    patient_id          uuid NOT NULL,
    provider_id         uuid NOT NULL REFERENCES providers,
    appointment_type_id uuid NOT NULL REFERENCES appointment_types,
    starts_at           timestamptz NOT NULL,
    ends_at             timestamptz NOT NULL,
    blocked             tstzrange NOT NULL,
    status              text NOT NULL CHECK (status IN (
        'proposed', 'pending', 'booked', 'arrived', 'fulfilled', 'cancelled', 'noshow',
        'entered-in-error', 'checked-in', 'waitlist')),
    cancellation_reason text NOT NULL DEFAULT '',
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (starts_at < ends_at),
    CHECK (blocked @> tstzrange(starts_at, ends_at)),
    CONSTRAINT appointments_no_overlap EXCLUDE USING gist (provider_id WITH =, blocked WITH &&)
        WHERE (status IN ('pending', 'booked', 'arrived', 'checked-in', 'fulfilled'))
);
CREATE INDEX appointments_patient ON appointments (patient_id, starts_at);
CREATE INDEX appointments_provider ON appointments (provider_id, starts_at);
CREATE INDEX appointments_starts ON appointments (starts_at);

-- Idempotency-Key of a booking, per caller: the same key and body return the same appointment.
CREATE TABLE idempotency_keys (
    caller         text NOT NULL,  -- "<principal kind>:<subject>"
    key            text NOT NULL,
    request_hash   text NOT NULL,
    -- Deferred: the key row is written first, so a concurrent retry with the same key waits.
    appointment_id uuid NOT NULL REFERENCES appointments DEFERRABLE INITIALLY DEFERRED,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (caller, key)
);

-- Every read or change of a patient's appointments: who, which patient, what, when, from where.
CREATE TABLE access_log (
    id             bigserial PRIMARY KEY,
    at             timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor_kind     text NOT NULL,
    actor_id       text NOT NULL,
    actor_name     text NOT NULL DEFAULT '',
    patient_id     uuid NOT NULL,
    appointment_id uuid,
    action         text NOT NULL,
    source_address text NOT NULL DEFAULT ''
);
CREATE INDEX access_log_patient ON access_log (patient_id, at);
