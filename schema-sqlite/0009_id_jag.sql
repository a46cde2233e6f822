-- SQLite schema 9, from 8. Version 9: identity assertion authorization
-- grants (ID-JAG, draft-ietf-oauth-identity-assertion-authz-grant): a
-- trusted issuer whose ID-JAGs Tollgate accepts is marked.
ALTER TABLE federation_issuers ADD COLUMN id_jag INTEGER NOT NULL DEFAULT 0;
