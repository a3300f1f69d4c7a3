-- A patient cannot be in two places at once: appointments that hold time may not overlap per
-- patient, whichever providers they are with (their own times: buffers are the provider's).
-- The booking's statement (appointments.BOOK) checks it as it checks the provider's time, so
-- two bookings racing for one patient cannot both win.
--
-- Overlaps booked before this rule stay as they are (`overlap_allowed`) instead of failing the
-- upgrade; staff resolve them in the calendar, and moving such an appointment clears the mark.
ALTER TABLE appointments ADD COLUMN overlap_allowed boolean NOT NULL DEFAULT false;

UPDATE appointments a SET overlap_allowed = true
WHERE a.status IN ('pending', 'booked', 'arrived', 'checked-in', 'fulfilled')
  AND EXISTS (
      SELECT 1 FROM appointments b
      WHERE b.patient_id = a.patient_id AND b.id <> a.id
        AND b.status IN ('pending', 'booked', 'arrived', 'checked-in', 'fulfilled')
        AND tstzrange(b.starts_at, b.ends_at) && tstzrange(a.starts_at, a.ends_at));

ALTER TABLE appointments ADD CONSTRAINT appointments_patient_no_overlap
    EXCLUDE USING gist (patient_id WITH =, tstzrange(starts_at, ends_at) WITH &&)
    WHERE (status IN ('pending', 'booked', 'arrived', 'checked-in', 'fulfilled')
           AND NOT overlap_allowed);
