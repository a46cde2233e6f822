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
-- Clients are listed and searched in byte order of their ids (COLLATE "C",
-- whatever the database's collation, so that pages follow one order): this
-- index gives that order without sorting every client. The console searches
-- id and name together, lowered once when a row is written: a plain LIKE on
-- one column costs a fifth of ILIKE on two (adding the column rewrites the
-- table once).
ALTER TABLE clients ADD COLUMN IF NOT EXISTS search TEXT
    GENERATED ALWAYS AS (lower(id || ' ' || name)) STORED;
CREATE INDEX IF NOT EXISTS clients_by_id_search ON clients ((id COLLATE "C"), search);
CREATE INDEX IF NOT EXISTS audit_log_by_actor ON audit_log (actor, id);
CREATE INDEX IF NOT EXISTS audit_log_by_action ON audit_log (action, id);
CREATE INDEX IF NOT EXISTS audit_log_by_target ON audit_log (target, id);
-- Substring search through a trigram index, when the pg_trgm extension can
-- be had: it ships with the server in Debian's and the official packages, and
-- since PostgreSQL 13 a database owner may create it (a trusted extension).
-- It goes in `public`, never in Tollgate's own schema, so that dropping one
-- deployment's schema cannot take another's index with it; an extension
-- already installed elsewhere is used where it is. Without it the search
-- reads the table (about 30 ms with 100,000 clients) and nothing else
-- changes.
DO $$
DECLARE
    trgm_schema TEXT;
BEGIN
    BEGIN
        CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public;
    EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'pg_trgm cannot be created here (%): the client search reads the table', SQLERRM;
    END;
    SELECT n.nspname INTO trgm_schema
      FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
     WHERE e.extname = 'pg_trgm';
    IF trgm_schema IS NOT NULL THEN
        EXECUTE format(
            'CREATE INDEX IF NOT EXISTS clients_search_trgm ON clients USING gin (search %I.gin_trgm_ops)',
            trgm_schema);
    END IF;
END $$;
