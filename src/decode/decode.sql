-- decode.sql — what the output plugin `edgesync` reads on the source (column
-- policies), and, where edgesync is installed on a replica, the position
-- table its sql format uses there and the apply functions older streams
-- call.  Format and semantics: docs/output-format.md, docs/replica.md.

DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'edgesync_phi_reader') THEN
        CREATE ROLE edgesync_phi_reader NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'edgesync_applier') THEN
        CREATE ROLE edgesync_applier NOLOGIN;
    END IF;
END
$roles$;
COMMENT ON ROLE edgesync_phi_reader IS 'edgesync: may stream columns unmasked by their policy (columns=raw)';
COMMENT ON ROLE edgesync_applier IS 'edgesync: may apply the sql stream of a source on a replica';

-- Column policies of tracked tables: hash or redact (no row: replicate).  A
-- user catalog table, so the plugin reads it with each change's historic
-- snapshot: a policy applies to the stream from its own commit on.  Keyed by
-- the column's name, which a dump and restore keep (a column's number does
-- not, once a column was dropped), and by regclass, which a restore maps to
-- the new table: the rows come back with the table.  The event triggers
-- below rename a policy with its column and remove it with its column or
-- table; a policy naming a column the table does not have stops decoding
-- (src/decode/relinfo.cpp).  attname comes last: 0.1.0 had the column's
-- number instead, and its table is changed in place (a slot may still decode
-- WAL that reads it, and a user catalog table cannot be dropped under it).
CREATE TABLE edgesync.column_policies (
    relid   regclass    NOT NULL,
    policy  text        NOT NULL CHECK (policy IN ('hash', 'redact')),
    set_at  timestamptz NOT NULL DEFAULT now(),
    attname name        NOT NULL,
    PRIMARY KEY (relid, attname)
) WITH (user_catalog_table = true);
COMMENT ON TABLE edgesync.column_policies IS 'edgesync: PHI column policies applied by the output plugin';
SELECT pg_catalog.pg_extension_config_dump('edgesync.column_policies', '');
REVOKE ALL ON edgesync.column_policies FROM PUBLIC;
GRANT SELECT ON edgesync.column_policies TO edgesync_reader, edgesync_admin;

CREATE FUNCTION edgesync.set_column_policy(tbl regclass, col name, policy text) RETURNS void
    AS 'MODULE_PATHNAME', 'edgesync_set_column_policy' LANGUAGE C;
COMMENT ON FUNCTION edgesync.set_column_policy(regclass, name, text) IS
    'edgesync: how a column leaves the server: replicate, hash (HMAC-SHA256) or redact';

-- A dropped table or column takes its policies with it, whatever command
-- drops it (DROP TABLE, ALTER TABLE ... DROP COLUMN, DROP TYPE ... CASCADE).
-- ENABLE ALWAYS: also in a session with session_replication_role = replica.
CREATE FUNCTION edgesync._on_drop_policies() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM edgesync.column_policies p
     USING pg_catalog.pg_event_trigger_dropped_objects() d
     WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
       AND p.relid::pg_catalog.oid OPERATOR(pg_catalog.=) d.objid
       AND (d.objsubid OPERATOR(pg_catalog.=) 0
            OR (d.object_type OPERATOR(pg_catalog.=) 'table column'
                AND p.attname OPERATOR(pg_catalog.=) d.address_names[3]));
END
$$;
REVOKE ALL ON FUNCTION edgesync._on_drop_policies() FROM PUBLIC;
CREATE EVENT TRIGGER edgesync_drop_policies ON sql_drop
    EXECUTE FUNCTION edgesync._on_drop_policies();
ALTER EVENT TRIGGER edgesync_drop_policies ENABLE ALWAYS;

