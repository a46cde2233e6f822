-- Version 6: clients whose token requests must carry a DPoP proof
-- (RFC 9449 §5.2 dpop_bound_access_tokens).
ALTER TABLE clients ADD COLUMN dpop_bound_access_tokens BOOLEAN NOT NULL DEFAULT false;
