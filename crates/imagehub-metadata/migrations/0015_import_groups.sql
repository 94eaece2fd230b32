-- A batch import: one group of jobs, each with its own state, progress and reason; the
-- group's state is read from its jobs (it succeeds partially when some fail).
CREATE TABLE import_groups (
    id         INTEGER PRIMARY KEY,
    namespace  TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
ALTER TABLE import_jobs ADD COLUMN group_id INTEGER REFERENCES import_groups(id) ON DELETE CASCADE;
CREATE INDEX import_jobs_by_group ON import_jobs (group_id, id);
