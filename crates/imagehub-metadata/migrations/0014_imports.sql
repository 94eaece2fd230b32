-- Import jobs: copying an image from another registry into a namespace of the hub. A
-- job is queued, then running (leased: a runner that died leaves it due again when the
-- lease ends), and ends succeeded, failed or cancelled. A job waiting to try again
-- (rate limited, upstream down) stays queued with its reason and the time it may run
-- again, so it never shows as failed while it is still going to retry. Upstream
-- credentials are stored sealed (ChaCha20-Poly1305 with a key in the data directory)
-- and cleared when the job ends.
CREATE TABLE import_jobs (
    id                INTEGER PRIMARY KEY,
    namespace         TEXT NOT NULL,
    created_by        TEXT NOT NULL,
    source            TEXT NOT NULL,
    target_repository TEXT NOT NULL,
    target_tag        TEXT,
    platforms         TEXT,
    credentials       BLOB,
    state             TEXT NOT NULL DEFAULT 'queued'
                      CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    reason            TEXT,
    run_after         INTEGER NOT NULL,
    attempts          INTEGER NOT NULL DEFAULT 0,
    digest            TEXT,
    progress          TEXT,
    created_at        INTEGER NOT NULL,
    started_at        INTEGER,
    finished_at       INTEGER
);
CREATE INDEX import_jobs_due ON import_jobs (state, run_after);
CREATE INDEX import_jobs_by_namespace ON import_jobs (namespace, id);
CREATE INDEX import_jobs_by_user ON import_jobs (created_by, id);
