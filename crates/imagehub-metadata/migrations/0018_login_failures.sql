-- Failed password logins, counted per key (a user at an address, an address, an
-- account; each key the SHA-256 of which) in the database every replica shares, so
-- the delays they earn hold whichever replica a guesser reaches. The rules are
-- imagehub-core's (login_limiter.rs); rows a failure has not touched for an hour go.
CREATE TABLE login_failures (
    key              TEXT PRIMARY KEY,
    failures         INTEGER NOT NULL,
    last_ms          INTEGER NOT NULL,
    blocked_until_ms INTEGER
);
CREATE INDEX login_failures_last ON login_failures (last_ms);
