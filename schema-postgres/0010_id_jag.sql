-- Version 10: identity assertion authorization grants (ID-JAG,
-- draft-ietf-oauth-identity-assertion-authz-grant): a trusted issuer whose
-- ID-JAGs Tollgate accepts is marked.
ALTER TABLE federation_issuers ADD COLUMN id_jag BOOLEAN NOT NULL DEFAULT false;
