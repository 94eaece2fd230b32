-- Build jobs: a cluster image built from the recipes repository the operator
-- configured (seed 003) and pushed into the build organization. A job is queued, then
-- running (leased: a runner that died leaves it due again), and ends succeeded, failed
-- or cancelled, with a reason a person can read. The log keeps what the build printed,
-- bounded by the runner; `platform_digests` is a JSON object of platform to digest.
CREATE TABLE build_jobs (
    id               INTEGER PRIMARY KEY,
    app              TEXT NOT NULL,
    version          TEXT NOT NULL,
    platforms        TEXT NOT NULL,
    repository       TEXT NOT NULL,
    tag              TEXT NOT NULL,
    created_by       TEXT NOT NULL,
    origin           TEXT NOT NULL,
    state            TEXT NOT NULL DEFAULT 'queued'
                     CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    reason           TEXT,
    digest           TEXT,
    platform_digests TEXT,
    log              TEXT NOT NULL DEFAULT '',
    run_after        INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER
);
CREATE INDEX build_jobs_due ON build_jobs (state, run_after);
