-- The explore page lists repositories most recently pushed first. Ordering by each
-- repository's max(manifests.pushed_at_ms) read every repository's manifests per page
-- (360 ms with 50,000 repositories); the time of its last push is kept on the repository
-- instead, by triggers, under an index a page walks in order and stops early.
ALTER TABLE repositories ADD COLUMN pushed_at_ms INTEGER NOT NULL DEFAULT 0;
UPDATE repositories SET pushed_at_ms = COALESCE(
    (SELECT max(m.pushed_at_ms) FROM manifests m WHERE m.repository_id = repositories.id), 0);
CREATE INDEX repositories_by_push ON repositories (pushed_at_ms DESC, name);

CREATE TRIGGER repositories_push_insert AFTER INSERT ON manifests BEGIN
    UPDATE repositories SET pushed_at_ms = max(pushed_at_ms, NEW.pushed_at_ms)
    WHERE id = NEW.repository_id;
END;

CREATE TRIGGER repositories_push_update AFTER UPDATE OF pushed_at_ms ON manifests BEGIN
    UPDATE repositories SET pushed_at_ms = max(pushed_at_ms, NEW.pushed_at_ms)
    WHERE id = NEW.repository_id;
END;
