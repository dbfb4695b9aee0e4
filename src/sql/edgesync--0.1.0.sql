-- edgesync 0.1.0: the install script of release 0.1.0 (main 1753970), frozen.
-- Never edit a released script: changes go into an upgrade script
-- edgesync--0.1.0--<next>.sql and into the pieces' SQL (src/*/*.sql).
\echo Use "CREATE EXTENSION edgesync" to load this file. \quit

-- core.sql — schema edgesync and the library's own functions.
--
-- The install script, edgesync--<version>.sql, is built by the Makefile from
-- each piece's SQL file (SQL_PARTS), in order; this one comes first.
--
-- The control file names pg_catalog as the extension's schema and this file
-- creates schema edgesync itself, so the schema is a member of the extension
-- and DROP EXTENSION removes it.  Every object is therefore schema-qualified.

CREATE SCHEMA edgesync;
COMMENT ON SCHEMA edgesync IS 'edgesync: versioned, change-logged tables streamed to the cloud';
GRANT USAGE ON SCHEMA edgesync TO PUBLIC;

CREATE FUNCTION edgesync.version() RETURNS text
    AS 'MODULE_PATHNAME', 'edgesync_version'
    LANGUAGE C STRICT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION edgesync.version() IS 'version of the loaded edgesync library';

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

-- sync.sql — reading and writing tracked tables by cursor: changes(), pull(),
-- push(), prune().
--
-- The cursor rule.  Log ids are not in commit order: a transaction that
-- began earlier can commit after one a reader has already seen.  So a cursor
-- holds snapshots, as PgQ does: "seen" (every transaction visible in it was
-- delivered) and an open "window" snapshot being delivered.  The next rows
-- are those of transactions visible in the window but not in seen, in
-- (xid, id) order; a transaction not yet committed when the window was taken
-- is invisible in it and lands in a later window.  No change is missed, none
-- is delivered twice.

