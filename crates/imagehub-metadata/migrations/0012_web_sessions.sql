-- Web UI sessions: the cookie holds a random secret, the table its SHA-256 (a leaked
-- database opens no session), the user, and the CSRF token every form of the session
-- must carry. A session ends at logout, when idle too long, at its absolute age, and
-- when its user changes password (users.sessions_valid_after).
CREATE TABLE web_sessions (
    secret_hash  TEXT PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    client       TEXT
) WITHOUT ROWID;
CREATE INDEX web_sessions_by_user ON web_sessions (user_id);
