-- Version 4: client authentication methods and keys (RFC 7591 §2:
-- token_endpoint_auth_method, jwks, jwks_uri) for private_key_jwt, and the
-- client assertions already used (RFC 7523 §3 item 7), shared by the fleet.
ALTER TABLE clients ADD COLUMN token_endpoint_auth_method TEXT NOT NULL
    DEFAULT 'client_secret_basic';
ALTER TABLE clients ADD COLUMN jwks TEXT;
ALTER TABLE clients ADD COLUMN jwks_uri TEXT;

CREATE TABLE assertion_jtis (
    client_id  TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);
