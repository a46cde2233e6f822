-- SQLite schema 11, from 10. Version 11: signing keys held in a PKCS#11
-- token. `location` says where the private key is ('file': a PEM file in
-- the keys directory, as every key before; 'pkcs11': the token), and
-- `public_jwk` keeps a token key's public JWK, so that every instance
-- publishes and verifies it, with or without the module.
ALTER TABLE signing_keys ADD COLUMN location TEXT NOT NULL DEFAULT 'file';
ALTER TABLE signing_keys ADD COLUMN public_jwk TEXT;
