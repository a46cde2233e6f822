-- SQLite schema 8, from 7. Version 8: token exchange (RFC 8693): a client's
-- exchange policy (subject audiences, subject issuers, transaction tokens), as
-- JSON; NULL, the default, is no exchange at all.
ALTER TABLE clients ADD COLUMN token_exchange TEXT;
