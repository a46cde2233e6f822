-- SQLite schema 5, from 4. Version 5: clients whose tokens must be DPoP-bound (RFC 9449 §5.2).
ALTER TABLE clients ADD COLUMN dpop_bound_access_tokens INTEGER NOT NULL DEFAULT 0;
