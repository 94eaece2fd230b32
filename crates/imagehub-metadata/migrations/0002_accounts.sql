-- Accounts: users and organizations (one namespace of names), memberships, repository
-- visibility, access tokens and the audit log.

-- Every user and every organization owns the namespace of its name: `alice/app`
-- belongs to the user alice, `acme/app` to the organization acme.
CREATE TABLE namespaces (
    name                TEXT PRIMARY KEY,
    kind                TEXT NOT NULL CHECK (kind IN ('user', 'org')),
    -- Visibility a repository takes when it is first pushed here.
    default_visibility  TEXT NOT NULL DEFAULT 'private' CHECK (default_visibility IN ('public', 'private')),
    description         TEXT NOT NULL DEFAULT '',
    created_at          INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE REFERENCES namespaces(name) ON DELETE CASCADE,
    email         TEXT,
    -- argon2id PHC string; NULL for users who log in through htpasswd or the webhook.
    password_hash TEXT,
    source        TEXT NOT NULL CHECK (source IN ('local', 'htpasswd', 'webhook')),
    is_admin      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);

CREATE TABLE org_members (
    org       TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE,
    user_id   INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role      TEXT NOT NULL CHECK (role IN ('owner', 'developer', 'viewer')),
    added_at  INTEGER NOT NULL,
    PRIMARY KEY (org, user_id)
) WITHOUT ROWID;
CREATE INDEX org_members_user ON org_members(user_id);

-- Set when a repository is first created in a namespace (from its default) or changed
-- by an owner; kept by name, so a repository emptied and pushed again keeps it.
CREATE TABLE repository_visibility (
    name        TEXT PRIMARY KEY,
    visibility  TEXT NOT NULL CHECK (visibility IN ('public', 'private'))
) WITHOUT ROWID;

ALTER TABLE repositories ADD COLUMN namespace TEXT
    GENERATED ALWAYS AS (CASE WHEN instr(name, '/') > 0 THEN substr(name, 1, instr(name, '/') - 1) END) VIRTUAL;
CREATE INDEX repositories_namespace ON repositories(namespace, name);

CREATE TABLE access_tokens (
    id            INTEGER PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    -- Hex SHA-256 of the secret; the secret itself is shown once and never stored.
    secret_hash   TEXT NOT NULL UNIQUE,
    actions       TEXT NOT NULL,
    -- JSON array of namespace names, NULL for all.
    namespaces    TEXT,
    expires_at    INTEGER,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    UNIQUE (user_id, name)
);

CREATE TABLE audit_events (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    actor      TEXT,
    action     TEXT NOT NULL,
    -- The namespace concerned, so organization owners can read their part.
    namespace  TEXT,
    target     TEXT,
    client     TEXT,
    detail     TEXT
);
CREATE INDEX audit_events_namespace ON audit_events(namespace, id);
