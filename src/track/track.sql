-- track.sql — tracked tables: the catalog, roles, and (below) track() & co.

-- Roles.  Cluster-wide, so created only when missing and left in place by
-- DROP EXTENSION (other databases may use them).  NOLOGIN: grant them to
-- the roles that log in.
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'edgesync_reader') THEN
        CREATE ROLE edgesync_reader NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'edgesync_admin') THEN
        CREATE ROLE edgesync_admin NOLOGIN;
    END IF;
END
$roles$;
COMMENT ON ROLE edgesync_reader IS 'edgesync: may read sync_log and call edgesync.changes()';
COMMENT ON ROLE edgesync_admin IS 'edgesync: may read and change edgesync''s catalog';

-- The catalog of tracked tables.  A user catalog table, so that the output
-- plugin reads it with the historic snapshot of each change: tracking a
-- table takes effect in the stream from the commit that tracked it on.
--
-- A partitioned table is tracked through its root; its partitions, present
-- and future, are covered by that one row.
CREATE TABLE edgesync.tracked_tables (
    relid          regclass    PRIMARY KEY,
    log_changes    boolean     NOT NULL DEFAULT true,  -- write sync_log rows
    skip_unchanged boolean     NOT NULL DEFAULT true,  -- an UPDATE that changes nothing is skipped
    tracked_at     timestamptz NOT NULL DEFAULT now()
) WITH (user_catalog_table = true);
COMMENT ON TABLE edgesync.tracked_tables IS 'edgesync: tables whose changes are versioned, logged and streamed';
SELECT pg_catalog.pg_extension_config_dump('edgesync.tracked_tables', '');
REVOKE ALL ON edgesync.tracked_tables FROM PUBLIC;
GRANT SELECT ON edgesync.tracked_tables TO edgesync_reader, edgesync_admin;

-- Schemas whose new tables are tracked as they are created (track_schema).
CREATE TABLE edgesync.tracked_schemas (
    nspid      regnamespace PRIMARY KEY,
    tracked_at timestamptz  NOT NULL DEFAULT now()
);
COMMENT ON TABLE edgesync.tracked_schemas IS 'edgesync: schemas whose new tables are tracked automatically';
SELECT pg_catalog.pg_extension_config_dump('edgesync.tracked_schemas', '');
REVOKE ALL ON edgesync.tracked_schemas FROM PUBLIC;
GRANT SELECT ON edgesync.tracked_schemas TO edgesync_reader, edgesync_admin;

-- The change log.  sync_log_data is the physical table: one row per batch,
-- a run of changes of one table by one role written together at the end of a
-- statement (src/track/sync_log.cpp relies on this exact column order).  The
-- changes are arrays, so a thousand of them cost one compressed tuple rather
-- than a thousand tuples; the view sync_log shows one row per change.  Ids
-- are first_id, first_id + 1, ...: the sequence steps by the largest batch
-- (1000).  xid is the writing transaction's top-level xid8 as a bigint,
-- because xid8 has no BRIN operator class; BRIN is the only index, enough for
-- the cursor (xid ranges) and prune (changed_at) queries.
CREATE SEQUENCE edgesync.sync_log_id_seq INCREMENT BY 1000;
CREATE TABLE edgesync.sync_log_data (
    first_id         bigint      NOT NULL,
    xid              bigint      NOT NULL,
    changed_at       timestamptz NOT NULL,
    relid            oid         NOT NULL,
    role             oid         NOT NULL,
    ops              "char"[]    NOT NULL,  -- I insert, U update, D delete, T truncate
    versions         bigint[]    NOT NULL,
    pks              text[]      NOT NULL,  -- JSON text of each key; NULL for T
    application_name text
);
ALTER SEQUENCE edgesync.sync_log_id_seq OWNED BY edgesync.sync_log_data.first_id;
CREATE INDEX sync_log_data_xid_brin ON edgesync.sync_log_data
    USING brin (xid, changed_at) WITH (pages_per_range = 32, autosummarize = on);
DO $lz4$
BEGIN
    -- Cheaper to compress than the default pglz, where the server has it.
    ALTER TABLE edgesync.sync_log_data ALTER COLUMN versions SET COMPRESSION lz4,
                                       ALTER COLUMN pks SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    NULL;
