-- Version 8: the web console's login links and the sessions they become
-- (only digests of the link and of the session cookie are kept), and
-- indexes for the console's audit-log filters. Nothing here is cached, so
-- no change trigger.
CREATE TABLE IF NOT EXISTS console_sessions (
    id              TEXT PRIMARY KEY,
    created_by      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    link_digest     BYTEA UNIQUE,
    link_expires_at BIGINT NOT NULL,
    session_digest  BYTEA UNIQUE,
    opened_at       BIGINT,
    last_seen_at    BIGINT,
    revoked_at      BIGINT
);
-- The console searches clients by part of the id or name: an index-only
-- scan reads id and name without the rows.
CREATE INDEX IF NOT EXISTS clients_by_id_name ON clients (id, name);
CREATE INDEX IF NOT EXISTS audit_log_by_actor ON audit_log (actor, id);
CREATE INDEX IF NOT EXISTS audit_log_by_action ON audit_log (action, id);
CREATE INDEX IF NOT EXISTS audit_log_by_target ON audit_log (target, id);
