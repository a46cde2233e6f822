-- SQLite schema 4, from 3. Version 4: trusted issuers and the rules that map their tokens to clients (workload identity federation).
CREATE TABLE IF NOT EXISTS federation_issuers (
    id         TEXT PRIMARY KEY,
    issuer     TEXT NOT NULL UNIQUE,
    jwks_uri   TEXT,
    jwks       TEXT,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS federation_rules (
    id         TEXT PRIMARY KEY,
    issuer     TEXT NOT NULL REFERENCES federation_issuers(issuer) ON DELETE CASCADE,
    audience   TEXT NOT NULL,
    subject    TEXT,
    claims     TEXT NOT NULL DEFAULT '{}',
    client_id  TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    scopes     TEXT,
    single_use INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS federation_rules_by_client ON federation_rules(client_id);
