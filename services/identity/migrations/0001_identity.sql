-- Identity: staff users, the patient registry, portal accounts per realm, sessions, audit log.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE staff_users (
    id              uuid PRIMARY KEY,
    username        text NOT NULL,
    display_name    text NOT NULL,
    role            text NOT NULL CHECK (role IN ('admin', 'clinician', 'front_desk')),
    password_hash   text NOT NULL,
    failed_attempts integer NOT NULL DEFAULT 0,
    lockouts        integer NOT NULL DEFAULT 0,
    locked_until    timestamptz,
    disabled        boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX staff_users_username ON staff_users (lower(username));

CREATE SEQUENCE chart_numbers START 100001;

CREATE TABLE patients (
    id                   uuid PRIMARY KEY,
    chart_number         text NOT NULL UNIQUE DEFAULT nextval('chart_numbers')::text,
    first_name           text NOT NULL,
    middle_name          text NOT NULL DEFAULT '',
    last_name            text NOT NULL,
    date_of_birth        date NOT NULL,
    sex                  text NOT NULL CHECK (sex IN ('female', 'male', 'other', 'unknown')),
    email                text NOT NULL DEFAULT '',
    phone                text NOT NULL DEFAULT '',
    address              text NOT NULL DEFAULT '',
    allow_patient_portal boolean NOT NULL DEFAULT false,
    preferred_contact    text NOT NULL DEFAULT '' CHECK (preferred_contact IN ('', 'email', 'phone', 'mail')),
    allow_email          boolean NOT NULL DEFAULT false,
    allow_sms            boolean NOT NULL DEFAULT false,
    allow_voice          boolean NOT NULL DEFAULT false,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX patients_dob ON patients (date_of_birth);
CREATE INDEX patients_identity ON patients (lower(first_name), lower(last_name), date_of_birth);

-- Name search: every word of a patient's names is a term. Queries match their words against the
-- (small) vocabulary of distinct terms with trigrams, typo-tolerantly, then take the patients
-- holding those terms from an index that also carries the sort key: no scan of patients.
CREATE TABLE name_terms (term text PRIMARY KEY);
CREATE INDEX name_terms_trgm ON name_terms USING gin (term gin_trgm_ops);

CREATE TABLE patient_name_terms (
    term       text NOT NULL,
    patient_id uuid NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
    sort_name  text NOT NULL,
    PRIMARY KEY (term, patient_id) INCLUDE (sort_name)
);
CREATE INDEX patient_name_terms_patient ON patient_name_terms (patient_id);

CREATE FUNCTION patients_index_name() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM patient_name_terms WHERE patient_id = NEW.id;
    INSERT INTO patient_name_terms (term, patient_id, sort_name)
        SELECT DISTINCT w, NEW.id, lower(NEW.last_name || ' ' || NEW.first_name)
        FROM regexp_split_to_table(
            lower(NEW.first_name || ' ' || NEW.middle_name || ' ' || NEW.last_name),
            '[^[:alpha:]]+') AS w
        WHERE w <> '';
    INSERT INTO name_terms (term)
        SELECT term FROM patient_name_terms WHERE patient_id = NEW.id
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER patients_index_name
    AFTER INSERT OR UPDATE OF first_name, middle_name, last_name ON patients
    FOR EACH ROW EXECUTE FUNCTION patients_index_name();

CREATE TABLE portal_accounts (
    id                    uuid PRIMARY KEY,
    patient_id            uuid NOT NULL REFERENCES patients (id),
    realm                 text NOT NULL CHECK (realm IN ('onsite', 'offsite')),
    username              text NOT NULL,
    password_hash         text NOT NULL,
    must_change_password  boolean NOT NULL DEFAULT true,
    temporary_expires_at  timestamptz,
    failed_attempts       integer NOT NULL DEFAULT 0,
    lockouts              integer NOT NULL DEFAULT 0,
    locked_until          timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    password_changed_at   timestamptz NOT NULL DEFAULT now(),
    last_sign_in_at       timestamptz,
    UNIQUE (patient_id, realm)
);
CREATE UNIQUE INDEX portal_accounts_username ON portal_accounts (lower(username));

CREATE TABLE sessions (
    id            uuid PRIMARY KEY,
    token_hash    bytea NOT NULL UNIQUE,
    kind          text NOT NULL CHECK (kind IN ('staff', 'patient')),
    staff_user_id uuid REFERENCES staff_users (id),
    account_id    uuid REFERENCES portal_accounts (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    CHECK ((kind = 'staff') = (staff_user_id IS NOT NULL)),
    CHECK ((kind = 'patient') = (account_id IS NOT NULL))
);
CREATE INDEX sessions_account ON sessions (account_id) WHERE revoked_at IS NULL;
CREATE INDEX sessions_staff ON sessions (staff_user_id) WHERE revoked_at IS NULL;

-- Append-only: every read or write of patient data and every authentication event.
CREATE TABLE audit_log (
    id             bigserial PRIMARY KEY,
    at             timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor_kind     text NOT NULL,
    actor_id       text NOT NULL DEFAULT '',
    actor_name     text NOT NULL DEFAULT '',
    patient_id     uuid,
    action         text NOT NULL,
    outcome        text NOT NULL DEFAULT 'ok',
    source_address text NOT NULL DEFAULT '',
    detail         text NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_patient ON audit_log (patient_id, id);
CREATE INDEX audit_log_actor ON audit_log (actor_id, id);
CREATE INDEX audit_log_action ON audit_log (action, id);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
