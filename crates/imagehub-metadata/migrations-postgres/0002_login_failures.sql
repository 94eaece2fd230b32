-- Failed password logins per key, shared by replicas (SQLite's 0018_login_failures).
CREATE TABLE login_failures (
    key              TEXT PRIMARY KEY,
    failures         BIGINT NOT NULL,
    last_ms          BIGINT NOT NULL,
    blocked_until_ms BIGINT
);
CREATE INDEX login_failures_last ON login_failures (last_ms);
