-- Upload sessions name who opened them, so sessions can be capped per user as well as
-- per repository; both counts are index lookups.
ALTER TABLE uploads ADD COLUMN owner TEXT NOT NULL DEFAULT '';
CREATE INDEX uploads_by_repository ON uploads (repository);
CREATE INDEX uploads_by_owner ON uploads (owner);

-- DataPacks are cached results, not user data: kept by last use, bounded in number and age.
ALTER TABLE datapacks ADD COLUMN used_at INTEGER NOT NULL DEFAULT 0;
UPDATE datapacks SET used_at = created_at;
CREATE INDEX datapacks_by_use ON datapacks (used_at);
