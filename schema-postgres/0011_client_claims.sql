-- Version 11: per-client claims, a JSON object added to every access token
-- the client gets; NULL, the default, is none.
ALTER TABLE clients ADD COLUMN claims TEXT;
