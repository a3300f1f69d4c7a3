-- Find Available's reads (calendars.py):
-- * providers.hours_version moves on every change to a provider's weekly hours or date
--   overrides, so each scheduling process can keep the hours it parsed (HoursCache) and know,
--   from the provider row it reads anyway, when they are stale.
-- * Busy time over many providers is read through a GiST index on the blocked range alone (of
--   appointments that hold time): the exclusion constraint's (provider_id, blocked) index
--   answers `provider_id = ANY(<100 ids>)` one id at a time, ten times slower.
ALTER TABLE providers ADD COLUMN hours_version bigint NOT NULL DEFAULT 0;

CREATE FUNCTION bump_hours_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        UPDATE providers SET hours_version = hours_version + 1 WHERE id = OLD.provider_id;
    END IF;
    IF TG_OP <> 'DELETE' AND (TG_OP = 'INSERT' OR NEW.provider_id <> OLD.provider_id) THEN
        UPDATE providers SET hours_version = hours_version + 1 WHERE id = NEW.provider_id;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER working_hours_version AFTER INSERT OR UPDATE OR DELETE ON working_hours
    FOR EACH ROW EXECUTE FUNCTION bump_hours_version();
CREATE TRIGGER date_overrides_version AFTER INSERT OR UPDATE OR DELETE ON date_overrides
    FOR EACH ROW EXECUTE FUNCTION bump_hours_version();
CREATE TRIGGER date_override_ranges_version AFTER INSERT OR UPDATE OR DELETE
    ON date_override_ranges FOR EACH ROW EXECUTE FUNCTION bump_hours_version();

CREATE INDEX appointments_holding_blocked ON appointments USING gist (blocked)
    WHERE status IN ('pending', 'booked', 'arrived', 'checked-in', 'fulfilled');
