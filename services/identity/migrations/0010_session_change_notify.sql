-- Gateways cache resolved sessions briefly; identity tells them at once (WatchSessionChanges)
-- when something that sessions.resolve reads changes. These triggers NOTIFY on every such
-- change; PostgreSQL delivers it at commit only (a rolled-back change says nothing) and folds
-- the notifications of one transaction into one.
--
-- What resolve reads: sessions (token_hash, revoked_at, expires_at; last_seen_at is its idle
-- clock, which the gateway already bounds by the session's expiry it was given), staff_users
-- (username, display_name, role, disabled, must_change_password), portal_accounts (patient_id,
-- realm, username, must_change_password), patients (allow_patient_portal), and for
-- mfa_policy.MUST_ENROL the required roles and confirmed staff factors (mfa_totp).
--
-- Updates are row triggers limited to those columns, with WHEN comparing old and new: the
-- frequent writes (last_seen_at touches, failure counters, TOTP steps) never fire them, and a
-- statement that rewrites a value unchanged (UpdateStaffUser's coalesce) flushes nobody.
CREATE FUNCTION sessions_changed_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('portal_sessions_changed', '');
    RETURN NULL;
END $$;

CREATE TRIGGER sessions_changed AFTER UPDATE OF token_hash, revoked_at, expires_at ON sessions
    FOR EACH ROW WHEN (OLD.token_hash IS DISTINCT FROM NEW.token_hash
                       OR OLD.revoked_at IS DISTINCT FROM NEW.revoked_at
                       OR OLD.expires_at IS DISTINCT FROM NEW.expires_at)
    EXECUTE FUNCTION sessions_changed_notify();
CREATE TRIGGER sessions_deleted AFTER DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION sessions_changed_notify();

CREATE TRIGGER staff_users_changed
    AFTER UPDATE OF username, display_name, role, disabled, must_change_password ON staff_users
    FOR EACH ROW WHEN (OLD.username IS DISTINCT FROM NEW.username
                       OR OLD.display_name IS DISTINCT FROM NEW.display_name
                       OR OLD.role IS DISTINCT FROM NEW.role
                       OR OLD.disabled IS DISTINCT FROM NEW.disabled
                       OR OLD.must_change_password IS DISTINCT FROM NEW.must_change_password)
    EXECUTE FUNCTION sessions_changed_notify();
CREATE TRIGGER staff_users_deleted AFTER DELETE ON staff_users
    FOR EACH ROW EXECUTE FUNCTION sessions_changed_notify();

CREATE TRIGGER portal_accounts_changed
    AFTER UPDATE OF patient_id, realm, username, must_change_password ON portal_accounts
    FOR EACH ROW WHEN (OLD.patient_id IS DISTINCT FROM NEW.patient_id
                       OR OLD.realm IS DISTINCT FROM NEW.realm
                       OR OLD.username IS DISTINCT FROM NEW.username
                       OR OLD.must_change_password IS DISTINCT FROM NEW.must_change_password)
    EXECUTE FUNCTION sessions_changed_notify();
CREATE TRIGGER portal_accounts_deleted AFTER DELETE ON portal_accounts
    FOR EACH ROW EXECUTE FUNCTION sessions_changed_notify();

CREATE TRIGGER patients_portal_changed AFTER UPDATE OF allow_patient_portal ON patients
    FOR EACH ROW WHEN (OLD.allow_patient_portal IS DISTINCT FROM NEW.allow_patient_portal)
    EXECUTE FUNCTION sessions_changed_notify();
CREATE TRIGGER patients_deleted AFTER DELETE ON patients
    FOR EACH ROW EXECUTE FUNCTION sessions_changed_notify();

-- A role joining or leaving the two-factor policy (set_required_roles: INSERT … ON CONFLICT DO
-- NOTHING fires only for rows really inserted).
CREATE TRIGGER staff_mfa_required_roles_changed
    AFTER INSERT OR UPDATE OR DELETE ON staff_mfa_required_roles
    FOR EACH ROW EXECUTE FUNCTION sessions_changed_notify();

-- A staff factor confirmed or removed (an unconfirmed one changes nothing resolve says).
CREATE TRIGGER mfa_totp_confirmed AFTER UPDATE OF confirmed_at, owner_kind, owner_id ON mfa_totp
    FOR EACH ROW WHEN (OLD.confirmed_at IS DISTINCT FROM NEW.confirmed_at
                       OR OLD.owner_kind IS DISTINCT FROM NEW.owner_kind
                       OR OLD.owner_id IS DISTINCT FROM NEW.owner_id)
    EXECUTE FUNCTION sessions_changed_notify();
CREATE TRIGGER mfa_totp_inserted AFTER INSERT ON mfa_totp
    FOR EACH ROW WHEN (NEW.confirmed_at IS NOT NULL)
    EXECUTE FUNCTION sessions_changed_notify();
CREATE TRIGGER mfa_totp_deleted AFTER DELETE ON mfa_totp
    FOR EACH ROW WHEN (OLD.confirmed_at IS NOT NULL)
    EXECUTE FUNCTION sessions_changed_notify();

-- Emptying any of them (tests, restores).
CREATE TRIGGER sessions_truncated AFTER TRUNCATE ON sessions
    FOR EACH STATEMENT EXECUTE FUNCTION sessions_changed_notify();
CREATE TRIGGER staff_users_truncated AFTER TRUNCATE ON staff_users
    FOR EACH STATEMENT EXECUTE FUNCTION sessions_changed_notify();
CREATE TRIGGER portal_accounts_truncated AFTER TRUNCATE ON portal_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION sessions_changed_notify();
CREATE TRIGGER patients_truncated AFTER TRUNCATE ON patients
    FOR EACH STATEMENT EXECUTE FUNCTION sessions_changed_notify();
CREATE TRIGGER staff_mfa_required_roles_truncated AFTER TRUNCATE ON staff_mfa_required_roles
    FOR EACH STATEMENT EXECUTE FUNCTION sessions_changed_notify();
CREATE TRIGGER mfa_totp_truncated AFTER TRUNCATE ON mfa_totp
    FOR EACH STATEMENT EXECUTE FUNCTION sessions_changed_notify();
