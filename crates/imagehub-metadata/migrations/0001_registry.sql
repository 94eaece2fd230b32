-- The registry's index: every listing is answered from these tables, never by walking
-- the blob directories. Blob bytes live in the blob store; manifest bytes live here.

CREATE TABLE repositories (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

-- Every blob that was completely written and verified, whichever repository it came from.
CREATE TABLE blobs (
    digest      TEXT PRIMARY KEY,
    size        INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- Which repositories may serve which blobs (pushed or mounted there).
CREATE TABLE repository_blobs (
    repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest        TEXT NOT NULL REFERENCES blobs(digest),
    linked_at     INTEGER NOT NULL,
    PRIMARY KEY (repository_id, digest)
) WITHOUT ROWID;
CREATE INDEX repository_blobs_digest ON repository_blobs(digest);

-- Manifests, stored byte for byte.
CREATE TABLE manifests (
    repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest        TEXT NOT NULL,
    media_type    TEXT NOT NULL,
    artifact_type TEXT,
    subject       TEXT,
    annotations   TEXT,
    content       BLOB NOT NULL,
    pushed_at     INTEGER NOT NULL,
    PRIMARY KEY (repository_id, digest)
) WITHOUT ROWID;
CREATE INDEX manifests_subject ON manifests(repository_id, subject) WHERE subject IS NOT NULL;

-- What each manifest points at (blobs and child manifests), for garbage collection.
CREATE TABLE manifest_references (
    repository_id   INTEGER NOT NULL,
    manifest_digest TEXT NOT NULL,
    child_digest    TEXT NOT NULL,
    child_is_manifest INTEGER NOT NULL,
    PRIMARY KEY (repository_id, manifest_digest, child_digest),
    FOREIGN KEY (repository_id, manifest_digest)
        REFERENCES manifests(repository_id, digest) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX manifest_references_child ON manifest_references(child_digest);

CREATE TABLE tags (
    repository_id INTEGER NOT NULL,
    name          TEXT NOT NULL,
    digest        TEXT NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (repository_id, name),
    FOREIGN KEY (repository_id, digest)
        REFERENCES manifests(repository_id, digest) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX tags_digest ON tags(repository_id, digest);

-- Upload sessions in progress; their bytes are in the blob store's uploads/ directory.
CREATE TABLE uploads (
    id          TEXT PRIMARY KEY,
    repository  TEXT NOT NULL,
    started_at  INTEGER NOT NULL
) WITHOUT ROWID;
