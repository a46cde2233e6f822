-- SQLite schema 6, from 5. Version 6: mutual-TLS client authentication and certificate-bound tokens (RFC 8705 §2.1.2, §3.4).
ALTER TABLE clients ADD COLUMN tls_client_auth_subject_dn TEXT;
ALTER TABLE clients ADD COLUMN tls_client_auth_san_dns TEXT;
ALTER TABLE clients ADD COLUMN tls_client_auth_san_uri TEXT;
ALTER TABLE clients ADD COLUMN tls_client_auth_san_ip TEXT;
ALTER TABLE clients ADD COLUMN tls_client_auth_san_email TEXT;
ALTER TABLE clients ADD COLUMN tls_client_certificate_bound_access_tokens INTEGER NOT NULL DEFAULT 0;
