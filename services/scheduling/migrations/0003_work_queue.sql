-- The work queue reads each appointment's latest booking change (book, cancel, reschedule):
-- this partial index holds just those rows of the access log, which mostly records reads.
CREATE INDEX access_log_changes ON access_log (appointment_id, at DESC, id DESC)
    WHERE action IN ('appointment.book', 'appointment.cancel', 'appointment.reschedule');
