-- Manifest pulls per image (by digest); a repository's count is the sum. Counted in
-- memory and added here in batches, so pulls never wait on a database write.
CREATE TABLE pull_counts (
    repository  TEXT NOT NULL,
    digest      TEXT NOT NULL,
    count       INTEGER NOT NULL,
    PRIMARY KEY (repository, digest)
) WITHOUT ROWID;
