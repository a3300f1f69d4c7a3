-- Staff lifecycle: temporary passwords an admin issues, which must change at the next sign-in.
ALTER TABLE staff_users
    ADD COLUMN must_change_password boolean NOT NULL DEFAULT false,
    ADD COLUMN temporary_expires_at timestamptz,
    ADD COLUMN password_changed_at  timestamptz NOT NULL DEFAULT now();

-- Devices that signed in before (OWASP "device cookie"): each has its own failure budget, so
-- an attacker guessing from elsewhere cannot lock the user out of the device they already use.
-- Only the SHA-256 of the random cookie value is stored.
CREATE TABLE trusted_devices (
    id              uuid PRIMARY KEY,
    token_hash      bytea NOT NULL UNIQUE,
    staff_user_id   uuid REFERENCES staff_users (id) ON DELETE CASCADE,
    account_id      uuid REFERENCES portal_accounts (id) ON DELETE CASCADE,
    failed_attempts integer NOT NULL DEFAULT 0,
    lockouts        integer NOT NULL DEFAULT 0,
    locked_until    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    CHECK ((staff_user_id IS NULL) <> (account_id IS NULL))
);
CREATE INDEX trusted_devices_staff ON trusted_devices (staff_user_id);
CREATE INDEX trusted_devices_account ON trusted_devices (account_id);
