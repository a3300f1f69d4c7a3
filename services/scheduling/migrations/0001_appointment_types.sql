-- Scheduling: appointment types first; providers, hours and appointments come with booking.
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE appointment_types (
    id               uuid PRIMARY KEY,
    name             text NOT NULL UNIQUE,
    duration_minutes integer NOT NULL CHECK (duration_minutes BETWEEN 5 AND 480),
    portal_bookable  boolean NOT NULL DEFAULT true,
    created_at       timestamptz NOT NULL DEFAULT now()
);
