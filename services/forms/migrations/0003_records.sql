-- Current medications, refill requests, chart documents and letter templates (issue 9).

-- The chart's current medications, kept by staff; discontinued ones stay for the record.
CREATE TABLE medications (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    patient_id      uuid NOT NULL REFERENCES charts (patient_id),
    name            text NOT NULL CHECK (name <> ''),
    dose            text NOT NULL DEFAULT '',
    instructions    text NOT NULL DEFAULT '',
    added_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    added_by        text NOT NULL DEFAULT '',
    discontinued_at timestamptz,
    discontinued_by text NOT NULL DEFAULT ''
);
CREATE INDEX medications_patient ON medications (patient_id);

-- A refill request is a chart form of kind refill (its answers hold the request as the form
-- asks it); this row holds the request's own fields and the clinic's decision, which the
-- chart form's statuses (completed → accepted) cannot express.
-- Its chart form has origin 'refill': a patient may ask many times (the portal-once rule for
-- consent forms does not apply), and the review queue leaves it to the refill decision.
ALTER TABLE chart_forms DROP CONSTRAINT chart_forms_origin_check,
    ADD CONSTRAINT chart_forms_origin_check
        CHECK (origin IN ('staff', 'portal', 'appointment', 'refill'));

CREATE TABLE refill_requests (
    chart_form_id uuid PRIMARY KEY REFERENCES chart_forms (id),
    patient_id    uuid NOT NULL REFERENCES charts (patient_id),
    medication_id uuid REFERENCES medications (id),
    medication    text NOT NULL CHECK (medication <> ''),
    dose          text NOT NULL DEFAULT '',
    quantity      text NOT NULL DEFAULT '',
    pharmacy      text NOT NULL DEFAULT '',
    note          text NOT NULL DEFAULT '',
    status        text NOT NULL DEFAULT 'requested' CHECK (status IN (
        'requested', 'approved', 'denied', 'needs_appointment', 'withdrawn')),
    decision_note text NOT NULL DEFAULT '',
    decided_by    text NOT NULL DEFAULT '',
    requested_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    decided_at    timestamptz,
    CHECK (status <> 'denied' OR decision_note <> '')
);
CREATE INDEX refill_requests_patient ON refill_requests (patient_id, requested_at DESC);
CREATE INDEX refill_requests_status ON refill_requests (status, requested_at DESC);

-- Letter templates: text with merge fields {patient_name}, {date}, {clinic_name}.
CREATE TABLE letter_templates (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    library_key text UNIQUE,  -- set for templates shipped with the product
    name        text NOT NULL UNIQUE CHECK (name <> ''),
    title       text NOT NULL CHECK (title <> ''),
    body        text NOT NULL CHECK (body <> ''),
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text NOT NULL DEFAULT ''
);

INSERT INTO letter_templates (library_key, name, title, body, created_by) VALUES
('return-to-work', 'Return to work/school', 'Return to work or school',
'{date}

To whom it may concern,

{patient_name} was seen at {clinic_name} and may return to work or school from {date}, without restrictions unless noted below.

Please contact the clinic if you have any questions.

Sincerely,
{clinic_name}', 'library'),
('lab-results-normal', 'Lab results are normal', 'Your lab results',
'{date}

Dear {patient_name},

We are pleased to tell you that the results of your recent laboratory tests are within normal limits. No further action is needed at this time.

If you have any questions, please contact us or send a message through the Patient Portal.

Sincerely,
{clinic_name}', 'library');

-- Documents in a patient's chart: uploads (type sniffed from the bytes) and form letters
-- (the text, and the PDF made from it). Content lives here with its SHA-256.
CREATE TABLE documents (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    patient_id         uuid NOT NULL REFERENCES charts (patient_id),
    category           text NOT NULL CHECK (category IN ('letter', 'report', 'record')),
    title              text NOT NULL CHECK (title <> ''),
    origin             text NOT NULL CHECK (origin IN ('upload', 'letter')),
    content_type       text NOT NULL CHECK (content_type IN (
        'application/pdf', 'image/png', 'image/jpeg', 'image/gif', 'image/webp')),
    content            bytea NOT NULL,
    size               bigint NOT NULL,
    sha256             text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    filename           text NOT NULL DEFAULT '',
    body               text,  -- a letter's text
    template_id        uuid REFERENCES letter_templates (id),
    share_with_patient boolean NOT NULL DEFAULT false,
    created_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    created_by         text NOT NULL DEFAULT '',
    CHECK (size = octet_length(content))
);
CREATE INDEX documents_patient ON documents (patient_id, created_at DESC);

-- The audit names the document a read or change was about.
ALTER TABLE access_log ADD COLUMN document_id uuid;
CREATE INDEX access_log_document ON access_log (document_id, at) WHERE document_id IS NOT NULL;
