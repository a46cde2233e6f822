-- SQLite schema 7, from 6. Version 7: the web console's login links and sessions, and indexes for its audit-log filters.
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
CREATE INDEX IF NOT EXISTS clients_by_id_name ON clients(id, name);
CREATE INDEX IF NOT EXISTS audit_log_by_actor ON audit_log(actor, id);
CREATE INDEX IF NOT EXISTS audit_log_by_action ON audit_log(action, id);
CREATE INDEX IF NOT EXISTS audit_log_by_target ON audit_log(target, id);
