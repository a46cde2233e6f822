-- Version 10: agents. Identity assertion authorization grants (ID-JAG,
-- draft-ietf-oauth-identity-assertion-authz-grant): a trusted issuer whose
-- ID-JAGs Tollgate accepts is marked. Client ID Metadata Documents
-- (draft-ietf-oauth-client-id-metadata-document): what URL clients of each
-- host may get, and the URL clients blocked.
ALTER TABLE federation_issuers ADD COLUMN id_jag BOOLEAN NOT NULL DEFAULT false;
CREATE TABLE cimd_hosts (
    host       TEXT PRIMARY KEY,
    scopes     TEXT NOT NULL,
    audiences  TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE cimd_blocks (
    url        TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);
-- A change to either reaches every instance's federation snapshot.
CREATE TRIGGER cimd_hosts_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON cimd_hosts FOR EACH STATEMENT EXECUTE FUNCTION tollgate_changed();
CREATE TRIGGER cimd_blocks_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON cimd_blocks FOR EACH STATEMENT EXECUTE FUNCTION tollgate_changed();
