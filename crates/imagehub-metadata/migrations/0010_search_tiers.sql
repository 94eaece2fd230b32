-- Search finds a page without scoring every match (see search.rs): the repository's last
-- name component gets its own column, so "the name or its last component starts with the
-- query" is an FTS5 initial-token query, and who may see the repository is matched as
-- tokens (its namespace, hex-encoded into one token, and its effective visibility), so the
-- visibility check needs no join. The prefix index makes short prefixes (`3*`) cheap.
CREATE VIRTUAL TABLE repository_search_tiers USING fts5(
    name, last, keywords, description, docs, namespace, visibility,
    tokenize = 'unicode61 remove_diacritics 2', prefix = '1 2 3'
);

INSERT INTO repository_search_tiers (rowid, name, last, keywords, description, docs, namespace, visibility)
SELECT r.id, r.name, replace(r.name, rtrim(r.name, replace(r.name, '/', '')), ''),
       s.keywords, s.description, s.docs, 'n' || lower(hex(r.namespace)),
       COALESCE(rv.visibility, ns.default_visibility, 'private')
FROM repository_search s JOIN repositories r ON r.id = s.rowid
LEFT JOIN repository_visibility rv ON rv.name = r.name
LEFT JOIN namespaces ns ON ns.name = r.namespace;

DROP TABLE repository_search;
ALTER TABLE repository_search_tiers RENAME TO repository_search;

-- The visibility tokens follow every change of a repository's own setting or of its
-- namespace's default (which counts for repositories without their own).
CREATE TRIGGER repository_search_visibility_insert AFTER INSERT ON repository_visibility BEGIN
    UPDATE repository_search SET visibility = NEW.visibility
    WHERE rowid = (SELECT id FROM repositories WHERE name = NEW.name);
END;

CREATE TRIGGER repository_search_visibility_update AFTER UPDATE OF visibility ON repository_visibility BEGIN
    UPDATE repository_search SET visibility = NEW.visibility
    WHERE rowid = (SELECT id FROM repositories WHERE name = NEW.name);
END;

CREATE TRIGGER repository_search_visibility_delete AFTER DELETE ON repository_visibility BEGIN
    UPDATE repository_search SET visibility = (
        SELECT COALESCE(ns.default_visibility, 'private') FROM repositories r
        LEFT JOIN namespaces ns ON ns.name = r.namespace WHERE r.name = OLD.name)
    WHERE rowid = (SELECT id FROM repositories WHERE name = OLD.name);
END;

CREATE TRIGGER repository_search_namespace_insert AFTER INSERT ON namespaces BEGIN
    UPDATE repository_search SET visibility = NEW.default_visibility
    WHERE rowid IN (SELECT r.id FROM repositories r WHERE r.namespace = NEW.name
                    AND NOT EXISTS (SELECT 1 FROM repository_visibility rv WHERE rv.name = r.name));
END;

CREATE TRIGGER repository_search_namespace_update AFTER UPDATE OF default_visibility ON namespaces BEGIN
    UPDATE repository_search SET visibility = NEW.default_visibility
    WHERE rowid IN (SELECT r.id FROM repositories r WHERE r.namespace = NEW.name
                    AND NOT EXISTS (SELECT 1 FROM repository_visibility rv WHERE rv.name = r.name));
END;

CREATE TRIGGER repository_search_namespace_delete AFTER DELETE ON namespaces BEGIN
    UPDATE repository_search SET visibility = 'private'
    WHERE rowid IN (SELECT r.id FROM repositories r WHERE r.namespace = OLD.name
                    AND NOT EXISTS (SELECT 1 FROM repository_visibility rv WHERE rv.name = r.name));
END;

-- A repository's search row goes with it, whoever deletes it.
CREATE TRIGGER repository_search_repository_delete AFTER DELETE ON repositories BEGIN
    DELETE FROM repository_search WHERE rowid = OLD.id;
END;
