-- Version 9: token exchange (RFC 8693): a client's exchange policy
-- (subject audiences, subject issuers, transaction tokens), as JSON text;
-- NULL, the default, is no exchange at all.
ALTER TABLE clients ADD COLUMN token_exchange TEXT;
