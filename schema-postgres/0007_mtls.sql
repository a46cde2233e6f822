-- Version 7: mutual-TLS client authentication with certificate-bound
-- tokens (RFC 8705 §2.1.2: the registered subject DN or SAN of
-- tls_client_auth; §3.4 tls_client_certificate_bound_access_tokens).
ALTER TABLE clients ADD COLUMN tls_client_auth_subject_dn TEXT;
ALTER TABLE clients ADD COLUMN tls_client_auth_san_dns TEXT;
ALTER TABLE clients ADD COLUMN tls_client_auth_san_uri TEXT;
ALTER TABLE clients ADD COLUMN tls_client_auth_san_ip TEXT;
ALTER TABLE clients ADD COLUMN tls_client_auth_san_email TEXT;
ALTER TABLE clients ADD COLUMN tls_client_certificate_bound_access_tokens BOOLEAN NOT NULL DEFAULT false;
