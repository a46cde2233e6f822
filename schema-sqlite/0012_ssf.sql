-- SQLite schema 12, from 11. Version 12: Shared Signals (SSF 1.0) streams and
-- their events, and the transmitter's position in the audit log.
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
