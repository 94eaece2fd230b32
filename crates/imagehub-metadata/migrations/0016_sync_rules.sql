-- Scheduled sync rules: which tags of an upstream repository to keep copied into a
-- repository of the hub, how often, and each run with what it did per tag. A run only
-- queues imports for tags whose upstream digest changed, as a group of import jobs.
CREATE TABLE sync_rules (
    id                INTEGER PRIMARY KEY,
    namespace         TEXT NOT NULL,
    created_by        TEXT NOT NULL,
    upstream          TEXT NOT NULL,
    target_repository TEXT NOT NULL,
    include_tags      TEXT,
    exclude_tags      TEXT,
    semver            TEXT,
    newest            INTEGER,
    interval_secs     INTEGER,
    cron              TEXT,
    rate_limit_floor  INTEGER,
    credentials       BLOB,
    enabled           INTEGER NOT NULL DEFAULT 1,
    next_run_at       INTEGER NOT NULL,
    created_at        INTEGER NOT NULL,
    CHECK ((interval_secs IS NULL) <> (cron IS NULL))
);
CREATE INDEX sync_rules_due ON sync_rules (enabled, next_run_at);
CREATE INDEX sync_rules_by_namespace ON sync_rules (namespace, id);

CREATE TABLE sync_runs (
    id          INTEGER PRIMARY KEY,
    rule_id     INTEGER NOT NULL REFERENCES sync_rules(id) ON DELETE CASCADE,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    state       TEXT NOT NULL CHECK (state IN ('running', 'done', 'paused', 'failed')),
    reason      TEXT,
    group_id    INTEGER REFERENCES import_groups(id) ON DELETE SET NULL,
    tags        TEXT
);
CREATE INDEX sync_runs_by_rule ON sync_runs (rule_id, id);
