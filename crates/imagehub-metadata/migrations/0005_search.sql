-- Full-text search over repositories: one row per repository (rowid = repositories.id)
-- holding its name and the details of its latest image. The default tokenizer splits
-- names at '/', '-', '.', '_', so `mysql` finds `labring/mysql-operator`.
CREATE VIRTUAL TABLE repository_search USING fts5(name, keywords, description, docs, tokenize = 'unicode61 remove_diacritics 2');

-- Manifests pushed before indexing existed get indexed (and so searchable) once.
INSERT INTO jobs (kind, repository, digest, run_after, created_at)
SELECT 'index', r.name, m.digest, 0, 0 FROM manifests m JOIN repositories r ON r.id = m.repository_id
WHERE true ON CONFLICT (kind, repository, digest) DO NOTHING;
