-- The client's User-Agent at sign-in (at most 256 characters), so admins can tell a staff
-- user's sessions apart when they end one. Empty for sessions from before it was recorded.
ALTER TABLE sessions ADD COLUMN user_agent text NOT NULL DEFAULT '';
