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
-- By name, not regnamespace: pg_upgrade refuses tables with reg* columns whose
-- OIDs it does not keep (schemas' are not kept); a rename is followed by
-- _on_ddl().
CREATE TABLE edgesync.tracked_schemas (
    nspname    name         PRIMARY KEY,
    tracked_at timestamptz  NOT NULL DEFAULT now()
);
COMMENT ON TABLE edgesync.tracked_schemas IS 'edgesync: schemas whose new tables are tracked automatically';
SELECT pg_catalog.pg_extension_config_dump('edgesync.tracked_schemas', '');
REVOKE ALL ON edgesync.tracked_schemas FROM PUBLIC;
GRANT SELECT ON edgesync.tracked_schemas TO edgesync_reader, edgesync_admin;

-- Tables of tracked schemas waiting for a primary key: each is tracked as
-- soon as one is added.  Only these: a table of a tracked schema untracked
-- on purpose stays untracked, and a restore, which adds primary keys after
-- loading these catalogs, tracks nothing behind its back.
CREATE TABLE edgesync.pending_tables (
    relid      regclass    PRIMARY KEY,
    pending_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE edgesync.pending_tables IS 'edgesync: tables of tracked schemas, tracked once they have a primary key';
SELECT pg_catalog.pg_extension_config_dump('edgesync.pending_tables', '');
REVOKE ALL ON edgesync.pending_tables FROM PUBLIC;
GRANT SELECT ON edgesync.pending_tables TO edgesync_reader, edgesync_admin;

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
    application_name text,
    images           text[]                 -- row level security: what the policies read of a deleted row
);
ALTER SEQUENCE edgesync.sync_log_id_seq OWNED BY edgesync.sync_log_data.first_id;
CREATE INDEX sync_log_data_xid_brin ON edgesync.sync_log_data
    USING brin (xid, changed_at) WITH (pages_per_range = 32, autosummarize = on);
DO $lz4$
BEGIN
    -- Cheaper to compress than the default pglz, where the server has it.
    ALTER TABLE edgesync.sync_log_data ALTER COLUMN versions SET COMPRESSION lz4,
                                       ALTER COLUMN pks SET COMPRESSION lz4,
                                       ALTER COLUMN images SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    NULL;
END
$lz4$;
-- The keys and images are read by nobody but the owner: the sync_log view
-- and changes() show keys masked for their reader, pull() only what its
-- caller may see (src/decode/log_keys.cpp, src/track/pull_changes.cpp).
REVOKE ALL ON edgesync.sync_log_data FROM PUBLIC;
GRANT SELECT (first_id, xid, changed_at, relid, role, ops, versions, application_name)
    ON edgesync.sync_log_data TO edgesync_reader, edgesync_admin;
GRANT SELECT (ctid), DELETE ON edgesync.sync_log_data TO edgesync_admin;

-- How far prune() has deleted: cursors from before that may have lost rows.
CREATE TABLE edgesync.sync_log_state (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    pruned_xid bigint  NOT NULL DEFAULT 0
);
INSERT INTO edgesync.sync_log_state DEFAULT VALUES;
REVOKE ALL ON edgesync.sync_log_state FROM PUBLIC;
GRANT SELECT ON edgesync.sync_log_state TO edgesync_reader, edgesync_admin;
GRANT UPDATE ON edgesync.sync_log_state TO edgesync_admin;

-- The keys of the log row at a position, as the calling role may see them:
-- a key column in clear only if it may SELECT it and its policy allows,
-- hashed as the stream hashes it, otherwise null (src/decode/log_keys.cpp).
-- It takes a row's position, never a value: no HMAC oracle.
CREATE FUNCTION edgesync._log_pks(tid) RETURNS text[]
    AS 'MODULE_PATHNAME', 'edgesync_log_pks' LANGUAGE C STRICT STABLE;
REVOKE ALL ON FUNCTION edgesync._log_pks(tid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION edgesync._log_pks(tid) TO edgesync_reader, edgesync_admin;

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
 CROSS JOIN LATERAL unnest(edgesync._log_pks(d.ctid), d.ops, d.versions) WITH ORDINALITY AS c(pk, op, version, n);
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

-- edgesync's own trigger on a table, recognised by what it is, never by
-- name alone: the trigger named tg on tbl that runs fn and is not the clone
-- of a partitioned table's trigger.  True if it is there; false if there is
-- no trigger of that name; a trigger of that name that is something else is
-- a user's: an error if strict, else a warning (the DDL event trigger must
-- not fail a user's DDL over it) and false.
CREATE FUNCTION edgesync._own_trigger(tbl regclass, tg name, fn regprocedure, strict boolean)
RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t pg_catalog.pg_trigger;
BEGIN
    SELECT * INTO t FROM pg_catalog.pg_trigger WHERE tgrelid = tbl AND tgname = tg;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF t.tgfoid = fn AND t.tgparentid = 0 THEN
        RETURN true;
    END IF;
    IF strict THEN
        RAISE EXCEPTION 'table "%" has a trigger "%" that is not edgesync''s', tbl, tg
            USING ERRCODE = 'duplicate_object',
                  DETAIL = format('edgesync names its trigger on this table "%s"; it does not replace or drop triggers it did not create.', tg),
                  HINT = 'Rename or drop that trigger, then call edgesync.track() again.';
    END IF;
    RAISE WARNING 'trigger "%" on table "%" is not edgesync''s; left alone', tg, tbl
        USING DETAIL = 'TRUNCATE of this table is not logged until it is renamed and edgesync.track() is called again.';
    RETURN false;
END
$$;

-- The columns track() maintains, added where missing (existing rows get
-- version 1 and the current time); columns of those names are kept.  Runs
-- as its caller: ALTER TABLE checks that they own the table.
CREATE FUNCTION edgesync._add_managed_columns(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    col record;
BEGIN
    FOR col IN
        SELECT c.name, c.decl
          FROM (VALUES (1, 'version', 'bigint NOT NULL DEFAULT 1'),
                       (2, 'created_at', 'timestamptz NOT NULL DEFAULT now()'),
                       (3, 'updated_at', 'timestamptz NOT NULL DEFAULT now()')) AS c(n, name, decl)
         WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a
                            WHERE a.attrelid = tbl AND a.attname = c.name AND NOT a.attisdropped)
         ORDER BY c.n
    LOOP
        EXECUTE format('ALTER TABLE %s ADD COLUMN %I %s', tbl, col.name, col.decl);
    END LOOP;
END
$$;

-- track(): make a table versioned, time-stamped and change-logged.
--
-- edgesync._register() checks everything first (kind, persistence,
-- partition, owner, primary key, managed column types: it is safe whoever
-- calls it) and registers the table before anything else changes, so that
-- the DDL event trigger, woken by the ALTER TABLE below, sees a tracked
-- table and does not track it a second time.
CREATE FUNCTION edgesync.track(tbl regclass, log_changes boolean DEFAULT true,
                               skip_unchanged boolean DEFAULT true)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    part       regclass;
BEGIN
    PERFORM edgesync._register(tbl, log_changes, skip_unchanged);
    -- A user's triggers named like ours are left alone, and the table is not tracked with them.
    PERFORM edgesync._own_trigger(tbl, 'edgesync_version', 'edgesync.version_trigger()', true);
    PERFORM edgesync._own_trigger(tbl, 'edgesync_log', 'edgesync.log_trigger()', true);

    PERFORM edgesync._add_managed_columns(tbl);

    EXECUTE format('CREATE OR REPLACE TRIGGER edgesync_version BEFORE INSERT OR UPDATE ON %s'
                   ' FOR EACH ROW EXECUTE FUNCTION edgesync.version_trigger(%L)',
                   tbl, skip_unchanged::text);
    IF log_changes THEN
        EXECUTE format('CREATE OR REPLACE TRIGGER edgesync_log AFTER INSERT OR UPDATE OR DELETE ON %s'
                       ' FOR EACH ROW EXECUTE FUNCTION edgesync.log_trigger()', tbl);
        -- Statement triggers are not inherited by partitions: each gets its own
        -- (TRUNCATE of a partition is logged under the partition's name).
        FOR part IN SELECT tbl UNION SELECT relid FROM pg_catalog.pg_partition_tree(tbl) LOOP
            PERFORM edgesync._add_truncate_trigger(part, true);
        END LOOP;
    ELSE
        IF edgesync._own_trigger(tbl, 'edgesync_log', 'edgesync.log_trigger()', true) THEN
            EXECUTE format('DROP TRIGGER edgesync_log ON %s', tbl);
        END IF;
        PERFORM edgesync._drop_truncate_triggers(tbl);
    END IF;
END
$$;
COMMENT ON FUNCTION edgesync.track(regclass, boolean, boolean) IS
    'edgesync: version, time-stamp and change-log a table (idempotent)';

-- Statement triggers are not inherited: every partition of a tracked table
-- gets its own AFTER TRUNCATE trigger (strict: see _own_trigger).
CREATE FUNCTION edgesync._add_truncate_trigger(tbl regclass, strict boolean) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF edgesync._own_trigger(tbl, 'edgesync_log_truncate', 'edgesync.log_trigger()', strict)
       OR EXISTS (SELECT FROM pg_catalog.pg_trigger
                   WHERE tgrelid = tbl AND tgname = 'edgesync_log_truncate') THEN
        RETURN;
    END IF;
    EXECUTE format('CREATE TRIGGER edgesync_log_truncate AFTER TRUNCATE ON %s'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION edgesync.log_trigger()', tbl);
END
$$;

-- Drops edgesync's own TRUNCATE triggers from tbl and its partitions.
CREATE FUNCTION edgesync._drop_truncate_triggers(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    part regclass;
BEGIN
    FOR part IN SELECT t.tgrelid FROM pg_catalog.pg_trigger t
                 WHERE t.tgname = 'edgesync_log_truncate'
                   AND t.tgfoid = 'edgesync.log_trigger()'::regprocedure AND t.tgparentid = 0
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
    PERFORM edgesync._unregister(tbl);
    -- Only edgesync's own triggers: one a user named like ours stays.
    IF edgesync._own_trigger(tbl, 'edgesync_version', 'edgesync.version_trigger()', false) THEN
        EXECUTE format('DROP TRIGGER edgesync_version ON %s', tbl);
    END IF;
    IF edgesync._own_trigger(tbl, 'edgesync_log', 'edgesync.log_trigger()', false) THEN
        EXECUTE format('DROP TRIGGER edgesync_log ON %s', tbl);
    END IF;
    PERFORM edgesync._drop_truncate_triggers(tbl);
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

-- track(t) as the owner of t, for a caller who owns it (src/track/ddl.cpp):
-- the DDL trigger, which runs as the extension's owner, tracks a new table
-- with the rights of the role that created it.
CREATE FUNCTION edgesync._track_as_owner(tbl regclass) RETURNS void
    AS 'MODULE_PATHNAME', 'edgesync_track_as_owner' LANGUAGE C STRICT;

-- Tracks t (as its owner) unless it is already tracked; warns and returns
-- false if it has no primary key.
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
    PERFORM edgesync._track_as_owner(t);
    RETURN true;
END
$$;

CREATE FUNCTION edgesync._is_tracked(t regclass) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (SELECT FROM edgesync.tracked_tables WHERE relid = t)
$$;

-- Tracks t, a table of a tracked schema, or, if it has no primary key yet,
-- warns and records that it waits for one.
CREATE FUNCTION edgesync._track_in_schema(t regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT edgesync._track_if_possible(t) AND NOT edgesync._is_tracked(t) THEN
        INSERT INTO edgesync.pending_tables (relid) VALUES (t) ON CONFLICT (relid) DO NOTHING;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION edgesync._track_in_schema(regclass) FROM PUBLIC;

-- What an ALTER TABLE did that the DDL trigger acts on: partitions attached
-- or detached, a table moved to another schema (src/track/ddl.cpp).
CREATE FUNCTION edgesync._ddl_changes(cmd pg_ddl_command, OUT change text, OUT relid regclass)
    RETURNS SETOF record AS 'MODULE_PATHNAME', 'edgesync_ddl_changes' LANGUAGE C STRICT;
REVOKE ALL ON FUNCTION edgesync._ddl_changes(pg_ddl_command) FROM PUBLIC;

-- Before ALTER TABLE ... ATTACH PARTITION into a tracked table: a tracked
-- table to attach is untracked (it is tracked as a partition from then on),
-- an untracked one gets the columns track() maintains (src/track/ddl.cpp).
-- Runs as the user attaching.
CREATE FUNCTION edgesync._on_ddl_start() RETURNS event_trigger
    AS 'MODULE_PATHNAME', 'edgesync_on_ddl_start' LANGUAGE C;

-- DDL follow-up: new and attached partitions of tracked tables, detached
-- ones, new tables in tracked schemas, and tables of those schemas that were
-- waiting for a primary key; and a tracked table must stay a table edgesync
-- can track (PostgreSQL 15 turns an empty table into a view with CREATE RULE
-- "_RETURN"; SET UNLOGGED; ATTACH PARTITION into an untracked table), and its
-- partitions permanent: such a command is refused, since the stream, resync
-- and pull read every registered relation as a table, and an unlogged
-- partition's changes never reach the WAL.  Runs as the extension owner,
-- since the user creating a table may not read edgesync's catalog.  It never
-- fails a user's DDL over someone else's objects: it looks only at the
-- relations the command touched, and edgesync's triggers are recognised by
-- what they are (their function, not a clone), not by name.
--
-- It acts on what a command did (a new table, an attached or detached
-- partition: _ddl_changes), never on every command that touches a tracked
-- table: a restore adds primary keys, indexes and the dump's own triggers
-- after loading the catalogs, in an order pg_restore -j chooses, and must
-- find nothing added behind its back.
--
-- No recursion guard is needed: track() registers a table before its own
-- ALTER TABLE, so the nested call finds it tracked.
CREATE FUNCTION edgesync._on_ddl() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    cmd     record;
    rel     pg_catalog.pg_class;
    bad     record;
    chg     record;
    changed regclass[];
    root    regclass;
    logged  boolean;
    part    regclass;
BEGIN
    IF TG_TAG = 'ALTER SCHEMA' THEN
        -- A renamed tracked schema stays tracked under its new name (the
        -- name it had is the one no schema has any more).
        UPDATE edgesync.tracked_schemas s SET nspname = n.nspname
          FROM pg_catalog.pg_event_trigger_ddl_commands() c
          JOIN pg_catalog.pg_namespace n ON n.oid = c.objid
         WHERE c.object_type = 'schema'
           AND NOT EXISTS (SELECT FROM pg_catalog.pg_namespace o
                            WHERE o.nspname OPERATOR(pg_catalog.=) s.nspname);
        RETURN;
    END IF;
    FOR cmd IN SELECT * FROM pg_catalog.pg_event_trigger_ddl_commands()
                WHERE object_type IN ('table', 'table column', 'table constraint', 'index', 'rule')
    LOOP
        SELECT c.* INTO rel FROM pg_catalog.pg_class c
         WHERE c.oid = CASE cmd.object_type
                         WHEN 'index' THEN (SELECT indrelid FROM pg_catalog.pg_index WHERE indexrelid = cmd.objid)
                         WHEN 'rule' THEN (SELECT ev_class FROM pg_catalog.pg_rewrite WHERE oid = cmd.objid)
                         ELSE cmd.objid END;
        CONTINUE WHEN rel.oid IS NULL;
        -- What the command touched: the relation, and the partitions an ALTER
        -- TABLE attached (with their own partitions) or detached.  Nothing
        -- else is looked at, nor locked: pg_partition_tree() locks every
        -- partition it lists, and a parallel restore adding keys to two
        -- partitions of a table at once would deadlock on the table's tree.
        changed := ARRAY(SELECT coalesce(t.relid, c.relid)
                           FROM edgesync._ddl_changes(cmd.command) c
                           LEFT JOIN LATERAL pg_catalog.pg_partition_tree(c.relid) t ON c.change = 'attach');
        FOR bad IN
            SELECT c.oid::regclass AS relid, c.relkind, c.relpersistence, c.relispartition
              FROM edgesync.tracked_tables t JOIN pg_catalog.pg_class c ON c.oid = t.relid
             WHERE t.relid = ANY (rel.oid::regclass || changed)
               AND (c.relkind NOT IN ('r', 'p') OR c.relpersistence <> 'p' OR c.relispartition)
        LOOP
            RAISE EXCEPTION 'table "%" is tracked by edgesync', bad.relid
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      DETAIL = format('The command would make it %s; edgesync tracks only permanent tables that are not partitions.',
                                      CASE WHEN bad.relkind = 'v' THEN 'a view'
                                           WHEN bad.relkind NOT IN ('r', 'p') THEN 'something other than a table'
                                           WHEN bad.relpersistence <> 'p' THEN 'unlogged'
                                           ELSE 'a partition' END),
                      HINT = format('Call edgesync.untrack(%L) first.', bad.relid::text);
        END LOOP;
        root := coalesce(pg_catalog.pg_partition_root(rel.oid), rel.oid);
        SELECT t.log_changes INTO logged FROM edgesync.tracked_tables t WHERE t.relid = root;
        IF FOUND THEN
            -- Every partition of a tracked table is permanent (a new one, an
            -- attached one, one made unlogged).
            FOR bad IN
                SELECT c.oid::regclass AS relid FROM pg_catalog.pg_class c
                 WHERE c.oid = ANY (rel.oid::regclass || changed) AND c.relpersistence <> 'p'
                   AND c.oid <> root
            LOOP
                RAISE EXCEPTION 'partition "%" of table "%" would be unlogged', bad.relid, root
                    USING ERRCODE = 'object_not_in_prerequisite_state',
                          DETAIL = format('Table "%s" is tracked by edgesync, and changes to unlogged tables are not written to the WAL, so they cannot be streamed.', root),
                          HINT = format('Make the partition logged (ALTER TABLE %s SET LOGGED), or call edgesync.untrack(%L) first.',
                                        bad.relid, root::text);
            END LOOP;
        END IF;
        CONTINUE WHEN rel.relkind NOT IN ('r', 'p');

        -- A new partition of a tracked table gets its TRUNCATE trigger
        -- (PostgreSQL clones the row triggers itself).
        IF cmd.command_tag = 'CREATE TABLE' AND rel.relispartition AND logged THEN
            PERFORM edgesync._add_truncate_trigger(rel.oid::regclass, false);
        END IF;

        FOR chg IN SELECT * FROM edgesync._ddl_changes(cmd.command) LOOP
            IF chg.change = 'attach' AND logged THEN
                -- An attached partition, and its own partitions.
                FOR part IN SELECT t.relid FROM pg_catalog.pg_partition_tree(chg.relid) t LOOP
                    PERFORM edgesync._add_truncate_trigger(part, false);
                END LOOP;
            ELSIF chg.change = 'detach' THEN
                -- A detached partition is a table of its own, and not tracked:
                -- PostgreSQL drops the row triggers it cloned, this its
                -- TRUNCATE triggers (ours only).  In a tracked schema it is
                -- tracked as any new table there.
                PERFORM edgesync._drop_truncate_triggers(chg.relid);
                IF EXISTS (SELECT FROM edgesync.tracked_schemas s
                             JOIN pg_catalog.pg_namespace n ON n.nspname OPERATOR(pg_catalog.=) s.nspname
                             JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid
                            WHERE c.oid = chg.relid) THEN
                    PERFORM edgesync._track_in_schema(chg.relid);
                END IF;
            ELSIF chg.change = 'set schema' AND NOT rel.relispartition AND rel.relpersistence = 'p'
                  AND EXISTS (SELECT FROM edgesync.tracked_schemas s JOIN pg_catalog.pg_namespace n
                                 ON n.nspname OPERATOR(pg_catalog.=) s.nspname
                              WHERE n.oid = rel.relnamespace)
                  AND NOT edgesync._is_tracked(chg.relid) THEN
                -- Moved into a tracked schema: as a table created there.
                PERFORM edgesync._track_in_schema(chg.relid);
            END IF;
        END LOOP;

        -- A new table of a tracked schema, or one that waited for a primary key and has one.
        IF NOT rel.relispartition AND rel.relpersistence = 'p'
           AND EXISTS (SELECT FROM edgesync.tracked_schemas s JOIN pg_catalog.pg_namespace n
                          ON n.nspname OPERATOR(pg_catalog.=) s.nspname
                       WHERE n.oid = rel.relnamespace)
           AND NOT edgesync._is_tracked(rel.oid::regclass)
           AND (cmd.command_tag IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO')
                OR (EXISTS (SELECT FROM edgesync.pending_tables WHERE relid = rel.oid)
                    AND EXISTS (SELECT FROM pg_catalog.pg_index WHERE indrelid = rel.oid AND indisprimary))) THEN
            PERFORM edgesync._track_in_schema(rel.oid::regclass);
        END IF;
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
    DELETE FROM edgesync.pending_tables t
     USING pg_catalog.pg_event_trigger_dropped_objects() d
     WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objsubid = 0 AND t.relid::oid = d.objid;
    DELETE FROM edgesync.tracked_schemas s
     USING pg_catalog.pg_event_trigger_dropped_objects() d
     WHERE d.classid = 'pg_catalog.pg_namespace'::regclass
       AND s.nspname OPERATOR(pg_catalog.=) d.object_name;
END
$$;

CREATE EVENT TRIGGER edgesync_ddl_start ON ddl_command_start
    WHEN TAG IN ('ALTER TABLE')
    EXECUTE FUNCTION edgesync._on_ddl_start();
CREATE EVENT TRIGGER edgesync_ddl ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'ALTER TABLE', 'CREATE INDEX',
                 'CREATE RULE', 'ALTER SCHEMA')
    EXECUTE FUNCTION edgesync._on_ddl();
CREATE EVENT TRIGGER edgesync_drop ON sql_drop
    WHEN TAG IN ('DROP TABLE', 'DROP SCHEMA', 'DROP OWNED')
    EXECUTE FUNCTION edgesync._on_drop();
