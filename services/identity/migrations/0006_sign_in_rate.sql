-- Sign-in attempts per client address in fixed windows (services/identity/rate_limit.py). Kept
-- here rather than in each gateway process so the limit holds across gateway replicas.
CREATE TABLE sign_in_rate (
    address      text PRIMARY KEY,
    window_start timestamptz NOT NULL,
    attempts     integer NOT NULL
);
-- Expired windows are swept oldest first.
CREATE INDEX sign_in_rate_window_start ON sign_in_rate (window_start);