END
$lz4$;
REVOKE ALL ON edgesync.sync_log_data FROM PUBLIC;
GRANT SELECT ON edgesync.sync_log_data TO edgesync_reader, edgesync_admin;
GRANT DELETE ON edgesync.sync_log_data TO edgesync_admin;

-- How far prune() has deleted: cursors from before that may have lost rows.
CREATE TABLE edgesync.sync_log_state (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    pruned_xid bigint  NOT NULL DEFAULT 0
);
INSERT INTO edgesync.sync_log_state DEFAULT VALUES;
REVOKE ALL ON edgesync.sync_log_state FROM PUBLIC;
GRANT SELECT ON edgesync.sync_log_state TO edgesync_reader, edgesync_admin;
GRANT UPDATE ON edgesync.sync_log_state TO edgesync_admin;

CREATE VIEW edgesync.sync_log AS
SELECT d.first_id + c.n - 1          AS id,
       d.relid::pg_catalog.regclass AS relid,
       c.pk::jsonb                  AS pk,
       c.op,
       c.version,
       d.xid::text::xid8            AS xid,
       d.changed_at,
       d.role::pg_catalog.regrole   AS role,
       d.application_name
  FROM edgesync.sync_log_data d
 CROSS JOIN LATERAL unnest(d.pks, d.ops, d.versions) WITH ORDINALITY AS c(pk, op, version, n);
COMMENT ON VIEW edgesync.sync_log IS
    'edgesync: one row per row change of a tracked table (I insert, U update, D delete, T truncate)';
REVOKE ALL ON edgesync.sync_log FROM PUBLIC;
GRANT SELECT ON edgesync.sync_log TO edgesync_reader, edgesync_admin;
GRANT edgesync_reader TO edgesync_admin;

-- Trigger functions (C++).
CREATE FUNCTION edgesync.version_trigger() RETURNS trigger
    AS 'MODULE_PATHNAME', 'edgesync_version_trigger' LANGUAGE C;
CREATE FUNCTION edgesync.log_trigger() RETURNS trigger
    AS 'MODULE_PATHNAME', 'edgesync_log_trigger' LANGUAGE C;

-- Catalog writes and cursors (C++, see src/track/catalog.cpp).
CREATE FUNCTION edgesync._register(tbl regclass, log_changes boolean, skip_unchanged boolean)
    RETURNS void AS 'MODULE_PATHNAME', 'edgesync_register' LANGUAGE C STRICT;
CREATE FUNCTION edgesync._unregister(tbl regclass)
    RETURNS void AS 'MODULE_PATHNAME', 'edgesync_unregister' LANGUAGE C STRICT;
CREATE FUNCTION edgesync._register_schema(nsp regnamespace)
    RETURNS void AS 'MODULE_PATHNAME', 'edgesync_register_schema' LANGUAGE C STRICT;
CREATE FUNCTION edgesync._cursor_parse(cursor text, scope text,
                                       OUT seen text, OUT win text, OUT last_xid bigint, OUT last_id bigint)
    AS 'MODULE_PATHNAME', 'edgesync_cursor_parse' LANGUAGE C STABLE;
CREATE FUNCTION edgesync._cursor_make(scope text, seen text, win text, last_xid bigint, last_id bigint)
    RETURNS text AS 'MODULE_PATHNAME', 'edgesync_cursor_make' LANGUAGE C STABLE;

-- Raises the error for a relation that is not tracked.
CREATE FUNCTION edgesync._require_tracked(tbl regclass) RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM edgesync.tracked_tables t WHERE t.relid = tbl) THEN
        RAISE EXCEPTION 'table "%" is not tracked by edgesync', tbl
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('Call edgesync.track(%L) first.', tbl::text);
    END IF;
END
$$;

-- track(): make a table versioned, time-stamped and change-logged.
CREATE FUNCTION edgesync.track(tbl regclass, log_changes boolean DEFAULT true,
                               skip_unchanged boolean DEFAULT true)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rel        pg_catalog.pg_class;
    kind       text;
    col        record;
    part       regclass;
