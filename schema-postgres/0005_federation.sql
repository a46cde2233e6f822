-- Version 5: workload identity federation. Issuers whose JWTs are trusted
-- (keys inline, at jwks_uri, or found by discovery when both are NULL), and
-- the rules that map their tokens to clients. claims is a JSON object of
-- name -> pattern; scopes is space-separated, NULL for the client's own.
-- Writes notify like every other cached table (change `f`).
CREATE TABLE federation_issuers (
    id         TEXT PRIMARY KEY,
    issuer     TEXT NOT NULL UNIQUE,
    jwks_uri   TEXT,
    jwks       TEXT,
    created_at BIGINT NOT NULL
);
CREATE TABLE federation_rules (
    id         TEXT PRIMARY KEY,
    issuer     TEXT NOT NULL REFERENCES federation_issuers(issuer) ON DELETE CASCADE,
    audience   TEXT NOT NULL,
    subject    TEXT,
    claims     TEXT NOT NULL DEFAULT '{}',
    client_id  TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    scopes     TEXT,
    single_use BOOLEAN NOT NULL DEFAULT false,
    created_at BIGINT NOT NULL
);
CREATE INDEX federation_rules_by_client ON federation_rules(client_id);

CREATE TRIGGER federation_issuers_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON federation_issuers FOR EACH STATEMENT EXECUTE FUNCTION tollgate_changed();
CREATE TRIGGER federation_rules_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON federation_rules FOR EACH STATEMENT EXECUTE FUNCTION tollgate_changed();
