-- SQLite schema 9, from 8. Version 9: agents. Identity assertion
-- authorization grants (ID-JAG, draft-ietf-oauth-identity-assertion-authz-grant):
-- a trusted issuer whose ID-JAGs Tollgate accepts is marked. Client ID
-- Metadata Documents (draft-ietf-oauth-client-id-metadata-document): what
-- URL clients of each host may get, and the URL clients blocked.
ALTER TABLE federation_issuers ADD COLUMN id_jag INTEGER NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS cimd_hosts (
    host       TEXT PRIMARY KEY,
    scopes     TEXT NOT NULL,
    audiences  TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS cimd_blocks (
    url        TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
);
