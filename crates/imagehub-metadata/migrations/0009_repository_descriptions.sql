-- A repository's own description, set by its owners; kept by name like its visibility.
CREATE TABLE repository_descriptions (
    name         TEXT PRIMARY KEY,
    description  TEXT NOT NULL
) WITHOUT ROWID;
