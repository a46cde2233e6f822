-- SQLite schema 2, from 1. Version 2: signing keys can be marked compromised; a row that readiness checks write to.
ALTER TABLE signing_keys ADD COLUMN compromised_at INTEGER;
CREATE TABLE IF NOT EXISTS write_probe (id INTEGER PRIMARY KEY, at INTEGER NOT NULL);