-- Schema changes of tracked tables that a replica's table must follow
-- (docs/replica.md, "Which schema changes travel"), written by the ALTER
-- TABLE event trigger below (edgesync_rename_policies) in the transaction of
-- the change, right after it: the output plugin reads each row as a change
-- of this table and writes the replica's table block there, in stream
-- order.  Written as the catalog owner only, so nobody can forge one (a
-- logical message could be emitted by anyone).  A row is kept after it was
-- streamed: one per statement, a few bytes.
CREATE TABLE edgesync.schema_changes (
    relid      oid         NOT NULL,   -- the tracked table
    change     text        NOT NULL CHECK (change IN ('rename_column', 'drop_column', 'alter_type',
                                                      'rename_table')),
    old_name   text        NOT NULL,   -- the column (renamed, dropped, retyped) or the table's old name
    new_name   text,                   -- rename_column: the new name
    old_schema text,                   -- rename_table: the old schema
    changed_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE edgesync.schema_changes IS 'edgesync: schema changes of tracked tables, for replicas to follow';
REVOKE ALL ON edgesync.schema_changes FROM PUBLIC;
GRANT SELECT ON edgesync.schema_changes TO edgesync_reader, edgesync_admin;

-- A renamed column keeps its policy (ALTER TABLE ... RENAME COLUMN), and a
-- schema change of a tracked table is recorded in schema_changes.  In C
-- (src/decode/policy.cpp): it reads the statement for the old names.
CREATE FUNCTION edgesync._on_rename_column() RETURNS event_trigger
    AS 'MODULE_PATHNAME', 'edgesync_on_rename_column' LANGUAGE C;
REVOKE ALL ON FUNCTION edgesync._on_rename_column() FROM PUBLIC;
CREATE EVENT TRIGGER edgesync_rename_policies ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE')
    EXECUTE FUNCTION edgesync._on_rename_column();
ALTER EVENT TRIGGER edgesync_rename_policies ENABLE ALWAYS;

-- On a replica: the last commit LSN applied from each source.  The sql
-- format's guard reads and moves it in the transaction that applies the
-- changes, so a replayed transaction is recognised and skipped.  A replica
-- without edgesync gets the same table from the stream itself (plain SQL:
-- src/decode/replica_sql.hpp, docs/replica.md); here it is edgesync's, the
-- default replica schema's position table.
CREATE TABLE edgesync.applied_lsn (
    source     text        PRIMARY KEY,
    lsn        pg_lsn      NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE edgesync.applied_lsn IS 'edgesync: per source, the commit LSN of the last transaction applied here';
SELECT pg_catalog.pg_extension_config_dump('edgesync.applied_lsn', '');
REVOKE ALL ON edgesync.applied_lsn FROM PUBLIC;
GRANT SELECT ON edgesync.applied_lsn TO edgesync_reader, edgesync_admin, edgesync_applier;
-- The guard runs with the caller's rights: the applier records its LSNs itself.
GRANT INSERT, UPDATE ON edgesync.applied_lsn TO edgesync_applier;

-- The apply functions of 0.1.0's streams, which call them: apply_begin() at
-- the start of each transaction, applying() in every statement,
-- apply_truncate() for a truncate, apply_resync() at the start of each batch
-- of a full re-send.  Since 0.2.0 the stream applies in plain SQL and calls
-- none of them; they remain, for a stream written by an older plugin, as
-- wrappers of that same SQL: the same table, the same settings
-- (edgesync_apply.skip_through, and session_replication_role = replica for
-- the rest of the transaction if the caller may set it, a superuser or a
-- role granted SET ON PARAMETER session_replication_role).  They run with
-- the caller's rights and grant nothing.
--
-- apply_begin(source, commit_lsn) records commit_lsn for source if it is
-- beyond the one recorded, and returns true; otherwise the transaction was
-- applied before: it returns false and applying() turns false for the rest
-- of the transaction, so its statements change nothing.
CREATE FUNCTION edgesync.apply_begin(source text, commit_lsn pg_lsn) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    previous pg_lsn;
    fresh    boolean;
BEGIN
    IF apply_begin.source IS NULL OR apply_begin.commit_lsn IS NULL THEN
        RAISE EXCEPTION 'edgesync.apply_begin() arguments must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT a.lsn INTO previous FROM edgesync.applied_lsn a
     WHERE a.source OPERATOR(pg_catalog.=) apply_begin.source;
    INSERT INTO edgesync.applied_lsn AS a (source, lsn)
    VALUES (apply_begin.source, apply_begin.commit_lsn)
    ON CONFLICT (source) DO UPDATE SET lsn = EXCLUDED.lsn, applied_at = pg_catalog.now()
     WHERE a.lsn OPERATOR(pg_catalog.<) EXCLUDED.lsn
    RETURNING true INTO fresh;
    fresh := COALESCE(fresh, false);
    PERFORM pg_catalog.set_config('edgesync_apply.skip_through',
                                  COALESCE(previous, '0/0')::pg_catalog.text, true);
    PERFORM pg_catalog.set_config('edgesync_internal.apply_skip',
                                  CASE WHEN fresh THEN 'off' ELSE 'on' END, true);
    IF (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER)
       OR pg_catalog.has_parameter_privilege('session_replication_role', 'SET') THEN
        PERFORM pg_catalog.set_config('session_replication_role', 'replica', true);
    END IF;
    RETURN fresh;
END
$$;
COMMENT ON FUNCTION edgesync.apply_begin(text, pg_lsn) IS
    'edgesync replica: start applying a source''s transaction; false if it was applied before';

-- apply_resync(source): the same apply mode, whatever applied_lsn holds for
-- source, which it neither reads nor moves: a re-send's batches are not
-- transactions of the stream.
CREATE FUNCTION edgesync.apply_resync(source text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF apply_resync.source IS NULL THEN
        RAISE EXCEPTION 'edgesync.apply_resync() argument must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM pg_catalog.set_config('edgesync_apply.skip_through', '0/0', true);
    PERFORM pg_catalog.set_config('edgesync_internal.apply_skip', 'off', true);
    IF (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER)
       OR pg_catalog.has_parameter_privilege('session_replication_role', 'SET') THEN
        PERFORM pg_catalog.set_config('session_replication_role', 'replica', true);
    END IF;
END
$$;
COMMENT ON FUNCTION edgesync.apply_resync(text) IS
    'edgesync replica: start applying a batch of a source''s full re-send; records no LSN';

-- False in a transaction whose apply_begin() found it applied before.  It
-- runs under the applying session's search_path (no SET clause, so that it
-- stays inlinable in every statement of the stream): its operator is named
-- with its schema, so no "=" in a schema before pg_catalog is picked.
CREATE FUNCTION edgesync.applying() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT NOT COALESCE(pg_catalog.current_setting('edgesync_internal.apply_skip', true)
                        OPERATOR(pg_catalog.=) 'on', false)
$$;
COMMENT ON FUNCTION edgesync.applying() IS
    'edgesync replica: false when the transaction being applied was applied before';

-- TRUNCATE of the sql format, skipped with the rest of a replayed transaction.
CREATE FUNCTION edgesync.apply_truncate(tables regclass[], restart_identity boolean, cascade boolean)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF edgesync.applying() AND cardinality(tables) > 0 THEN
        EXECUTE format('TRUNCATE %s%s%s',
                       (SELECT string_agg(t::text, ', ') FROM unnest(tables) AS t),
                       CASE WHEN restart_identity THEN ' RESTART IDENTITY' ELSE '' END,
                       CASE WHEN cascade THEN ' CASCADE' ELSE '' END);
    END IF;
END
$$;
COMMENT ON FUNCTION edgesync.apply_truncate(regclass[], boolean, boolean) IS
    'edgesync replica: TRUNCATE from the sql format, unless the transaction was applied before';

REVOKE ALL ON FUNCTION edgesync.apply_begin(text, pg_lsn), edgesync.apply_resync(text),
    edgesync.apply_truncate(regclass[], boolean, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION edgesync.apply_begin(text, pg_lsn), edgesync.apply_resync(text),
    edgesync.apply_truncate(regclass[], boolean, boolean) TO edgesync_applier;
