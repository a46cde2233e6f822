-- Tollgate's SQLite schema. Applied at start-up by src/store/sqlite.rs and
-- versioned with PRAGMA user_version. All times are Unix seconds (UTC).

CREATE TABLE IF NOT EXISTS clients (
    id                    TEXT PRIMARY KEY,
    name                  TEXT NOT NULL,
    owner                 TEXT,
    scopes                TEXT NOT NULL,          -- space-separated scope tokens
    audiences             TEXT NOT NULL,          -- JSON array; the first is the default
    token_ttl             INTEGER,                -- NULL: the server default
    disabled              INTEGER NOT NULL DEFAULT 0,
    tokens_revoked_before INTEGER,                -- tokens with iat <= this are inactive
    token_quota           INTEGER,                -- tokens per window; NULL: server default, 0: none
    quota_window          INTEGER,                -- seconds; NULL: server default
    quota_ban             INTEGER,                -- seconds; NULL: server default
    token_endpoint_auth_method TEXT NOT NULL DEFAULT 'client_secret_basic', -- RFC 7591
    jwks                  TEXT,                   -- JSON JWK Set (public keys), private_key_jwt
    jwks_uri              TEXT,                   -- where the client publishes its keys
    dpop_bound_access_tokens INTEGER NOT NULL DEFAULT 0, -- RFC 9449 §5.2
    tls_client_auth_subject_dn TEXT,              -- RFC 8705 §2.1.2: one of these five
    tls_client_auth_san_dns TEXT,
    tls_client_auth_san_uri TEXT,
    tls_client_auth_san_ip TEXT,
    tls_client_auth_san_email TEXT,
    tls_client_certificate_bound_access_tokens INTEGER NOT NULL DEFAULT 0, -- RFC 8705 §3.4
    token_exchange        TEXT,                   -- JSON: RFC 8693 exchange policy; NULL: none
    claims                TEXT,                   -- JSON object: extra claims of its tokens; NULL: none
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL
);

-- Client secrets, stored only as SHA-256 digests. Several live during a rotation.
CREATE TABLE IF NOT EXISTS client_secrets (
    id         INTEGER PRIMARY KEY,
    client_id  TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    digest     BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER                            -- NULL: no expiry
);
CREATE INDEX IF NOT EXISTS client_secrets_by_client ON client_secrets(client_id);

-- API keys, stored only as SHA-256 digests.
CREATE TABLE IF NOT EXISTS api_keys (
    id           TEXT PRIMARY KEY,
    client_id    TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    name         TEXT,
    digest       BLOB NOT NULL UNIQUE,
    prefix       TEXT NOT NULL,
    last4        TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    last_used_at INTEGER,
    revoked_at   INTEGER
);
CREATE INDEX IF NOT EXISTS api_keys_by_client ON api_keys(client_id);

-- Revoked access tokens, remembered by jti until they expire (RFC 7009).
-- Client assertions already used (RFC 7523 §3 item 7), until they expire:
-- a replayed private_key_jwt assertion is refused, across restarts.
CREATE TABLE IF NOT EXISTS assertion_jtis (
    client_id  TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (client_id, jti)
);