BEGIN
    SELECT * INTO rel FROM pg_catalog.pg_class WHERE oid = tbl;
    IF rel.relkind NOT IN ('r', 'p') THEN
        kind := CASE rel.relkind WHEN 'v' THEN 'a view' WHEN 'm' THEN 'a materialized view'
                     WHEN 'f' THEN 'a foreign table' WHEN 'S' THEN 'a sequence'
                     WHEN 'i' THEN 'an index' WHEN 'I' THEN 'an index'
                     WHEN 'c' THEN 'a composite type' ELSE 'not a table' END;
        RAISE EXCEPTION 'cannot track "%"', tbl
            USING ERRCODE = 'wrong_object_type',
                  DETAIL = format('"%s" is %s; only tables can be tracked.', tbl, kind);
    END IF;
    IF rel.relpersistence = 't' THEN
        RAISE EXCEPTION 'cannot track temporary table "%"', tbl
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'Temporary tables are private to one session and never replicated.';
    END IF;
    IF rel.relpersistence = 'u' THEN
        RAISE EXCEPTION 'cannot track unlogged table "%"', tbl
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'Changes to unlogged tables are not written to the WAL, so they cannot be streamed.',
                  HINT = format('Make it logged first: ALTER TABLE %s SET LOGGED.', tbl);
    END IF;
    IF rel.relispartition THEN
        RAISE EXCEPTION 'cannot track partition "%"', tbl
            USING ERRCODE = 'wrong_object_type',
                  DETAIL = 'A partitioned table is tracked as a whole, with all its partitions.',
                  HINT = format('Track its partitioned table: SELECT edgesync.track(%L).',
                                pg_catalog.pg_partition_root(tbl)::text);
    END IF;
    IF NOT pg_catalog.pg_has_role(current_user, rel.relowner, 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table %', rel.relname
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_index WHERE indrelid = tbl AND indisprimary) THEN
        RAISE EXCEPTION 'table "%" has no primary key', tbl
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'edgesync identifies the rows of tracked tables by their primary key.',
                  HINT = format('Add one first, e.g. ALTER TABLE %s ADD PRIMARY KEY (id).', tbl);
    END IF;

    -- Our own ALTER TABLE below must not wake the DDL event trigger.
    PERFORM pg_catalog.set_config('edgesync_internal.in_track', 'on', true);

    -- Check every column before changing anything.
    FOR col IN
        SELECT c.name, c.type, a.atttypid
          FROM (VALUES ('version', 'bigint'::regtype),
                       ('created_at', 'timestamptz'::regtype),
                       ('updated_at', 'timestamptz'::regtype)) AS c(name, type)
          LEFT JOIN pg_catalog.pg_attribute a
                 ON a.attrelid = tbl AND a.attname = c.name AND NOT a.attisdropped
    LOOP
        IF col.atttypid IS NOT NULL AND col.atttypid <> col.type THEN
            RAISE EXCEPTION 'column "%" of table "%" has type %, not %',
                            col.name, tbl, col.atttypid::regtype, col.type
                USING ERRCODE = 'datatype_mismatch',
                      DETAIL = 'edgesync keeps version (bigint), created_at and updated_at (timestamptz) in every tracked table.',
                      HINT = 'Rename or convert the column, then track the table again.';
        END IF;
    END LOOP;
    FOR col IN
        SELECT c.name, c.decl
          FROM (VALUES ('version', 'bigint NOT NULL DEFAULT 1'),
                       ('created_at', 'timestamptz NOT NULL DEFAULT now()'),
                       ('updated_at', 'timestamptz NOT NULL DEFAULT now()')) AS c(name, decl)
         WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a
                            WHERE a.attrelid = tbl AND a.attname = c.name AND NOT a.attisdropped)
    LOOP
        EXECUTE format('ALTER TABLE %s ADD COLUMN %I %s', tbl, col.name, col.decl);
    END LOOP;

    EXECUTE format('CREATE OR REPLACE TRIGGER edgesync_version BEFORE INSERT OR UPDATE ON %s'
                   ' FOR EACH ROW EXECUTE FUNCTION edgesync.version_trigger(%L)',
                   tbl, skip_unchanged::text);
    IF log_changes THEN
        EXECUTE format('CREATE OR REPLACE TRIGGER edgesync_log AFTER INSERT OR UPDATE OR DELETE ON %s'
                       ' FOR EACH ROW EXECUTE FUNCTION edgesync.log_trigger()', tbl);
        -- Statement triggers are not inherited by partitions: each gets its own
        -- (TRUNCATE of a partition is logged under the partition's name).
        FOR part IN SELECT tbl UNION SELECT relid FROM pg_catalog.pg_partition_tree(tbl) LOOP
            PERFORM edgesync._add_truncate_trigger(part);
        END LOOP;
    ELSE
        EXECUTE format('DROP TRIGGER IF EXISTS edgesync_log ON %s', tbl);
        PERFORM edgesync._drop_truncate_triggers(tbl);
    END IF;

    PERFORM edgesync._register(tbl, log_changes, skip_unchanged);
    PERFORM pg_catalog.set_config('edgesync_internal.in_track', '', true);
END
$$;
COMMENT ON FUNCTION edgesync.track(regclass, boolean, boolean) IS
    'edgesync: version, time-stamp and change-log a table (idempotent)';

-- Statement triggers are not inherited: every partition of a tracked table
-- gets its own AFTER TRUNCATE trigger.
CREATE FUNCTION edgesync._add_truncate_trigger(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_trigger
                WHERE tgrelid = tbl AND tgname = 'edgesync_log_truncate') THEN
        RETURN;
    END IF;
    EXECUTE format('CREATE OR REPLACE TRIGGER edgesync_log_truncate AFTER TRUNCATE ON %s'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION edgesync.log_trigger()', tbl);
END
$$;

CREATE FUNCTION edgesync._drop_truncate_triggers(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    part regclass;
BEGIN
    FOR part IN SELECT t.tgrelid FROM pg_catalog.pg_trigger t
                 WHERE t.tgname = 'edgesync_log_truncate'
                   AND t.tgrelid IN (SELECT tbl UNION SELECT relid FROM pg_catalog.pg_partition_tree(tbl))
    LOOP
        EXECUTE format('DROP TRIGGER edgesync_log_truncate ON %s', part);
    END LOOP;
END
$$;

-- untrack(): remove the triggers and the registration; keep data and columns.
CREATE FUNCTION edgesync.untrack(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM edgesync._require_tracked(tbl);
    EXECUTE format('DROP TRIGGER IF EXISTS edgesync_version ON %s', tbl);
    EXECUTE format('DROP TRIGGER IF EXISTS edgesync_log ON %s', tbl);
    PERFORM edgesync._drop_truncate_triggers(tbl);
    PERFORM edgesync._unregister(tbl);
END
$$;
COMMENT ON FUNCTION edgesync.untrack(regclass) IS
    'edgesync: stop tracking a table; its data and columns stay';

-- track_schema(): track every table of a schema, now and when created later.
CREATE FUNCTION edgesync.track_schema(schema_name name) RETURNS SETOF regclass
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    nsp oid;
    t   regclass;
BEGIN
    SELECT oid INTO nsp FROM pg_catalog.pg_namespace WHERE nspname = schema_name;
    IF nsp IS NULL THEN
        RAISE EXCEPTION 'schema "%" does not exist', schema_name USING ERRCODE = 'invalid_schema_name';
    END IF;
    IF nsp = 'pg_catalog'::regnamespace OR nsp = 'edgesync'::regnamespace
       OR schema_name = 'information_schema' OR schema_name LIKE 'pg\_%' THEN
        RAISE EXCEPTION 'cannot track schema "%"', schema_name
            USING ERRCODE = 'wrong_object_type', DETAIL = 'System schemas cannot be tracked.';
    END IF;
    PERFORM edgesync._register_schema(nsp::regnamespace);
    FOR t IN
        SELECT c.oid::regclass FROM pg_catalog.pg_class c
         WHERE c.relnamespace = nsp AND c.relkind IN ('r', 'p') AND NOT c.relispartition
           AND c.relpersistence = 'p'
         ORDER BY c.relname
    LOOP
        IF edgesync._track_if_possible(t) THEN
            RETURN NEXT t;
        END IF;
    END LOOP;
END
$$;
COMMENT ON FUNCTION edgesync.track_schema(name) IS
    'edgesync: track every table of a schema, and every table created there later';

-- Tracks t unless it is already tracked; warns and returns false if it has
-- no primary key.
CREATE FUNCTION edgesync._track_if_possible(t regclass) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF edgesync._is_tracked(t) THEN
        RETURN false;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_index WHERE indrelid = t AND indisprimary) THEN
        RAISE WARNING 'table "%" has no primary key and is not tracked by edgesync', t
            USING HINT = 'Add a primary key; edgesync then tracks the table automatically.';
        RETURN false;
    END IF;
    PERFORM edgesync.track(t);
    RETURN true;
END
$$;

CREATE FUNCTION edgesync._is_tracked(t regclass) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (SELECT FROM edgesync.tracked_tables WHERE relid = t)
$$;

-- DDL follow-up: new tables in tracked schemas, new partitions of tracked
-- tables, primary keys added later.  Runs as the extension owner, since the
-- user creating a table may not read edgesync's catalog.
CREATE FUNCTION edgesync._on_ddl() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    cmd  record;
    rel  pg_catalog.pg_class;
    root regclass;
    part regclass;
BEGIN
    IF pg_catalog.current_setting('edgesync_internal.in_track', true) = 'on' THEN
        RETURN;
    END IF;
    FOR cmd IN SELECT * FROM pg_catalog.pg_event_trigger_ddl_commands()
                WHERE object_type IN ('table', 'table column', 'table constraint', 'index')
    LOOP
        SELECT c.* INTO rel FROM pg_catalog.pg_class c
         WHERE c.oid = CASE WHEN cmd.object_type = 'index'
                            THEN (SELECT indrelid FROM pg_catalog.pg_index WHERE indexrelid = cmd.objid)
                            ELSE cmd.objid END;
        CONTINUE WHEN rel.oid IS NULL OR rel.relkind NOT IN ('r', 'p');
        root := coalesce(pg_catalog.pg_partition_root(rel.oid), rel.oid);
        IF EXISTS (SELECT FROM edgesync.tracked_tables WHERE relid = root AND log_changes) THEN
            -- New or attached partitions (ATTACH PARTITION reports the parent).
            FOR part IN SELECT relid FROM pg_catalog.pg_partition_tree(root) LOOP
                PERFORM edgesync._add_truncate_trigger(part);
            END LOOP;
        ELSIF NOT rel.relispartition AND rel.relpersistence = 'p'
              AND EXISTS (SELECT FROM edgesync.tracked_schemas WHERE nspid = rel.relnamespace)
              AND NOT edgesync._is_tracked(rel.oid::regclass)
              AND (cmd.command_tag IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO')
                   OR EXISTS (SELECT FROM pg_catalog.pg_index WHERE indrelid = rel.oid AND indisprimary)) THEN
            PERFORM edgesync._track_if_possible(rel.oid::regclass);
        END IF;
    END LOOP;

    -- A detached partition keeps no TRUNCATE trigger of ours (PostgreSQL
    -- removes the cloned row triggers itself).
    FOR part IN
        SELECT t.tgrelid::regclass FROM pg_catalog.pg_trigger t
         WHERE t.tgname = 'edgesync_log_truncate'
           AND NOT EXISTS (SELECT FROM edgesync.tracked_tables tt
                            WHERE tt.relid = coalesce(pg_catalog.pg_partition_root(t.tgrelid), t.tgrelid))
    LOOP
        EXECUTE format('DROP TRIGGER edgesync_log_truncate ON %s', part);
    END LOOP;
END
$$;

-- A dropped table or schema leaves the catalog with it.
CREATE FUNCTION edgesync._on_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM edgesync.tracked_tables t
     USING pg_catalog.pg_event_trigger_dropped_objects() d
     WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objsubid = 0 AND t.relid::oid = d.objid;
    DELETE FROM edgesync.tracked_schemas s
     USING pg_catalog.pg_event_trigger_dropped_objects() d
     WHERE d.classid = 'pg_catalog.pg_namespace'::regclass AND s.nspid::oid = d.objid;
END
$$;

CREATE EVENT TRIGGER edgesync_ddl ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'ALTER TABLE', 'CREATE INDEX')
    EXECUTE FUNCTION edgesync._on_ddl();
CREATE EVENT TRIGGER edgesync_drop ON sql_drop
    WHEN TAG IN ('DROP TABLE', 'DROP SCHEMA', 'DROP OWNED')
    EXECUTE FUNCTION edgesync._on_drop();
