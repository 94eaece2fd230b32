-- DataPack specs by name (the hash of the normalised spec); results are computed per
-- caller when asked, so they always reflect the images as they are now.
CREATE TABLE datapacks (
    name        TEXT PRIMARY KEY,
    spec        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;
