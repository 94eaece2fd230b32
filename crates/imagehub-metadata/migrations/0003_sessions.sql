-- Registry and refresh tokens issued before this time (Unix seconds) no longer stand for
-- the user: changing the password ends every session made with the old one.
ALTER TABLE users ADD COLUMN sessions_valid_after INTEGER NOT NULL DEFAULT 0;
