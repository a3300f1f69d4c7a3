-- Two-factor sign-in (TOTP). One factor per staff user or portal account (owner_kind says which
-- table owner_id points into). last_step: the last time step used, so a code works only once.
CREATE TABLE mfa_totp (
    owner_kind text NOT NULL CHECK (owner_kind IN ('staff', 'patient')),
    owner_id uuid NOT NULL,
    secret text NOT NULL,
    confirmed_at timestamptz,
    last_step bigint NOT NULL DEFAULT 0,
    -- Rate limit of code checks: failures within the current window.
    failures int NOT NULL DEFAULT 0,
    failures_since timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner_kind, owner_id)
);

-- Single-use recovery codes, stored as SHA-256 (they are random, 50 bits: no slow hash needed).
CREATE TABLE mfa_recovery_codes (
    owner_kind text NOT NULL,
    owner_id uuid NOT NULL,
    code_hash bytea NOT NULL,
    used_at timestamptz,
    PRIMARY KEY (owner_kind, owner_id, code_hash),
    FOREIGN KEY (owner_kind, owner_id) REFERENCES mfa_totp ON DELETE CASCADE
);

-- The first step of a sign-in with a second factor: a short-lived challenge (its hash).
CREATE TABLE mfa_challenges (
    challenge_hash bytea PRIMARY KEY,
    owner_kind text NOT NULL,
    owner_id uuid NOT NULL,
    expires_at timestamptz NOT NULL,
    attempts int NOT NULL DEFAULT 0
);
CREATE INDEX mfa_challenges_expires ON mfa_challenges (expires_at);
