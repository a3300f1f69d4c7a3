-- The staff roles that must use two-factor sign-in (an admin setting). A staff user of such a
-- role without a confirmed factor is admitted only to enrolment until they have one.
CREATE TABLE staff_mfa_required_roles (
    role   text PRIMARY KEY CHECK (role IN ('admin', 'clinician', 'front_desk')),
    set_at timestamptz NOT NULL DEFAULT now()
);

-- Where a session was opened from (the client address the gateway established), so admins
-- can tell staff sessions apart when they end one.
ALTER TABLE sessions ADD COLUMN address text NOT NULL DEFAULT '';