CREATE TABLE IF NOT EXISTS revoked_tokens (
    jti        TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS revoked_tokens_by_expiry ON revoked_tokens(expires_at);

-- Signing-key lifecycle; the private keys are PEM files in the keys directory.
CREATE TABLE IF NOT EXISTS signing_keys (
    kid          TEXT PRIMARY KEY,
    alg          TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    activates_at INTEGER NOT NULL,
    retired_at   INTEGER,
    compromised_at INTEGER,         -- set: out of the JWKS, no token it signed is active
    location     TEXT NOT NULL DEFAULT 'file', -- 'file' (keys dir) or 'pkcs11' (an HSM token)
    public_jwk   TEXT                -- JSON: the public JWK of a PKCS#11 key; NULL for a file key
);

-- Who did what, when, to what. Never holds a secret.
CREATE TABLE IF NOT EXISTS audit_log (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     INTEGER NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    detail TEXT NOT NULL DEFAULT '{}'
);

-- One row that readiness checks write to, to see whether the database takes
-- writes (a full disk, a read-only file). Not a change for the caches.
CREATE TABLE IF NOT EXISTS write_probe (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL
);

-- Workload identity federation: issuers whose JWTs are trusted (keys inline,
-- at jwks_uri, or found by discovery when both are NULL), and the rules that
-- map their tokens to clients. claims is a JSON object of name -> pattern;
-- scopes is space-separated, NULL for the client's own.
CREATE TABLE IF NOT EXISTS federation_issuers (
    id         TEXT PRIMARY KEY,
    issuer     TEXT NOT NULL UNIQUE,
    jwks_uri   TEXT,
    jwks       TEXT,
    created_at INTEGER NOT NULL,
    id_jag     INTEGER NOT NULL DEFAULT 0       -- its ID-JAGs are accepted (agents)
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

-- The web console: login links and the sessions they become. Only digests
-- of the link and of the session cookie are kept.
CREATE TABLE IF NOT EXISTS console_sessions (
    id              TEXT PRIMARY KEY,
    created_by      TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    link_digest     BLOB UNIQUE,
    link_expires_at INTEGER NOT NULL,
    session_digest  BLOB UNIQUE,
    opened_at       INTEGER,
    last_seen_at    INTEGER,
    revoked_at      INTEGER
);
-- The console searches clients by part of the id or name: a covering index
-- walked in id order, without reading the rows.
CREATE INDEX IF NOT EXISTS clients_by_id_name ON clients(id, name);
-- The console filters the audit log by actor, action and target.
CREATE INDEX IF NOT EXISTS audit_log_by_actor ON audit_log(actor, id);
CREATE INDEX IF NOT EXISTS audit_log_by_action ON audit_log(action, id);
CREATE INDEX IF NOT EXISTS audit_log_by_target ON audit_log(target, id);

-- Client ID Metadata Documents: what URL clients of a host may get (an
-- admin's decision), and URL clients blocked.
CREATE TABLE IF NOT EXISTS cimd_hosts (
    host       TEXT PRIMARY KEY,                -- a host name, or *.suffix
    scopes     TEXT NOT NULL,                   -- space-separated
    audiences  TEXT NOT NULL,                   -- JSON array; the first is the default
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS cimd_blocks (
    url        TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
);
-- Shared Signals (SSF 1.0): receivers' streams, and the SETs stored for
-- each until delivered (push) or acknowledged (poll).
CREATE TABLE IF NOT EXISTS ssf_streams (
    id                   TEXT PRIMARY KEY,          -- ss_…
    client_id            TEXT NOT NULL,             -- the receiver, and the SETs' aud
    description          TEXT,
    delivery_method      TEXT NOT NULL,             -- urn:ietf:rfc:8935 (push) or 8936 (poll)
    endpoint_url         TEXT,                      -- push: the receiver's URL
    authorization_header TEXT,                      -- push: sent as Authorization (the receiver's credential)
    events_requested     TEXT NOT NULL,             -- JSON array of event type URIs
    status               TEXT NOT NULL,             -- enabled, paused, disabled
    status_reason        TEXT,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    last_error           TEXT,
    last_error_at        INTEGER,
    failing_since        INTEGER,
    attempts             INTEGER NOT NULL DEFAULT 0,
    retry_at             INTEGER NOT NULL DEFAULT 0,
    lease_owner          TEXT,                      -- the instance delivering it now
    lease_until          INTEGER
);
CREATE TABLE IF NOT EXISTS ssf_events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id    TEXT NOT NULL,
    jti          TEXT NOT NULL,
    source       TEXT NOT NULL,                     -- audit:<id> or verify:<jti>: once per stream
    set_jwt      TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    delivered_at INTEGER,
    UNIQUE (stream_id, source)
);
CREATE INDEX IF NOT EXISTS ssf_events_pending ON ssf_events(stream_id, delivered_at, seq);
CREATE TABLE IF NOT EXISTS ssf_state (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
