-- The hub's view of images: base info computed from manifests and configs, detail info
-- by source, and the persisted queue of indexing work.

-- Who pushed a manifest (NULL: an open registry, or pushed before accounts existed).
ALTER TABLE manifests ADD COLUMN pushed_by TEXT;

-- Base info of a manifest, written by the indexing job.
CREATE TABLE image_info (
    repository_id  INTEGER NOT NULL,
    digest         TEXT NOT NULL,
    config_digest  TEXT,
    -- JSON: [{"os", "architecture", "variant"?, "size"}], one entry per platform.
    platforms      TEXT NOT NULL DEFAULT '[]',
    -- Config plus layers; for an index, of its first platform.
    size           INTEGER,
    -- The config's `created`, as written there (RFC 3339).
    created        TEXT,
    -- Why extraction failed, when it did; the image is still served.
    error          TEXT,
    indexed_at     INTEGER NOT NULL,
    PRIMARY KEY (repository_id, digest),
    FOREIGN KEY (repository_id, digest) REFERENCES manifests(repository_id, digest) ON DELETE CASCADE
) WITHOUT ROWID;

-- Detail info by source (edit, push_readme, image_readme, labels) for a repository and
-- a reference. Image-derived sources are kept by digest; user-given ones by the tag or
-- digest they were given for, by name, so details for a tag not pushed yet wait for it.
CREATE TABLE image_details (
    repository  TEXT NOT NULL,
    reference   TEXT NOT NULL,
    source      TEXT NOT NULL CHECK (source IN ('edit', 'push_readme', 'image_readme', 'labels')),
    details     TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (repository, reference, source)
) WITHOUT ROWID;

-- Work done outside requests. A row is claimed by moving `run_after` past a lease, and
-- deleted when done; a crash mid-job leaves the row to be picked up again.
CREATE TABLE jobs (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,
    repository  TEXT NOT NULL,
    digest      TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    run_after   INTEGER NOT NULL,
    last_error  TEXT,
    created_at  INTEGER NOT NULL,
    UNIQUE (kind, repository, digest)
);
CREATE INDEX jobs_due ON jobs(run_after);
