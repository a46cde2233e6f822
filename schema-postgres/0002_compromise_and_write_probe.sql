-- Version 2: a signing key can be marked compromised. Such a key leaves the
-- JWKS at once and no token it signed is active, whatever its times say
-- (`tollgate signing-key retire KID --compromised`). NULL for every key
-- recorded before; the trigger on signing_keys already signals the change.

ALTER TABLE signing_keys ADD COLUMN compromised_at BIGINT;

-- One row that readiness checks write to see whether the database takes
-- writes (after a failover to a standby, or a full disk). No trigger: it
-- signals no change to the fleet's caches.
CREATE TABLE write_probe (
    id INTEGER PRIMARY KEY,
    at BIGINT NOT NULL
);
