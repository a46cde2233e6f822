-- Version 3: a change notification says where and what changed. Its payload
-- is `<schema> <version>` or `<schema> <version> <change>`: the schema of the
-- table written (another deployment in the same database, listening on the
-- same channel, ignores it), the version reached, and what a Tollgate write
-- set in the transaction-local `tollgate.change` (`c:<client id>`,
-- `k:<key id>[:<digest>]`, `r:<jti>`, `s` for signing keys), so that every
-- instance's cache forgets only that. A write that sets nothing (a bulk
-- import, a change made with psql) sends no change: caches forget
-- everything, as before.
CREATE OR REPLACE FUNCTION tollgate_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v BIGINT;
    what TEXT := nullif(current_setting('tollgate.change', true), '');
BEGIN
    UPDATE tollgate_changes SET version = version + 1 WHERE id = 1 RETURNING version INTO v;
    PERFORM pg_notify('tollgate_changes',
        TG_TABLE_SCHEMA || ' ' || v::text || coalesce(' ' || what, ''));
    RETURN NULL;
END $$;
