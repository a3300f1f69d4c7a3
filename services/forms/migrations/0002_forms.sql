-- The form library, the portal catalog, chart forms with answers, and eSignatures (DESIGN §4).

CREATE TABLE forms (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    library_key     text UNIQUE,  -- set for forms shipped with the product (idempotent seeding)
    kind            text NOT NULL CHECK (kind IN ('consent', 'visit', 'appointment', 'refill')),
    current_version integer NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- A version is editable until answers point at it; from then on (published_at set) it is frozen.
CREATE TABLE form_versions (
    form_id      uuid NOT NULL REFERENCES forms (id),
    version      integer NOT NULL CHECK (version > 0),
    title        text NOT NULL,
    description  text NOT NULL DEFAULT '',
    items        jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text NOT NULL DEFAULT '',
    published_at timestamptz,
    PRIMARY KEY (form_id, version)
);

CREATE FUNCTION form_versions_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.published_at IS NOT NULL THEN
            RAISE EXCEPTION 'form % version % is published and cannot be deleted',
                OLD.form_id, OLD.version USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN OLD;
    END IF;
    IF OLD.published_at IS NOT NULL AND (
        NEW.items IS DISTINCT FROM OLD.items OR NEW.title IS DISTINCT FROM OLD.title
        OR NEW.description IS DISTINCT FROM OLD.description
        OR NEW.published_at IS DISTINCT FROM OLD.published_at
        OR NEW.form_id IS DISTINCT FROM OLD.form_id OR NEW.version IS DISTINCT FROM OLD.version
    ) THEN
        RAISE EXCEPTION 'form % version % is published and cannot change',
            OLD.form_id, OLD.version USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER form_versions_frozen BEFORE UPDATE OR DELETE ON form_versions
    FOR EACH ROW EXECUTE FUNCTION form_versions_frozen();

-- The forms available in the patient portal, in the clinic's order (the admin's Update button).
CREATE TABLE portal_forms (
    form_id  uuid PRIMARY KEY REFERENCES forms (id),
    position integer NOT NULL UNIQUE
);

-- Visit forms per appointment type (scheduling owns the types; forms keeps only the ids).
CREATE TABLE visit_forms (
    appointment_type_id uuid NOT NULL,
    form_id             uuid NOT NULL REFERENCES forms (id),
    position            integer NOT NULL,
    PRIMARY KEY (appointment_type_id, form_id)
);

CREATE TABLE chart_forms (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    patient_id     uuid NOT NULL REFERENCES charts (patient_id),
    form_id        uuid NOT NULL,
    form_version   integer NOT NULL,
    status         text NOT NULL DEFAULT 'not-started' CHECK (status IN (
        'not-started', 'in-progress', 'completed', 'signed', 'accepted', 'returned', 'withdrawn')),
    origin         text NOT NULL CHECK (origin IN ('staff', 'portal', 'appointment')),
    appointment_id uuid,
    due_at         timestamptz,
    answers        jsonb NOT NULL DEFAULT '{}',
    assigned_at    timestamptz NOT NULL DEFAULT now(),
    assigned_by    text NOT NULL DEFAULT '',
    updated_at     timestamptz NOT NULL DEFAULT now(),
    submitted_at   timestamptz,
    reviewed_at    timestamptz,
    reviewed_by    text NOT NULL DEFAULT '',
    return_reason  text NOT NULL DEFAULT '',
    FOREIGN KEY (form_id, form_version) REFERENCES form_versions (form_id, version)
);
CREATE INDEX chart_forms_patient ON chart_forms (patient_id);
-- A consent form reaches a chart through the portal once, however often access is granted.
CREATE UNIQUE INDEX chart_forms_portal_once ON chart_forms (patient_id, form_id)
    WHERE origin = 'portal';
-- An appointment's visit forms are placed once, however often its event is delivered.
CREATE UNIQUE INDEX chart_forms_appointment_once ON chart_forms (appointment_id, form_id)
    WHERE appointment_id IS NOT NULL;
CREATE INDEX chart_forms_review_queue ON chart_forms (submitted_at DESC, id DESC)
    WHERE status IN ('completed', 'signed');

-- The disclosure about signing electronically that a patient agrees to (versioned text).
CREATE TABLE signature_disclosures (
    version    integer PRIMARY KEY,
    text       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO signature_disclosures (version, text) VALUES (1,
'By typing your name and selecting "I agree", you sign this form electronically. Your electronic '
'signature has the same legal effect as a handwritten signature on paper. We record your name as '
'typed, the time, the network address and browser you used, and a fingerprint (SHA-256) of the '
'form and your answers, so that any later change can be detected. You may ask the clinic for a '
'paper copy of this form, or to sign on paper instead, at any time before signing.');

-- Signature records are written once and never changed or removed.
CREATE TABLE signatures (
    chart_form_id          uuid PRIMARY KEY REFERENCES chart_forms (id),
    patient_id             uuid NOT NULL,
    signer_kind            text NOT NULL,
    signer_id              text NOT NULL,
    typed_name             text NOT NULL CHECK (typed_name <> ''),
    signed_at              timestamptz NOT NULL DEFAULT clock_timestamp(),
    source_address         text NOT NULL DEFAULT '',
    user_agent             text NOT NULL DEFAULT '',
    form_id                uuid NOT NULL,
    form_version           integer NOT NULL,
    disclosure_version     integer NOT NULL REFERENCES signature_disclosures (version),
    document_sha256        text NOT NULL CHECK (document_sha256 ~ '^[0-9a-f]{64}$'),
    drawn_signature        bytea,
    drawn_signature_sha256 text NOT NULL DEFAULT ''
);

CREATE FUNCTION signatures_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'signature records cannot be changed or deleted'
        USING ERRCODE = 'integrity_constraint_violation';
END $$;

CREATE TRIGGER signatures_immutable BEFORE UPDATE OR DELETE ON signatures
    FOR EACH ROW EXECUTE FUNCTION signatures_immutable();
CREATE TRIGGER signatures_no_truncate BEFORE TRUNCATE ON signatures
    FOR EACH STATEMENT EXECUTE FUNCTION signatures_immutable();

-- The answers of a signed form are frozen too (the signature's hash covers them).
CREATE FUNCTION chart_forms_signed_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.answers IS DISTINCT FROM OLD.answers OR NEW.form_version IS DISTINCT FROM OLD.form_version)
       AND EXISTS (SELECT 1 FROM signatures WHERE chart_form_id = OLD.id) THEN
        RAISE EXCEPTION 'chart form % is signed; its answers cannot change', OLD.id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER chart_forms_signed_frozen BEFORE UPDATE ON chart_forms
    FOR EACH ROW EXECUTE FUNCTION chart_forms_signed_frozen();

-- Patient-data access audit: which chart form was read or changed, by whom, from where.
ALTER TABLE access_log
    ADD COLUMN chart_form_id uuid,
    ADD COLUMN user_agent text NOT NULL DEFAULT '',
    ADD COLUMN detail text NOT NULL DEFAULT '';
CREATE INDEX access_log_chart_form ON access_log (chart_form_id, at) WHERE chart_form_id IS NOT NULL;
