-- Version 2: a signing key can be marked compromised. Such a key leaves the
-- JWKS at once and no token it signed is active, whatever its times say
-- (`tollgate signing-key retire KID --compromised`). NULL for every key
-- recorded before; the trigger on signing_keys already signals the change.

ALTER TABLE signing_keys ADD COLUMN compromised_at BIGINT;