-- The engine of changes() and pull(): up to max log rows after cursor, each
-- with the cursor that resumes after it.
CREATE FUNCTION edgesync._window(scope text, cursor text, rel oid, max integer)
RETURNS TABLE (log_id bigint, log_xid bigint, log_relid oid, log_pk text, log_op "char",
               log_version bigint, log_changed_at timestamptz, log_role oid, log_app text,
               next_cursor text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    c      record;
    seen   pg_snapshot;
    win    pg_snapshot;
    lo     bigint;
    pruned bigint;
BEGIN
    IF max IS NULL OR max < 1 THEN
        RAISE EXCEPTION 'max must be at least 1'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('Got %s.', coalesce(max::text, 'NULL'));
    END IF;
    c := edgesync._cursor_parse(cursor, scope);
    seen := c.seen::pg_snapshot;
    lo := coalesce(pg_snapshot_xmin(seen)::text::bigint, 0);
    IF cursor IS NOT NULL THEN
        SELECT s.pruned_xid INTO pruned FROM edgesync.sync_log_state s;
        IF pruned >= lo AND pruned > 0 THEN
            RAISE EXCEPTION 'cursor is older than the pruned part of the change log'
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      DETAIL = 'edgesync.prune() deleted changes this cursor had not read yet.',
                      HINT = 'Start again with a NULL cursor and reload the current rows.';
        END IF;
    END IF;
    win := coalesce(c.win::pg_snapshot, pg_current_snapshot());

    RETURN QUERY
    WITH rows AS (
        -- Batch rows of transactions new in the window, not yet read ...
        SELECT d.*
          FROM edgesync.sync_log_data d
         WHERE d.xid >= lo
           AND d.xid < pg_snapshot_xmax(win)::text::bigint
           AND (rel IS NULL OR d.relid = rel)
           AND pg_visible_in_snapshot(d.xid::text::xid8, win)
           AND (seen IS NULL OR NOT pg_visible_in_snapshot(d.xid::text::xid8, seen))
           AND (c.last_xid IS NULL
                OR (d.xid, d.first_id + cardinality(d.pks) - 1) > (c.last_xid, c.last_id))
    ), changes AS (
        -- ... and their changes, in (xid, id) order.
        SELECT r.xid, r.first_id + e.n - 1 AS id, r.relid, e.pk, e.op, e.version,
               r.changed_at, r.role, r.application_name
          FROM rows r
         CROSS JOIN LATERAL unnest(r.pks, r.ops, r.versions) WITH ORDINALITY AS e(pk, op, version, n)
         WHERE c.last_xid IS NULL OR (r.xid, r.first_id + e.n - 1) > (c.last_xid, c.last_id)
         ORDER BY 1, 2
         LIMIT max + 1
    ), batch AS (
        SELECT ch.*, row_number() OVER (ORDER BY ch.xid, ch.id) AS n, count(*) OVER () AS total
          FROM changes ch
    )
    SELECT b.id, b.xid, b.relid, b.pk, b.op, b.version, b.changed_at, b.role, b.application_name,
           CASE WHEN b.n = b.total AND b.total <= max
                THEN edgesync._cursor_make(scope, win::text, NULL, NULL, NULL)   -- window done
                ELSE edgesync._cursor_make(scope, seen::text, win::text, b.xid, b.id)
           END
      FROM batch b
     WHERE b.n <= max
     ORDER BY b.n;
END
$$;

CREATE FUNCTION edgesync.changes(cursor text, max integer DEFAULT 1000)
RETURNS TABLE (id bigint, relid regclass, pk jsonb, op "char", version bigint, xid xid8,
               changed_at timestamptz, role regrole, application_name text, next_cursor text)
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT w.log_id, w.log_relid::regclass, w.log_pk::jsonb, w.log_op, w.log_version,
           w.log_xid::text::xid8, w.log_changed_at, w.log_role::regrole, w.log_app, w.next_cursor
      FROM edgesync._window('all', cursor, NULL, max) w
$$;
COMMENT ON FUNCTION edgesync.changes(text, integer) IS
    'edgesync: the next changes of all tracked tables after a cursor (NULL: from the start)';

-- A cursor at "now": changes committed before this call count as read.
CREATE FUNCTION edgesync.current_cursor(tbl regclass DEFAULT NULL) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT edgesync._cursor_make(CASE WHEN tbl IS NULL THEN 'all' ELSE 'rel' || tbl::oid END,
                                 pg_current_snapshot()::text, NULL, NULL, NULL)
$$;

-- The key columns of a table, in primary key order.
CREATE FUNCTION edgesync._key_columns(tbl regclass) RETURNS name[]
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT array_agg(a.attname ORDER BY k.ord)
      FROM pg_index i
      CROSS JOIN LATERAL unnest(i.indkey[0:i.indnkeyatts - 1]) WITH ORDINALITY AS k(attnum, ord)
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
     WHERE i.indrelid = tbl AND i.indisprimary
$$;

-- pull(): the current rows of the keys changed after cursor, and tombstones
-- for deleted keys.  Runs as the caller, so row-level security decides what
-- the caller gets; a key the caller cannot see is left out.
--
-- Rows come in the order of each key's last change, so every row's cursor
-- is safe to resume from, and the last row carries the cursor after every
-- log row read.  If the log rows read were all about keys the caller cannot
-- see, one row with only next_cursor set (pk NULL) keeps the reader moving.
CREATE FUNCTION edgesync.pull(tbl regclass, cursor text, max integer DEFAULT 1000)
RETURNS TABLE (pk jsonb, "row" jsonb, version bigint, deleted boolean, next_cursor text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    keys  name[];
    match text;
BEGIN
    PERFORM edgesync._require_tracked(tbl);
    keys := edgesync._key_columns(tbl);
    SELECT string_agg(format('t.%1$I = k.%1$I', key), ' AND ') INTO match FROM unnest(keys) AS key;

    RETURN QUERY EXECUTE format($q$
        WITH w AS MATERIALIZED (
            SELECT w.log_pk::jsonb AS pk, w.log_op, w.log_version, w.log_xid, w.log_id, w.next_cursor
              FROM edgesync._window($1, $2, $3, $4) w
        ), latest AS (
            SELECT DISTINCT ON (w.pk) * FROM w ORDER BY w.pk, w.log_xid DESC, w.log_id DESC
        ), visible AS (
            SELECT l.pk,
                   CASE WHEN t.%3$I IS NULL THEN NULL ELSE to_jsonb(t.*) END AS "row",
                   coalesce(t.version, l.log_version) AS version,
                   t.%3$I IS NULL AS deleted,
                   l.next_cursor, l.log_xid, l.log_id
              FROM latest l
              CROSS JOIN LATERAL jsonb_populate_record(NULL::%1$s, l.pk) AS k
              LEFT JOIN %1$s AS t ON %2$s
             WHERE t.%3$I IS NOT NULL OR l.log_op = 'D'
        ), last_read AS (
            SELECT w.next_cursor FROM w ORDER BY w.log_xid DESC, w.log_id DESC LIMIT 1
        )
        SELECT v.pk, v."row", v.version, v.deleted,
               CASE WHEN row_number() OVER (ORDER BY v.log_xid DESC, v.log_id DESC) = 1
                    THEN (SELECT next_cursor FROM last_read) ELSE v.next_cursor END
          FROM visible v
        UNION ALL
        SELECT NULL, NULL, NULL, NULL, (SELECT next_cursor FROM last_read)
         WHERE NOT EXISTS (SELECT FROM visible) AND EXISTS (SELECT FROM w)
        $q$, tbl, match, keys[1])
    USING 'rel' || tbl::oid, cursor, tbl::oid, max;
END
$$;
COMMENT ON FUNCTION edgesync.pull(regclass, text, integer) IS
    'edgesync: current rows of keys changed after a cursor, with tombstones for deleted keys';

-- push(): apply a batch of client changes, each based on a version the client
-- read.  A change whose version is stale is not applied: it comes back as a
-- conflict with the current row.  Runs as the caller (privileges, row-level
-- security).  The whole payload is checked before anything is applied.
CREATE FUNCTION edgesync.push(tbl regclass, changes jsonb)
RETURNS TABLE (ord integer, op text, pk jsonb, status text, "row" jsonb, version bigint)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    keys     name[];
    columns  name[];
    managed  constant name[] := ARRAY['version', 'created_at', 'updated_at'];
    e        jsonb;
    r        jsonb;
    i        integer := 0;
    bad      text;
    match    text;
    cols     text;
    sets     text;
    assumed  bigint;
    result   jsonb;
    current  jsonb;
    affected bigint;
BEGIN
    PERFORM edgesync._require_tracked(tbl);
    keys := edgesync._key_columns(tbl);
    SELECT array_agg(a.attname) INTO columns FROM pg_attribute a
     WHERE a.attrelid = tbl AND a.attnum > 0 AND NOT a.attisdropped;
    SELECT string_agg(format('t.%1$I = k.%1$I', key), ' AND ') INTO match FROM unnest(keys) AS key;

    IF jsonb_typeof(changes) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'changes must be a JSON array'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Got a JSON %s.', coalesce(jsonb_typeof(changes), 'NULL')),
                  HINT = 'Pass [{"op": "update", "row": {...}, "version": 3}, ...].';
    END IF;

    -- 1. Check everything; apply nothing if anything is wrong.
    FOR e IN SELECT value FROM jsonb_array_elements(changes) LOOP
        i := i + 1;
        IF jsonb_typeof(e) <> 'object' THEN
            RAISE EXCEPTION 'element % of changes is not a JSON object', i
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        SELECT key INTO bad FROM jsonb_object_keys(e) AS key
         WHERE key NOT IN ('op', 'row', 'version') LIMIT 1;
        IF bad IS NOT NULL THEN
            RAISE EXCEPTION 'element % of changes has unknown key "%"', i, bad
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = 'An element has the keys "op", "row" and "version".';
        END IF;
        IF (e->>'op') IS NULL OR (e->>'op') NOT IN ('insert', 'update', 'delete') THEN
            RAISE EXCEPTION 'element % of changes has invalid op %', i, coalesce(e->'op', 'null')
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = 'op is one of "insert", "update" and "delete".';
        END IF;
        r := e->'row';
        IF jsonb_typeof(r) IS DISTINCT FROM 'object' THEN
            RAISE EXCEPTION 'element % of changes has no "row" object', i
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        SELECT key INTO bad FROM jsonb_object_keys(r) AS key WHERE key <> ALL (columns) LIMIT 1;
        IF bad IS NOT NULL THEN
            RAISE EXCEPTION 'column "%" of relation "%" does not exist', bad, tbl
                USING ERRCODE = 'undefined_column', DETAIL = format('In element %s of changes.', i);
        END IF;
        SELECT key INTO bad FROM unnest(keys) AS key
         WHERE NOT r ? key OR jsonb_typeof(r->key) = 'null' LIMIT 1;
        IF bad IS NOT NULL THEN
            RAISE EXCEPTION 'element % of changes has no value for primary key column "%"', i, bad
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF (e->>'op') <> 'insert' AND jsonb_typeof(e->'version') IS DISTINCT FROM 'number' THEN
            RAISE EXCEPTION 'element % of changes has no "version"', i
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = 'An update or delete carries the version of the row it was based on.';
        END IF;
        BEGIN
            EXECUTE format('SELECT jsonb_populate_record(NULL::%s, $1)', tbl) USING r;
            assumed := (e->>'version')::bigint;
        EXCEPTION WHEN data_exception THEN
            RAISE EXCEPTION 'element % of changes has an invalid value', i
                USING ERRCODE = SQLSTATE, DETAIL = SQLERRM;
        END;
    END LOOP;

    -- 2. Apply, in order.
    i := 0;
    FOR e IN SELECT value FROM jsonb_array_elements(changes) LOOP
        i := i + 1;
        r := e->'row';
        op := e->>'op';
        assumed := (e->>'version')::bigint;
        pk := (SELECT jsonb_object_agg(key, r->key) FROM unnest(keys) AS key);
        result := NULL;
        IF op = 'insert' THEN
            SELECT string_agg(format('%I', key), ', ') INTO cols
              FROM jsonb_object_keys(r) AS key WHERE key <> ALL (managed);
            EXECUTE format('INSERT INTO %1$s AS t (%2$s) SELECT %2$s FROM jsonb_populate_record(NULL::%1$s, $1)'
                           ' ON CONFLICT DO NOTHING RETURNING to_jsonb(t.*)', tbl, cols)
               INTO result USING r;
        ELSIF op = 'update' THEN
            SELECT string_agg(format('%1$I = k.%1$I', key), ', ') INTO sets
              FROM jsonb_object_keys(r) AS key WHERE key <> ALL (managed) AND key <> ALL (keys);
            EXECUTE format('UPDATE %1$s AS t SET %2$s version = $2 FROM jsonb_populate_record(NULL::%1$s, $1) AS k'
                           ' WHERE %3$s AND t.version = $2 RETURNING to_jsonb(t.*)',
                           tbl, coalesce(sets || ',', ''), match)
               INTO result USING r, assumed;
        ELSE
            EXECUTE format('DELETE FROM %1$s AS t USING jsonb_populate_record(NULL::%1$s, $1) AS k'
                           ' WHERE %2$s AND t.version = $2 RETURNING to_jsonb(t.*)', tbl, match)
               INTO result USING r, assumed;
        END IF;
        GET DIAGNOSTICS affected = ROW_COUNT;

        EXECUTE format('SELECT to_jsonb(t.*) FROM %1$s AS t, jsonb_populate_record(NULL::%1$s, $1) AS k WHERE %2$s',
                       tbl, match)
           INTO current USING r;
        ord := i;
        -- An update that changed nothing is skipped by the trigger: still applied.
        IF affected > 0 OR (op = 'update' AND (current->>'version')::bigint = assumed) THEN
            status := 'applied';
        ELSE
            status := 'conflict';
        END IF;
        "row" := current;
        version := (current->>'version')::bigint;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION edgesync.push(regclass, jsonb) IS
    'edgesync: apply client changes based on known versions; stale ones come back as conflicts';

-- The size of the log's BRIN block ranges (prune() works range by range;
-- 32 if the index was dropped or replaced by hand).
CREATE FUNCTION edgesync._log_pages_per_range() RETURNS bigint
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT COALESCE((SELECT o.option_value::bigint
                       FROM pg_catalog.pg_class c,
                            pg_catalog.pg_options_to_table(c.reloptions) o
                      WHERE c.oid = to_regclass('edgesync.sync_log_data_xid_brin')
                        AND o.option_name = 'pages_per_range'), 32)
$$;

-- Forgets the BRIN summary of the log's block range starting at first_block
-- (prune() emptied it).  Harmless whoever calls it: an unsummarized range is
-- always scanned, until VACUUM summarizes it.  Security definer because
-- brin_desummarize_range() is for the index owner.
CREATE FUNCTION edgesync._desummarize_log_range(first_block bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    log_brin regclass := to_regclass('edgesync.sync_log_data_xid_brin');
BEGIN
    IF log_brin IS NOT NULL THEN
        PERFORM brin_desummarize_range(log_brin, first_block);
    END IF;
END
$$;

-- prune(): delete log rows older than older_than, in batches, committing
-- after each so no lock or snapshot is held long.  CALL it outside a
-- transaction block (it commits).  No SET clause: a procedure with one may
-- not commit, so every name is schema-qualified instead.
--
-- It goes one block range (of the log's BRIN index) at a time: the ranges
-- holding old rows are found once, through the index, and each is visited
-- once.  Asking the whole table for "the next batch_size old rows" again and
-- again would scan past every row already deleted, and past the new rows
-- that VACUUM let into freed pages, once per batch.  A range left empty is
-- desummarized, so that VACUUM summarizes it afresh and the index does not
-- keep pointing prune at it once new rows fill it.
CREATE PROCEDURE edgesync.prune(older_than interval, batch_size integer DEFAULT 100,
                                INOUT deleted bigint DEFAULT 0)
LANGUAGE plpgsql AS $$
DECLARE
    cutoff    timestamptz;
    per_range bigint;
    ranges    bigint[];
    r         bigint;
    lo        tid;
    hi        tid;
    n         bigint;
    top       bigint;
BEGIN
    IF older_than IS NULL OR older_than < interval '0' THEN
        RAISE EXCEPTION 'older_than must be a positive interval'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF batch_size IS NULL OR batch_size < 1 THEN
        RAISE EXCEPTION 'batch_size must be at least 1' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    cutoff := pg_catalog.now() OPERATOR(pg_catalog.-) older_than;
    deleted := 0;
    per_range := edgesync._log_pages_per_range();
    SELECT pg_catalog.array_agg(DISTINCT ((d.ctid::text::point)[0]::bigint OPERATOR(pg_catalog./) per_range))
      INTO ranges
      FROM edgesync.sync_log_data d
     WHERE d.changed_at OPERATOR(pg_catalog.<) cutoff;
    FOREACH r IN ARRAY COALESCE(ranges, '{}') LOOP
        lo := pg_catalog.format('(%s,0)', r OPERATOR(pg_catalog.*) per_range)::tid;
        hi := pg_catalog.format('(%s,0)', (r OPERATOR(pg_catalog.+) 1) OPERATOR(pg_catalog.*) per_range)::tid;
        LOOP
            -- batch_size counts log rows, each holding up to 1000 changes.
            WITH victims AS (
                SELECT d.ctid FROM edgesync.sync_log_data d
                 WHERE d.ctid OPERATOR(pg_catalog.>=) lo AND d.ctid OPERATOR(pg_catalog.<) hi
                   AND d.changed_at OPERATOR(pg_catalog.<) cutoff
                 LIMIT batch_size
            ), gone AS (
                DELETE FROM edgesync.sync_log_data d USING victims v
                 WHERE d.ctid OPERATOR(pg_catalog.=) v.ctid
                RETURNING d.xid, pg_catalog.cardinality(d.pks) AS changes
            )
            SELECT pg_catalog.sum(g.changes), pg_catalog.max(g.xid) INTO n, top FROM gone g;
            EXIT WHEN n IS NULL;
            UPDATE edgesync.sync_log_state SET pruned_xid = pg_catalog.int8larger(pruned_xid, top);
            deleted := deleted OPERATOR(pg_catalog.+) n;
            COMMIT;
        END LOOP;
        IF NOT EXISTS (SELECT FROM edgesync.sync_log_data d
                        WHERE d.ctid OPERATOR(pg_catalog.>=) lo AND d.ctid OPERATOR(pg_catalog.<) hi) THEN
            PERFORM edgesync._desummarize_log_range(r OPERATOR(pg_catalog.*) per_range);
            COMMIT;
        END IF;
    END LOOP;
END
$$;
COMMENT ON PROCEDURE edgesync.prune(interval, integer, bigint) IS
    'edgesync: delete change-log rows older than an interval, in committed batches';

-- Privileges.  sync_log holds patient keys: reading it, by any function, is
-- for edgesync_reader.  track/untrack/push check ownership and table
-- privileges themselves and stay open.
REVOKE ALL ON FUNCTION edgesync._window(text, text, oid, integer), edgesync.changes(text, integer),
    edgesync.current_cursor(regclass), edgesync.pull(regclass, text, integer),
    edgesync._cursor_parse(text, text), edgesync._cursor_make(text, text, text, bigint, bigint)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION edgesync._window(text, text, oid, integer), edgesync.changes(text, integer),
    edgesync.current_cursor(regclass), edgesync.pull(regclass, text, integer),
    edgesync._cursor_parse(text, text), edgesync._cursor_make(text, text, text, bigint, bigint)
    TO edgesync_reader;
REVOKE ALL ON PROCEDURE edgesync.prune(interval, integer, bigint) FROM PUBLIC;
GRANT EXECUTE ON PROCEDURE edgesync.prune(interval, integer, bigint) TO edgesync_admin;
REVOKE ALL ON FUNCTION edgesync._desummarize_log_range(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION edgesync._desummarize_log_range(bigint) TO edgesync_admin;
REVOKE ALL ON FUNCTION edgesync._on_ddl(), edgesync._on_drop() FROM PUBLIC;

-- decode.sql — what the output plugin `edgesync` reads on the source (column
-- policies), and what its sql format calls on the replica (applied LSNs and
-- the apply functions).  Format and semantics: docs/output-format.md.

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
-- attnum, so renaming a column keeps its policy.
CREATE TABLE edgesync.column_policies (
    relid  regclass    NOT NULL,
    attnum smallint    NOT NULL,
    policy text        NOT NULL CHECK (policy IN ('hash', 'redact')),
    set_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (relid, attnum)
) WITH (user_catalog_table = true);
COMMENT ON TABLE edgesync.column_policies IS 'edgesync: PHI column policies applied by the output plugin';
SELECT pg_catalog.pg_extension_config_dump('edgesync.column_policies', '');
REVOKE ALL ON edgesync.column_policies FROM PUBLIC;
GRANT SELECT ON edgesync.column_policies TO edgesync_reader, edgesync_admin;

CREATE FUNCTION edgesync.set_column_policy(tbl regclass, col name, policy text) RETURNS void
    AS 'MODULE_PATHNAME', 'edgesync_set_column_policy' LANGUAGE C;
COMMENT ON FUNCTION edgesync.set_column_policy(regclass, name, text) IS
    'edgesync: how a column leaves the server: replicate, hash (HMAC-SHA256) or redact';

-- A dropped table takes its policies with it.
CREATE FUNCTION edgesync._on_drop_policies() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM edgesync.column_policies p
     USING pg_catalog.pg_event_trigger_dropped_objects() d
     WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objsubid = 0 AND p.relid::oid = d.objid;
END
$$;
REVOKE ALL ON FUNCTION edgesync._on_drop_policies() FROM PUBLIC;
CREATE EVENT TRIGGER edgesync_drop_policies ON sql_drop
    WHEN TAG IN ('DROP TABLE', 'DROP SCHEMA', 'DROP OWNED')
    EXECUTE FUNCTION edgesync._on_drop_policies();

-- On a replica: the last commit LSN applied from each source.  The sql
-- format's apply_begin() checks and moves it in the transaction that applies
-- the changes, so a replayed transaction is recognised and skipped.
CREATE TABLE edgesync.applied_lsn (
    source     text        PRIMARY KEY,
    lsn        pg_lsn      NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE edgesync.applied_lsn IS 'edgesync: per source, the commit LSN of the last transaction applied here';
SELECT pg_catalog.pg_extension_config_dump('edgesync.applied_lsn', '');
REVOKE ALL ON edgesync.applied_lsn FROM PUBLIC;
GRANT SELECT ON edgesync.applied_lsn TO edgesync_reader, edgesync_admin, edgesync_applier;

-- apply_begin(source, commit_lsn): the first statement of every transaction
-- of the sql format.  Records commit_lsn for source if it is beyond the one
-- recorded, and returns true; otherwise the transaction was applied before:
-- returns false and edgesync.applying() turns false for the rest of the
-- transaction, so its statements change nothing.  Either way the rest of the
-- transaction runs with session_replication_role = replica, as a logical
-- replication worker does: triggers (edgesync's own, which would otherwise
-- give the rows new versions) and foreign key checks do not fire, and the
-- versions and timestamps arrive as they were on the source.  In C
-- (src/decode/apply.cpp): a replica calls it once per source transaction.
CREATE FUNCTION edgesync.apply_begin(source text, commit_lsn pg_lsn) RETURNS boolean
    AS 'MODULE_PATHNAME', 'edgesync_apply_begin'
    LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION edgesync.apply_begin(text, pg_lsn) IS
    'edgesync replica: start applying a source''s transaction; false if it was applied before';

-- apply_resync(source): the first statement of every batch of the shipper's
-- full re-send (edgesync.resync() on the hospital).  The same apply mode as
-- apply_begin() (applying() true, session_replication_role = replica for
-- the rest of the transaction), but nothing is read from or recorded in
-- applied_lsn: a re-send's batches are not transactions of the stream, and
-- a commit LSN recorded for them could make the replica skip the stream's
-- next transactions, or the batches of a later re-send, as applied before.
-- Re-applying a batch is harmless: its upserts are version-guarded.
CREATE FUNCTION edgesync.apply_resync(source text) RETURNS void
    AS 'MODULE_PATHNAME', 'edgesync_apply_resync'
    LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
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
    edgesync.apply_truncate(regclass[], boolean, boolean) TO edgesync_applier, edgesync_admin;

-- ship.sql — targets: where the shipper delivers changes, their secrets, their state.
--
-- A target is an HTTP(S) endpoint (NDJSON of the json format) or a cloud
-- PostgreSQL replica (the sql format), and owns a logical slot
-- edgesync_<name> with the edgesync plugin.  add_target() creates the slot,
-- drop_target() drops it.  The shipper (src/ship/*.cpp) reads the slot,
-- delivers, and advances the slot only after the receiver acknowledged.
--
-- Secrets (bearer token, the password of a URL, extra headers) live in
-- target_secrets, which nobody but the extension's owner can read; targets
-- holds the URL without them.  The functions that take secrets run with
-- log_min_error_statement = panic, so a failing call is not logged with its
-- text (docs/shipping.md: do not log statements with log_statement = all).

CREATE TABLE edgesync.targets (
    name          text        PRIMARY KEY,
    kind          text        NOT NULL CHECK (kind IN ('http', 'postgresql')),
    url           text        NOT NULL,  -- without password
    slot_name     text        NOT NULL UNIQUE,
    batch_changes integer     NOT NULL,
    batch_bytes   bigint      NOT NULL,
    columns       text        NOT NULL CHECK (columns IN ('policy', 'raw')),
    enabled       boolean     NOT NULL,
    ca_file       text,
    timeout_ms    integer     NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE edgesync.targets IS 'edgesync: where changes are shipped (secrets are kept apart)';
REVOKE ALL ON edgesync.targets FROM PUBLIC;
GRANT SELECT ON edgesync.targets TO edgesync_admin;

CREATE TABLE edgesync.target_secrets (
    name         text  PRIMARY KEY REFERENCES edgesync.targets ON DELETE CASCADE,
    bearer_token text,
    password     text,
    headers      jsonb NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE edgesync.target_secrets IS 'edgesync: secrets of targets, readable by the extension owner only';
REVOKE ALL ON edgesync.target_secrets FROM PUBLIC;

-- Written by the shipper after every attempt.
CREATE TABLE edgesync.target_state (
    name                 text        PRIMARY KEY REFERENCES edgesync.targets ON DELETE CASCADE,
    last_success         timestamptz,
    last_attempt         timestamptz,
    batches_shipped      bigint      NOT NULL DEFAULT 0,
    changes_shipped      bigint      NOT NULL DEFAULT 0,
    bytes_shipped        bigint      NOT NULL DEFAULT 0,
    consecutive_failures integer     NOT NULL DEFAULT 0,
    last_error           text,       -- secrets removed
    last_error_at        timestamptz,
    next_retry           timestamptz,
    pending_end          pg_lsn,     -- end of an unacknowledged batch: retried as it was
    acked_lsn            pg_lsn,     -- end of the last acknowledged batch (crash-safe, unlike
                                     -- the slot's position, which is saved at checkpoints)
    resync_pending       boolean     NOT NULL DEFAULT false
);
REVOKE ALL ON edgesync.target_state FROM PUBLIC;
GRANT SELECT ON edgesync.target_state TO edgesync_admin;

-- C helpers (src/ship/catalog.cpp): the URL split from its password.
CREATE FUNCTION edgesync._parse_target_url(url text, OUT kind text, OUT url text, OUT password text)
    AS 'MODULE_PATHNAME', 'edgesync_parse_target_url' LANGUAGE C STRICT IMMUTABLE;
REVOKE ALL ON FUNCTION edgesync._parse_target_url(text) FROM PUBLIC;

-- Raises an error for settings out of range; returns nothing.
CREATE FUNCTION edgesync._check_target_settings(kind text, bearer_token text, headers jsonb,
                                                ca_file text, batch_changes integer,
                                                batch_bytes bigint, columns text, timeout_ms integer)
RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    h record;
BEGIN
    IF batch_changes IS NULL OR batch_changes NOT BETWEEN 1 AND 1000000 THEN
        RAISE EXCEPTION 'batch_changes must be between 1 and 1000000'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF batch_bytes IS NULL OR batch_bytes NOT BETWEEN 1024 AND 1073741824 THEN
        RAISE EXCEPTION 'batch_bytes must be between 1024 and 1073741824'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF timeout_ms IS NULL OR timeout_ms NOT BETWEEN 100 AND 3600000 THEN
        RAISE EXCEPTION 'timeout_ms must be between 100 and 3600000'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF columns IS NULL OR columns NOT IN ('policy', 'raw') THEN
        RAISE EXCEPTION 'invalid value for columns'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Valid values are "policy" and "raw".';
    END IF;
    IF ca_file IS NOT NULL AND ca_file !~ '^/' THEN
        RAISE EXCEPTION 'ca_file must be an absolute path'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF kind = 'postgresql' AND (bearer_token IS NOT NULL OR headers <> '{}' OR ca_file IS NOT NULL) THEN
        RAISE EXCEPTION 'bearer_token, headers and ca_file apply to http targets only'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'For a postgresql target, put sslrootcert, sslmode and the like in the URL.';
    END IF;
    IF bearer_token IS NOT NULL AND bearer_token ~ '[\x01-\x20\x7f]' THEN
        RAISE EXCEPTION 'bearer_token must not contain spaces or control characters'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF headers IS NULL OR jsonb_typeof(headers) <> 'object' THEN
        RAISE EXCEPTION 'headers must be a JSON object of header names and string values'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR h IN SELECT key, value FROM jsonb_each(headers) LOOP
        IF h.key !~ '^[A-Za-z0-9!#$%&''*+.^_`|~-]+$' OR jsonb_typeof(h.value) <> 'string'
           OR h.value #>> '{}' ~ '[\x01-\x1f\x7f]' THEN
            RAISE EXCEPTION 'invalid header %', quote_ident(h.key)
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = 'Header names are HTTP tokens; values are strings without control characters.';
        END IF;
        IF lower(h.key) IN ('content-type', 'content-length', 'idempotency-key', 'authorization',
                            'host', 'transfer-encoding') THEN
            RAISE EXCEPTION 'header % is set by edgesync', quote_ident(h.key)
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Pass a token with bearer_token.';
        END IF;
    END LOOP;
END
$$;

-- columns => 'raw' ships columns unmasked by their PHI policy: only for a
-- session whose login role is in edgesync_phi_reader (or a superuser).  The
-- functions that call this are SECURITY DEFINER and cannot see the role that
-- called them, hence session_user: a role that logged in without the grant
-- cannot ship raw columns, whatever it SETs ROLE to.
CREATE FUNCTION edgesync._check_raw_columns(columns text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF columns = 'raw' AND NOT pg_has_role(session_user, 'edgesync_phi_reader', 'USAGE') THEN
        RAISE EXCEPTION 'permission denied for columns => %', quote_literal(columns)
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'Only members of role edgesync_phi_reader may ship columns unmasked by their column policy.',
                  HINT = 'Use columns => ''policy'', or have an administrator grant edgesync_phi_reader.';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION edgesync._check_raw_columns(text) FROM PUBLIC;

-- Raises an error unless target names one; returns its row.
CREATE FUNCTION edgesync._require_target(target text) RETURNS edgesync.targets
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t edgesync.targets;
BEGIN
    SELECT * INTO t FROM edgesync.targets WHERE name = target;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'target "%" does not exist', target
            USING ERRCODE = 'undefined_object',
                  HINT = 'The targets are listed in edgesync.target_status.';
    END IF;
    RETURN t;
END
$$;
REVOKE ALL ON FUNCTION edgesync._require_target(text) FROM PUBLIC;

-- Creates the logical slot of a target.  A slot of that name that belongs
-- to no target (left by an add_target() whose transaction rolled back) is
-- dropped first.  Must run before the transaction writes anything.
CREATE FUNCTION edgesync._create_target_slot(slot text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF EXISTS (SELECT FROM pg_replication_slots s WHERE s.slot_name = slot)
       AND NOT EXISTS (SELECT FROM edgesync.targets t WHERE t.slot_name = slot) THEN
        PERFORM pg_drop_replication_slot(slot);
    END IF;
    PERFORM pg_create_logical_replication_slot(slot, 'edgesync');
END
$$;
REVOKE ALL ON FUNCTION edgesync._create_target_slot(text) FROM PUBLIC;

-- Drops a target's slot, waiting a little while the shipper holds it.
CREATE FUNCTION edgesync._drop_target_slot(slot text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    tries integer := 0;
BEGIN
    LOOP
        BEGIN
            IF EXISTS (SELECT FROM pg_replication_slots s WHERE s.slot_name = slot) THEN
                PERFORM pg_drop_replication_slot(slot);
            END IF;
            RETURN;
        EXCEPTION WHEN object_in_use THEN
            tries := tries + 1;
            IF tries >= 100 THEN
                RAISE;
            END IF;
            PERFORM pg_sleep(0.1);
        END;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION edgesync._drop_target_slot(text) FROM PUBLIC;

-- add_target(): a new target and its slot.  Changes committed from now on
-- are shipped to it.
CREATE FUNCTION edgesync.add_target(name text, url text, bearer_token text DEFAULT NULL,
                                    headers jsonb DEFAULT '{}', ca_file text DEFAULT NULL,
                                    batch_changes integer DEFAULT 1000,
                                    batch_bytes bigint DEFAULT 4194304,
                                    columns text DEFAULT 'policy', enabled boolean DEFAULT true,
                                    timeout_ms integer DEFAULT 30000)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET log_min_error_statement = panic
AS $$
DECLARE
    target text := add_target.name;
    slot   text;
    u      record;
BEGIN
    IF target IS NULL OR target !~ '^[a-z0-9_]{1,54}$' THEN
        RAISE EXCEPTION 'invalid target name "%"', target
            USING ERRCODE = 'invalid_name',
                  DETAIL = 'A target name is 1 to 54 lower-case letters, digits or underscores.';
    END IF;
    IF EXISTS (SELECT FROM edgesync.targets t WHERE t.name = target) THEN
        RAISE EXCEPTION 'target "%" already exists', target USING ERRCODE = 'duplicate_object';
    END IF;
    IF url IS NULL THEN
        RAISE EXCEPTION 'invalid target URL: NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    u := edgesync._parse_target_url(url);
    PERFORM edgesync._check_target_settings(u.kind, bearer_token, headers, ca_file,
                                            batch_changes, batch_bytes, columns, timeout_ms);
    PERFORM edgesync._check_raw_columns(columns);
    slot := 'edgesync_' || target;
    PERFORM edgesync._create_target_slot(slot);
    BEGIN
        INSERT INTO edgesync.targets (name, kind, url, slot_name, batch_changes, batch_bytes,
                                      columns, enabled, ca_file, timeout_ms)
        VALUES (target, u.kind, u.url, slot, batch_changes, batch_bytes, columns, enabled,
                ca_file, timeout_ms);
        INSERT INTO edgesync.target_secrets (name, bearer_token, password, headers)
        VALUES (target, bearer_token, nullif(u.password, ''), headers);
        INSERT INTO edgesync.target_state (name) VALUES (target);
    EXCEPTION WHEN OTHERS THEN
        PERFORM edgesync._drop_target_slot(slot);
        RAISE;
    END;
END
$$;

-- alter_target(): change some settings; NULL leaves one unchanged, '' clears
-- bearer_token or ca_file.  The slot, and so the position in the stream, stay.
CREATE FUNCTION edgesync.alter_target(name text, url text DEFAULT NULL, bearer_token text DEFAULT NULL,
                                      headers jsonb DEFAULT NULL, ca_file text DEFAULT NULL,
                                      batch_changes integer DEFAULT NULL,
                                      batch_bytes bigint DEFAULT NULL, columns text DEFAULT NULL,
                                      enabled boolean DEFAULT NULL, timeout_ms integer DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET log_min_error_statement = panic
AS $$
DECLARE
    t  edgesync.targets := edgesync._require_target(alter_target.name);
    s  edgesync.target_secrets;
    u  record;
BEGIN
    SELECT * INTO s FROM edgesync.target_secrets WHERE target_secrets.name = t.name FOR UPDATE;
    IF url IS NOT NULL THEN
        u := edgesync._parse_target_url(url);
        t.kind := u.kind;
        t.url := u.url;
        s.password := nullif(u.password, '');
    END IF;
    IF bearer_token IS NOT NULL THEN s.bearer_token := nullif(bearer_token, ''); END IF;
    IF headers IS NOT NULL THEN s.headers := headers; END IF;
    IF ca_file IS NOT NULL THEN t.ca_file := nullif(ca_file, ''); END IF;
    t.batch_changes := coalesce(batch_changes, t.batch_changes);
    t.batch_bytes := coalesce(batch_bytes, t.batch_bytes);
    t.columns := coalesce(columns, t.columns);
    t.enabled := coalesce(enabled, t.enabled);
    t.timeout_ms := coalesce(timeout_ms, t.timeout_ms);
    PERFORM edgesync._check_target_settings(t.kind, s.bearer_token, s.headers, t.ca_file,
                                            t.batch_changes, t.batch_bytes, t.columns, t.timeout_ms);
    PERFORM edgesync._check_raw_columns(t.columns);
    UPDATE edgesync.targets SET kind = t.kind, url = t.url, batch_changes = t.batch_changes,
           batch_bytes = t.batch_bytes, columns = t.columns, enabled = t.enabled,
           ca_file = t.ca_file, timeout_ms = t.timeout_ms
     WHERE targets.name = t.name;
    UPDATE edgesync.target_secrets SET bearer_token = s.bearer_token, password = s.password,
           headers = s.headers
     WHERE target_secrets.name = t.name;
    -- New settings deserve a prompt try.
    UPDATE edgesync.target_state SET next_retry = NULL WHERE target_state.name = t.name;
END
$$;

-- drop_target(): the target, its secrets, its state and its slot.
CREATE FUNCTION edgesync.drop_target(name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t edgesync.targets := edgesync._require_target(drop_target.name);
BEGIN
    DELETE FROM edgesync.targets WHERE targets.name = t.name;
    PERFORM edgesync._drop_target_slot(t.slot_name);
END
$$;

-- DROP EXTENSION would leave the targets' slots behind, holding back WAL
-- with nothing left to name them: refuse while targets exist.
CREATE FUNCTION edgesync._refuse_drop_with_targets() RETURNS event_trigger
LANGUAGE C AS 'MODULE_PATHNAME', 'edgesync_refuse_drop_with_targets';
REVOKE ALL ON FUNCTION edgesync._refuse_drop_with_targets() FROM PUBLIC;
CREATE EVENT TRIGGER edgesync_keep_target_slots ON ddl_command_start
    WHEN TAG IN ('DROP EXTENSION')
    EXECUTE FUNCTION edgesync._refuse_drop_with_targets();

-- One row per target: where it stands, and what it holds back.
CREATE VIEW edgesync.target_status AS
SELECT t.name,
       t.kind,
       t.url,
       t.enabled,
       t.slot_name,
       s.slot_name IS NOT NULL                                            AS slot_exists,
       s.confirmed_flush_lsn                                              AS confirmed_lsn,
       st.last_success,
       st.batches_shipped,
       st.changes_shipped,
       st.bytes_shipped,
       CASE WHEN s.restart_lsn IS NOT NULL AND NOT pg_is_in_recovery()
            THEN pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)::bigint END AS wal_held_bytes,
       s.wal_status,
       st.consecutive_failures,
       st.last_error,
       st.last_error_at,
       st.next_retry,
       st.resync_pending
  FROM edgesync.targets t
  LEFT JOIN edgesync.target_state st ON st.name = t.name
  LEFT JOIN pg_catalog.pg_replication_slots s
         ON s.slot_name = t.slot_name AND s.database = current_database();
COMMENT ON VIEW edgesync.target_status IS 'edgesync: one row per target: position, progress, failures';
REVOKE ALL ON edgesync.target_status FROM PUBLIC;
GRANT SELECT ON edgesync.target_status TO edgesync_reader, edgesync_admin;

-- ship(): deliver up to max_batches batches to a target now, in this session
-- (the same path as the background worker).  Returns the changes delivered.
CREATE FUNCTION edgesync._ship(target text, max_batches integer) RETURNS bigint
    AS 'MODULE_PATHNAME', 'edgesync_ship' LANGUAGE C STRICT;
REVOKE ALL ON FUNCTION edgesync._ship(text, integer) FROM PUBLIC;
CREATE FUNCTION edgesync.ship(target text, max_batches integer DEFAULT 100) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
SET log_min_messages = warning  -- decoding the slot logs "starting logical decoding" at LOG
AS $$
BEGIN
    PERFORM edgesync._require_target(target);
    IF max_batches IS NULL OR max_batches < 1 THEN
        RAISE EXCEPTION 'max_batches must be at least 1' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN edgesync._ship(target, max_batches);
END
$$;

-- resync(): a target whose slot was lost (or whose receiver lost its copy)
-- gets a new slot, then a full re-send of the current rows of every tracked
-- table before the stream goes on; the version guard makes the overlap
-- harmless.
CREATE FUNCTION edgesync.resync(target text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t edgesync.targets := edgesync._require_target(target);
BEGIN
    PERFORM edgesync._drop_target_slot(t.slot_name);
    PERFORM pg_create_logical_replication_slot(t.slot_name, 'edgesync');
    UPDATE edgesync.target_state SET resync_pending = true, next_retry = NULL, pending_end = NULL,
           acked_lsn = NULL
     WHERE target_state.name = t.name;
END
$$;

REVOKE ALL ON FUNCTION edgesync.add_target(text, text, text, jsonb, text, integer, bigint, text, boolean, integer),
                       edgesync.alter_target(text, text, text, jsonb, text, integer, bigint, text, boolean, integer),
                       edgesync.drop_target(text), edgesync.ship(text, integer), edgesync.resync(text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION edgesync.add_target(text, text, text, jsonb, text, integer, bigint, text, boolean, integer),
                          edgesync.alter_target(text, text, text, jsonb, text, integer, bigint, text, boolean, integer),
                          edgesync.drop_target(text), edgesync.ship(text, integer), edgesync.resync(text)
    TO edgesync_admin;

-- federate.sql — the cloud side: federated views over a replica and its live
-- hospital table (docs/federation.md).
--
-- The hospital is reached through a postgres_fdw server the DBA creates (its
-- connection options and user mappings), but not through postgres_fdw's own
-- scans: the wrapper edgesync_federate reads the hospital over a connection
-- of edgesync's that is not tied to the local transaction (src/federate/).
-- postgres_fdw is therefore needed only to define the server, and only by
-- federate(); CREATE EXTENSION edgesync does not require it.

CREATE FUNCTION edgesync._federate_handler() RETURNS fdw_handler
    AS 'MODULE_PATHNAME', 'edgesync_federate_handler' LANGUAGE C STRICT;
CREATE FUNCTION edgesync._federate_validator(text[], oid) RETURNS void
    AS 'MODULE_PATHNAME', 'edgesync_federate_validator' LANGUAGE C STRICT;
CREATE FOREIGN DATA WRAPPER edgesync_federate
    HANDLER edgesync._federate_handler VALIDATOR edgesync._federate_validator;
COMMENT ON FOREIGN DATA WRAPPER edgesync_federate IS
    'edgesync: a replica merged with its live hospital table, freshest version first';
-- One server for every federated table: each table's options name the
-- postgres_fdw server that reaches its hospital.
CREATE SERVER edgesync_federate FOREIGN DATA WRAPPER edgesync_federate;
GRANT USAGE ON FOREIGN SERVER edgesync_federate TO edgesync_admin;

-- The hospital table's columns, through edgesync's connection.
CREATE FUNCTION edgesync._remote_columns(server name, remote_schema name, remote_table name,
                                         OUT name text, OUT type text, OUT is_key boolean)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'edgesync_remote_columns' LANGUAGE C STRICT VOLATILE;
REVOKE ALL ON FUNCTION edgesync._remote_columns(name, name, name) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION edgesync._remote_columns(name, name, name) TO edgesync_admin;

-- The federated views, with what each one reads.
CREATE TABLE edgesync.federations (
    view          regclass    PRIMARY KEY,  -- what users query
    scan          regclass    NOT NULL,     -- the foreign table under it
    replica       regclass    NOT NULL,
    server        name        NOT NULL,     -- the postgres_fdw server of the hospital
    remote_schema name        NOT NULL,
    remote_table  name        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE edgesync.federations IS
    'edgesync: federated views (replica rows and live hospital rows, the freshest version wins)';
SELECT pg_catalog.pg_extension_config_dump('edgesync.federations', '');
REVOKE ALL ON edgesync.federations FROM PUBLIC;
GRANT SELECT ON edgesync.federations TO PUBLIC;
GRANT INSERT, DELETE ON edgesync.federations TO edgesync_admin;

-- federate(): the view <table>_federated over replica table `local` and the
-- hospital's remote_schema.remote_table on postgres_fdw server `server`.
-- Idempotent: federating again replaces the view.  Checks everything
-- (table, key, version column, server, remote columns) before creating
-- anything.
CREATE FUNCTION edgesync.federate(local regclass, server name, remote_schema name DEFAULT 'public',
                                  remote_table name DEFAULT NULL, view_name name DEFAULT NULL)
RETURNS regclass
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rel      pg_catalog.pg_class;
    nsp      name;
    rtable   name;
    vname    name;
    sname    name;
    fdw      name;
    missing  text;
    differ   text;
    cols     text;
    names    text;
    old      regclass;
    rnames   text[];
    rtypes   text[];
    v        regclass;
BEGIN
    SELECT * INTO rel FROM pg_catalog.pg_class WHERE oid = local;
    IF rel.relkind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION 'cannot federate "%"', local
            USING ERRCODE = 'wrong_object_type',
                  DETAIL = 'edgesync.federate() takes the replica table on the cloud.';
    END IF;
    nsp := rel.relnamespace::regnamespace::name;
    rtable := coalesce(remote_table, rel.relname);
    vname := coalesce(view_name, left(rel.relname, 53) || '_federated');
    sname := left(vname, 58) || '_scan';

    IF NOT EXISTS (SELECT FROM pg_catalog.pg_index WHERE indrelid = local AND indisprimary) THEN
        RAISE EXCEPTION 'table "%" has no primary key', local
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'A federated view matches replica and hospital rows by primary key.',
                  HINT = 'Give the replica the primary key of the hospital''s table.';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_attribute
                    WHERE attrelid = local AND attname = 'version' AND NOT attisdropped
                      AND atttypid = 'bigint'::regtype) THEN
        RAISE EXCEPTION 'table "%" has no column "version" of type bigint', local
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'A federated view keeps, per primary key, the row with the higher version.',
                  HINT = 'Federate the replica of a table tracked with edgesync.track() at the hospital.';
    END IF;
    IF EXISTS (SELECT FROM pg_catalog.pg_attribute
                WHERE attrelid = local AND attname IN ('_source', '_version') AND NOT attisdropped) THEN
        RAISE EXCEPTION 'table "%" has a column named _source or _version', local
            USING ERRCODE = 'duplicate_column',
                  DETAIL = 'A federated view adds these two columns.';
    END IF;

    SELECT w.fdwname INTO fdw
      FROM pg_catalog.pg_foreign_server s
      JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw
     WHERE s.srvname = server;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'server "%" does not exist', server
            USING ERRCODE = 'undefined_object',
                  HINT = CASE WHEN NOT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'postgres_fdw')
                         THEN 'Install postgres_fdw (CREATE EXTENSION postgres_fdw), then create the server with '
                              'CREATE SERVER ... FOREIGN DATA WRAPPER postgres_fdw and a user mapping.'
                         ELSE 'Create it with CREATE SERVER ... FOREIGN DATA WRAPPER postgres_fdw and a user mapping.'
                         END;
    END IF;
    IF fdw <> 'postgres_fdw' THEN
        RAISE EXCEPTION 'server "%" is not a postgres_fdw server', server
            USING ERRCODE = 'wrong_object_type',
                  DETAIL = format('It uses the foreign-data wrapper %s.', fdw);
    END IF;

    -- The replica's columns must exist at the hospital with the same types.
    SELECT array_agg(r.name ORDER BY r.name), array_agg(r.type ORDER BY r.name) INTO rnames, rtypes
      FROM edgesync._remote_columns(server, remote_schema, rtable) r;
    IF rnames IS NULL THEN
        RAISE EXCEPTION 'table "%.%" does not exist on server "%"', remote_schema, rtable, server
            USING ERRCODE = 'undefined_table',
                  HINT = 'Pass the hospital''s schema and table as remote_schema and remote_table.';
    END IF;
    SELECT string_agg(format('%I', a.attname), ', ' ORDER BY a.attnum) FILTER (WHERE r.name IS NULL),
           string_agg(format('%I (%s here, %s at the hospital)', a.attname,
                             pg_catalog.format_type(a.atttypid, a.atttypmod), r.type), ', ' ORDER BY a.attnum)
               FILTER (WHERE r.type <> pg_catalog.format_type(a.atttypid, a.atttypmod))
      INTO missing, differ
      FROM pg_catalog.pg_attribute a
      LEFT JOIN unnest(rnames, rtypes) AS r(name, type) ON r.name = a.attname
     WHERE a.attrelid = local AND a.attnum > 0 AND NOT a.attisdropped;
    IF missing IS NOT NULL OR differ IS NOT NULL THEN
        RAISE EXCEPTION 'columns of "%" do not match the hospital''s table "%.%"', local, remote_schema, rtable
            USING ERRCODE = 'datatype_mismatch',
                  DETAIL = concat_ws(' ', 'Missing at the hospital: ' || missing || '.',
                                          'Different types: ' || differ || '.');
    END IF;

    -- Federating again replaces the view; another relation of that name is an error.
    DELETE FROM edgesync.federations f
     WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid = f.view);
    old := to_regclass(format('%I.%I', nsp, vname));
    IF old IS NOT NULL THEN
        IF NOT EXISTS (SELECT FROM edgesync.federations f WHERE f.view = old) THEN
            RAISE EXCEPTION 'relation "%" already exists', old
                USING ERRCODE = 'duplicate_table',
                      HINT = 'Pass another name as view_name.';
        END IF;
        PERFORM edgesync.unfederate(old);
    END IF;
    IF to_regclass(format('%I.%I', nsp, sname)) IS NOT NULL THEN
        RAISE EXCEPTION 'relation "%.%" already exists', nsp, sname
            USING ERRCODE = 'duplicate_table',
                  HINT = 'Pass another name as view_name.';
    END IF;

    SELECT string_agg(format('%I %s', attname, pg_catalog.format_type(atttypid, atttypmod)), ', ' ORDER BY attnum),
           string_agg(format('%I', attname), ', ' ORDER BY attnum)
      INTO cols, names
      FROM pg_catalog.pg_attribute
     WHERE attrelid = local AND attnum > 0 AND NOT attisdropped;
    EXECUTE format('CREATE FOREIGN TABLE %I.%I (%s, _source text, _version bigint) SERVER edgesync_federate '
                   'OPTIONS (server %L, schema_name %L, table_name %L, replica_schema %L, replica_table %L)',
                   nsp, sname, cols, server, remote_schema, rtable, nsp, rel.relname);
    EXECUTE format('COMMENT ON FOREIGN TABLE %I.%I IS %L', nsp, sname,
                   format('edgesync: the scan under federated view %I.%I', nsp, vname));
    EXECUTE format('CREATE VIEW %I.%I AS SELECT %s, _source, _version FROM %I.%I', nsp, vname, names, nsp, sname);
    v := format('%I.%I', nsp, vname)::regclass;
    EXECUTE format('COMMENT ON VIEW %s IS %L', v,
                   format('edgesync: %s merged with %I.%I on server %I; the higher version wins',
                          local, remote_schema, rtable, server));
    INSERT INTO edgesync.federations (view, scan, replica, server, remote_schema, remote_table)
    VALUES (v, format('%I.%I', nsp, sname)::regclass, local, server, remote_schema, rtable);
    RETURN v;
END
$$;
COMMENT ON FUNCTION edgesync.federate(regclass, name, name, name, name) IS
    'edgesync: create (or replace) a view of a replica merged with its live hospital table';

-- unfederate(): drop a federated view and the foreign table under it.
CREATE FUNCTION edgesync.unfederate(view regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    f edgesync.federations;
BEGIN
    SELECT * INTO f FROM edgesync.federations WHERE federations.view = unfederate.view;
    IF NOT FOUND THEN
        RAISE EXCEPTION '"%" is not a federated view', view
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'Federated views are listed in edgesync.federations.';
    END IF;
    DELETE FROM edgesync.federations WHERE federations.view = unfederate.view;
    EXECUTE format('DROP VIEW %s', f.view);
    EXECUTE format('DROP FOREIGN TABLE %s', f.scan);
END
$$;
COMMENT ON FUNCTION edgesync.unfederate(regclass) IS 'edgesync: drop a federated view';
