-- edgesync 0.1.0 -> 0.2.0 (ALTER EXTENSION edgesync UPDATE).
--
-- Brings an installed 0.1.0 to exactly what CREATE EXTENSION edgesync gives
-- in 0.2.0: test/t/050_upgrade.pl compares the two catalogs object by
-- object.  Every change to the pieces' SQL (src/*/*.sql) in 0.2.0 has its
-- counterpart here, under the heading of its piece.
\echo Use "ALTER EXTENSION edgesync UPDATE" to load this file. \quit

-- core

-- track

-- tracked_schemas names its schemas (pg_upgrade refuses a regnamespace
-- column); _on_ddl() follows a rename, _on_drop() a drop, by name.  First in
-- this script.  0.1.0's _on_ddl(), which reads the old column, stays
-- installed until it is replaced below: its recursion guard, on for the rest
-- of this transaction, keeps it out of the way (0.2.0 reads no such guard).
SELECT pg_catalog.set_config('edgesync_internal.in_track', 'on', true);
ALTER TABLE edgesync.tracked_schemas RENAME COLUMN nspid TO nspname;
ALTER TABLE edgesync.tracked_schemas ALTER COLUMN nspname TYPE name
    USING (pg_catalog.parse_ident(nspname::pg_catalog.text))[1];
-- PostgreSQL 18 catalogs the NOT NULL constraint under the column's old name.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_constraint
                WHERE conrelid = 'edgesync.tracked_schemas'::pg_catalog.regclass
                  AND conname = 'tracked_schemas_nspid_not_null') THEN
        ALTER TABLE edgesync.tracked_schemas
            RENAME CONSTRAINT tracked_schemas_nspid_not_null TO tracked_schemas_nspname_not_null;
    END IF;
END
$$;

-- track() and the catalog writers check everything themselves (issue 17);
-- edgesync's triggers are recognised by what they are, not by name; the
-- user-settable recursion guard edgesync_internal.in_track is gone; a
-- tracked table cannot be turned into a view, made unlogged or attached as
-- a partition (the DDL event trigger also wakes on CREATE RULE).

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

-- Backups, restores, partitions (issue 13): the DDL trigger acts on what a
-- command did (a new table, an attached or detached partition), never on
-- every command touching a tracked table, so that a restore finds nothing
-- added behind its back; tables of tracked schemas without a primary key
-- wait in pending_tables; ATTACH PARTITION of a tracked table or of one
-- without the managed columns works (_on_ddl_start); partitions of a
-- tracked table stay permanent.
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

CREATE OR REPLACE FUNCTION edgesync.track(tbl regclass, log_changes boolean DEFAULT true,
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

DROP FUNCTION edgesync._add_truncate_trigger(regclass);
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

CREATE OR REPLACE FUNCTION edgesync._drop_truncate_triggers(tbl regclass) RETURNS void
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

CREATE OR REPLACE FUNCTION edgesync.untrack(tbl regclass) RETURNS void
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

-- track(t) as the owner of t, for a caller who owns it (src/track/ddl.cpp):
-- the DDL trigger, which runs as the extension's owner, tracks a new table
-- with the rights of the role that created it.
CREATE FUNCTION edgesync._track_as_owner(tbl regclass) RETURNS void
    AS 'MODULE_PATHNAME', 'edgesync_track_as_owner' LANGUAGE C STRICT;

-- Tracks t (as its owner) unless it is already tracked; warns and returns
-- false if it has no primary key.
CREATE OR REPLACE FUNCTION edgesync._track_if_possible(t regclass) RETURNS boolean
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

CREATE OR REPLACE FUNCTION edgesync._on_ddl() RETURNS event_trigger
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

DROP EVENT TRIGGER edgesync_ddl;
CREATE EVENT TRIGGER edgesync_ddl ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'ALTER TABLE', 'CREATE INDEX',
                 'CREATE RULE', 'ALTER SCHEMA')
    EXECUTE FUNCTION edgesync._on_ddl();
CREATE EVENT TRIGGER edgesync_ddl_start ON ddl_command_start
    WHEN TAG IN ('ALTER TABLE')
    EXECUTE FUNCTION edgesync._on_ddl_start();

CREATE OR REPLACE FUNCTION edgesync._on_drop() RETURNS event_trigger
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

-- Tables of tracked schemas that have no primary key wait for one, as 0.1.0
-- would have tracked them once it was added.
INSERT INTO edgesync.pending_tables (relid)
SELECT c.oid::regclass FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN edgesync.tracked_schemas s ON s.nspname OPERATOR(pg_catalog.=) n.nspname
 WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relpersistence = 'p'
   AND NOT EXISTS (SELECT FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)
   AND NOT EXISTS (SELECT FROM edgesync.tracked_tables t WHERE t.relid = c.oid);


-- The change log keeps, for a deleted row of a table with row level
-- security, the columns its policies read (images); its keys and images are
-- read only by its owner: the sync_log view masks keys for its reader.
ALTER TABLE edgesync.sync_log_data ADD COLUMN images text[];
DO $lz4$
BEGIN
    ALTER TABLE edgesync.sync_log_data ALTER COLUMN images SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    NULL;
END
$lz4$;
REVOKE SELECT ON edgesync.sync_log_data FROM edgesync_reader, edgesync_admin;
GRANT SELECT (first_id, xid, changed_at, relid, role, ops, versions, application_name)
    ON edgesync.sync_log_data TO edgesync_reader, edgesync_admin;
GRANT SELECT (ctid) ON edgesync.sync_log_data TO edgesync_admin;

-- The keys of the log row at a position, as the calling role may see them:
-- a key column in clear only if it may SELECT it and its policy allows,
-- hashed as the stream hashes it, otherwise null (src/decode/log_keys.cpp).
-- It takes a row's position, never a value: no HMAC oracle.
CREATE FUNCTION edgesync._log_pks(tid) RETURNS text[]
    AS 'MODULE_PATHNAME', 'edgesync_log_pks' LANGUAGE C STRICT STABLE;
REVOKE ALL ON FUNCTION edgesync._log_pks(tid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION edgesync._log_pks(tid) TO edgesync_reader, edgesync_admin;

CREATE OR REPLACE VIEW edgesync.sync_log AS
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

-- _cursor_make() is open again (current_cursor() and pull() are).
DROP FUNCTION edgesync._cursor_make(text, text, text, bigint, bigint);
CREATE FUNCTION edgesync._cursor_make(scope text, seen text, win text, last_xid bigint, last_id bigint)
    RETURNS text AS 'MODULE_PATHNAME', 'edgesync_cursor_make' LANGUAGE C STABLE;

-- sync

-- The log's window is for its owner; changes() masks keys for its reader;
-- pull() reads the window as the log's owner and the rows as the caller, and
-- hands out a tombstone only to a caller who could see the deleted row.
-- pull() from a NULL cursor loads the whole table first, consistent with
-- the changes after it, and fills its pages, oldest change first (issue 16);
-- rxdb_pull() and rxdb_push() speak RxDB's replication protocol.
DROP FUNCTION edgesync._window(text, text, oid, integer);
DROP FUNCTION edgesync.changes(text, integer);
DROP FUNCTION edgesync.pull(regclass, text, integer);
DROP FUNCTION edgesync.current_cursor(regclass);
CREATE FUNCTION edgesync._window(scope text, cursor text, rel oid, max integer)
RETURNS TABLE (log_id bigint, log_xid bigint, log_relid oid, log_pk text, log_op "char",
               log_version bigint, log_changed_at timestamptz, log_role oid, log_app text,
               next_cursor text, log_image text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
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
        -- Batch rows of transactions new in the window, not yet read, with
        -- how many changes each has left to read ...
        SELECT d.*, f.fresh, sum(f.fresh) OVER (ORDER BY d.xid, d.first_id) AS upto
          FROM edgesync.sync_log_data d
         CROSS JOIN LATERAL (
               SELECT CASE WHEN d.xid = c.last_xid
                           THEN least(cardinality(d.ops), d.first_id + cardinality(d.ops) - 1 - c.last_id)
                           ELSE cardinality(d.ops) END AS fresh) f
         WHERE d.xid >= lo
           AND d.xid < pg_snapshot_xmax(win)::text::bigint
           AND (rel IS NULL OR d.relid = rel)
           AND pg_visible_in_snapshot(d.xid::text::xid8, win)
           AND (seen IS NULL OR NOT pg_visible_in_snapshot(d.xid::text::xid8, seen))
           AND (c.last_xid IS NULL
                OR (d.xid, d.first_id + cardinality(d.ops) - 1) > (c.last_xid, c.last_id))
    ), wanted AS (
        -- ... of which, in (xid, id) order, only those the page needs: a
        -- large window is not unnested whole for every page of it ...
        SELECT r.* FROM rows r WHERE r.upto - r.fresh < max + 1
    ), changes AS (
        -- ... and their changes, in (xid, id) order.
        SELECT r.xid, r.first_id + e.n - 1 AS id, r.relid, e.pk, e.op, e.version,
               r.changed_at, r.role, r.application_name, e.image
          FROM wanted r
         CROSS JOIN LATERAL unnest(r.pks, r.ops, r.versions, r.images)
                            WITH ORDINALITY AS e(pk, op, version, image, n)
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
           END,
           b.image
      FROM batch b
     WHERE b.n <= max
     ORDER BY b.n;
END
$$;

CREATE FUNCTION edgesync.changes(cursor text, max integer DEFAULT 1000)
RETURNS TABLE (id bigint, relid regclass, pk jsonb, op "char", version bigint, xid xid8,
               changed_at timestamptz, role regrole, application_name text, next_cursor text)
    AS 'MODULE_PATHNAME', 'edgesync_changes' LANGUAGE C;
COMMENT ON FUNCTION edgesync.changes(text, integer) IS
    'edgesync: the next changes of all tracked tables after a cursor (NULL: from the start)';

CREATE FUNCTION edgesync.current_cursor(tbl regclass DEFAULT NULL) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT edgesync._cursor_make(CASE WHEN tbl IS NULL THEN 'all' ELSE 'rel' || tbl::oid END,
                                 pg_current_snapshot()::text, NULL, NULL, NULL)
$$;

CREATE FUNCTION edgesync._select_policy_qual(tbl regclass) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce('(' || string_agg('(' || pg_get_expr(p.polqual, p.polrelid) || ')', ' OR ')
                              FILTER (WHERE p.polpermissive) || ')', 'false')
           || coalesce(' AND ' || string_agg('(' || pg_get_expr(p.polqual, p.polrelid) || ')', ' AND ')
                                  FILTER (WHERE NOT p.polpermissive), '')
      FROM pg_policy p
     WHERE p.polrelid = tbl AND p.polcmd IN ('r', '*') AND p.polqual IS NOT NULL
       AND (0::oid = ANY (p.polroles)
            OR EXISTS (SELECT FROM unnest(p.polroles) AS r WHERE pg_has_role(current_user, r, 'USAGE')))
$$;

CREATE FUNCTION edgesync.pull(tbl regclass, cursor text, max integer DEFAULT 1000)
RETURNS TABLE (pk jsonb, "row" json, version bigint, deleted boolean, next_cursor text)
    AS 'MODULE_PATHNAME', 'edgesync_pull' LANGUAGE C;
COMMENT ON FUNCTION edgesync.pull(regclass, text, integer) IS
    'edgesync: every row, then the rows changed and tombstones of rows deleted, after a cursor';

CREATE OR REPLACE PROCEDURE edgesync.prune(older_than interval, batch_size integer DEFAULT 100,
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
                RETURNING d.xid, pg_catalog.cardinality(d.ops) AS changes
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

CREATE FUNCTION edgesync.rxdb_pull(tbl regclass, checkpoint jsonb, batch_size integer DEFAULT 100)
RETURNS json
    AS 'MODULE_PATHNAME', 'edgesync_rxdb_pull' LANGUAGE C;
COMMENT ON FUNCTION edgesync.rxdb_pull(regclass, jsonb, integer) IS
    'edgesync: RxDB replication, pull handler: {"documents": [...], "checkpoint": {...}}';

CREATE FUNCTION edgesync.rxdb_push(tbl regclass, rows jsonb)
RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    changes  jsonb;
    bad      integer;
    result   jsonb;
BEGIN
    IF jsonb_typeof(rows) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'rows must be a JSON array'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Got a JSON %s.', coalesce(jsonb_typeof(rows), 'NULL')),
                  HINT = 'Pass RxDB''s push rows: [{"newDocumentState": {...}, "assumedMasterState": {...}}, ...].';
    END IF;
    SELECT min(r.n) INTO bad FROM jsonb_array_elements(rows) WITH ORDINALITY AS r(e, n)
     WHERE jsonb_typeof(r.e) IS DISTINCT FROM 'object'
        OR jsonb_typeof(r.e->'newDocumentState') IS DISTINCT FROM 'object'
        OR jsonb_typeof(coalesce(r.e->'assumedMasterState', 'null')) NOT IN ('object', 'null');
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'element % of rows is not a push row', bad
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A push row is an object with a "newDocumentState" object and an optional "assumedMasterState" object.';
    END IF;

    -- Each document as push() takes it: a device's new document is an insert,
    -- a change of a document it had is an update or delete based on that
    -- document's version.  RxDB's own fields (_deleted, _meta, ...) are not columns.
    SELECT jsonb_agg(jsonb_build_object(
               'op', CASE WHEN (r.e->'newDocumentState'->>'_deleted')::boolean THEN 'delete'
                          WHEN NOT r.had THEN 'insert'
                          ELSE 'update' END,
               'row', (SELECT coalesce(jsonb_object_agg(d.key, d.value), '{}')
                         FROM jsonb_each(r.e->'newDocumentState') AS d
                        WHERE d.key NOT LIKE '\_%'),
               'version', CASE WHEN r.had THEN r.e->'assumedMasterState'->'version'
                               WHEN (r.e->'newDocumentState'->>'_deleted')::boolean THEN '0' END)
           ORDER BY r.n)
      INTO changes
      FROM jsonb_array_elements(rows) WITH ORDINALITY AS e(e, n)
     CROSS JOIN LATERAL (
           SELECT e.e, e.n,
                  coalesce(jsonb_typeof(e.e->'assumedMasterState') = 'object'
                           AND NOT coalesce((e.e->'assumedMasterState'->>'_deleted')::boolean, false),
                           false) AS had) r;

    SELECT coalesce(jsonb_agg(CASE WHEN p."row" IS NULL THEN p.pk || '{"_deleted": true}'
                                   ELSE p."row" || '{"_deleted": false}' END ORDER BY p.ord), '[]')
      INTO result
      FROM edgesync.push(tbl, coalesce(changes, '[]')) AS p
     WHERE p.status = 'conflict'
       AND NOT (p.op = 'delete' AND p."row" IS NULL);
    RETURN result;
END
$$;
COMMENT ON FUNCTION edgesync.rxdb_push(regclass, jsonb) IS
    'edgesync: RxDB replication, push handler: applies rows, returns the conflicts as documents';

CREATE OR REPLACE FUNCTION edgesync.push(tbl regclass, changes jsonb)
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
    fast     boolean;
    stored   jsonb;
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
    END LOOP;
    -- Values of the right types: all at once, element by element only to
    -- name the one that is wrong.
    BEGIN
        EXECUTE format('SELECT count(jsonb_populate_record(NULL::%s, e->''row'')), count((e->>''version'')::bigint)'
                       ' FROM jsonb_array_elements($1) AS e', tbl) USING changes;
    EXCEPTION WHEN data_exception THEN
        i := 0;
        FOR e IN SELECT value FROM jsonb_array_elements(changes) LOOP
            i := i + 1;
            BEGIN
                EXECUTE format('SELECT jsonb_populate_record(NULL::%s, $1)', tbl) USING e->'row';
                assumed := (e->>'version')::bigint;
            EXCEPTION WHEN data_exception THEN
                RAISE EXCEPTION 'element % of changes has an invalid value', i
                    USING ERRCODE = SQLSTATE, DETAIL = SQLERRM;
            END;
        END LOOP;
    END;

    -- 2a. Updates only, each of another key, all setting the same columns
    -- (what a device sends after editing rows offline): one UPDATE for the
    -- whole batch; then, change by change as below, each row not updated
    -- looked up afresh, in a statement of its own.
    SELECT bool_and(x.op = 'update') AND count(DISTINCT x.cols) = 1 AND count(x.cols) = count(*)
      INTO fast
      FROM (SELECT e->>'op' AS op,
                   (SELECT array_agg(key ORDER BY key) FROM jsonb_object_keys(e->'row') AS key
                     WHERE key <> ALL (managed) AND key <> ALL (keys)) AS cols
              FROM jsonb_array_elements(changes) AS e) x;
    IF fast THEN
        SELECT string_agg(format('k.%I', key), ', ') INTO cols FROM unnest(keys) AS key;
        EXECUTE format('SELECT count(DISTINCT ROW(%s)) = count(*) FROM jsonb_array_elements($1) AS e,'
                       ' jsonb_populate_record(NULL::%s, e->''row'') AS k', cols, tbl)
           INTO fast USING changes;
    END IF;
    IF fast THEN
        SELECT string_agg(format('%1$I = (k.r).%1$I', key), ', ') INTO sets
          FROM jsonb_object_keys(changes->0->'row') AS key WHERE key <> ALL (managed) AND key <> ALL (keys);
        EXECUTE format('WITH k AS (SELECT e.ord, (e.value->>''version'')::bigint AS assumed, r'
                       '             FROM jsonb_array_elements($1) WITH ORDINALITY AS e(value, ord),'
                       '                  jsonb_populate_record(NULL::%1$s, e.value->''row'') AS r),'
                       '     u AS (UPDATE %1$s AS t SET %2$s, version = k.assumed FROM k'
                       '            WHERE %3$s AND t.version = k.assumed RETURNING k.ord, to_jsonb(t.*) AS r)'
                       ' SELECT jsonb_object_agg(u.ord::text, u.r) FROM u',
                       tbl, sets, (SELECT string_agg(format('t.%1$I = (k.r).%1$I', key), ' AND ')
                                     FROM unnest(keys) AS key))
           INTO stored USING changes;
        i := 0;
        FOR e IN SELECT value FROM jsonb_array_elements(changes) LOOP
            i := i + 1;
            r := e->'row';
            op := 'update';
            assumed := (e->>'version')::bigint;
            pk := (SELECT jsonb_object_agg(key, r->key) FROM unnest(keys) AS key);
            current := stored->(i::text);
            IF current IS NULL THEN
                EXECUTE format('SELECT to_jsonb(t.*) FROM %1$s AS t, jsonb_populate_record(NULL::%1$s, $1) AS k WHERE %2$s',
                               tbl, match)
                   INTO current USING r;
            END IF;
            ord := i;
            status := CASE WHEN stored ? i::text OR (current->>'version')::bigint = assumed
                           THEN 'applied' ELSE 'conflict' END;
            "row" := current;
            version := (current->>'version')::bigint;
            RETURN NEXT;
        END LOOP;
        RETURN;
    END IF;

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

        -- Applied: the row as stored (none once deleted).  Otherwise the
        -- current row, which also tells an update that changed nothing (the
        -- trigger skips it) from a conflict.
        IF affected > 0 THEN
            current := CASE WHEN op = 'delete' THEN NULL ELSE result END;
        ELSE
            EXECUTE format('SELECT to_jsonb(t.*) FROM %1$s AS t, jsonb_populate_record(NULL::%1$s, $1) AS k WHERE %2$s',
                           tbl, match)
               INTO current USING r;
        END IF;
        ord := i;
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

REVOKE ALL ON FUNCTION edgesync._window(text, text, oid, integer), edgesync.changes(text, integer)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION edgesync.changes(text, integer) TO edgesync_reader;

-- decode

-- Column policies are kept by the column's name, not its number (a dump and
-- restore renumbers the columns of a table that had one dropped), filled
-- from the names the numbers have now; a policy of a dropped column goes.
-- In place, without a rewrite: a slot may still decode WAL from before the
-- update, which reads this user catalog table as it was then (its old rows
-- stay until the slot no longer needs them).
ALTER TABLE edgesync.column_policies ADD COLUMN attname name;
UPDATE edgesync.column_policies p SET attname = a.attname
  FROM pg_catalog.pg_attribute a
 WHERE a.attrelid OPERATOR(pg_catalog.=) p.relid::pg_catalog.oid
   AND a.attnum OPERATOR(pg_catalog.=) p.attnum AND NOT a.attisdropped;
DELETE FROM edgesync.column_policies WHERE attname IS NULL;
ALTER TABLE edgesync.column_policies DROP CONSTRAINT column_policies_pkey;
ALTER TABLE edgesync.column_policies DROP COLUMN attnum;
ALTER TABLE edgesync.column_policies ALTER COLUMN attname SET NOT NULL;
ALTER TABLE edgesync.column_policies ADD PRIMARY KEY (relid, attname);

CREATE OR REPLACE FUNCTION edgesync._on_drop_policies() RETURNS event_trigger
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
DROP EVENT TRIGGER edgesync_drop_policies;
CREATE EVENT TRIGGER edgesync_drop_policies ON sql_drop
    EXECUTE FUNCTION edgesync._on_drop_policies();
ALTER EVENT TRIGGER edgesync_drop_policies ENABLE ALWAYS;

CREATE FUNCTION edgesync._on_rename_column() RETURNS event_trigger
    AS 'MODULE_PATHNAME', 'edgesync_on_rename_column' LANGUAGE C;
REVOKE ALL ON FUNCTION edgesync._on_rename_column() FROM PUBLIC;
CREATE EVENT TRIGGER edgesync_rename_policies ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE')
    EXECUTE FUNCTION edgesync._on_rename_column();
ALTER EVENT TRIGGER edgesync_rename_policies ENABLE ALWAYS;

-- The apply functions grant nothing the caller does not have: they run with
-- the caller's rights, the applier writes applied_lsn itself, and
-- edgesync_admin no longer applies.
ALTER FUNCTION edgesync.apply_begin(text, pg_lsn) SECURITY INVOKER;
ALTER FUNCTION edgesync.apply_resync(text) SECURITY INVOKER;
GRANT INSERT, UPDATE ON edgesync.applied_lsn TO edgesync_applier;
REVOKE EXECUTE ON FUNCTION edgesync.apply_begin(text, pg_lsn), edgesync.apply_resync(text),
    edgesync.apply_truncate(regclass[], boolean, boolean) FROM edgesync_admin;

-- The sql format applies in plain SQL, with nothing of edgesync on the
-- replica (src/decode/replica_sql.hpp).  apply_begin() and apply_resync(),
-- which streams of 0.1.0 call, become PL/pgSQL wrappers of that same SQL:
-- the same table, the same settings.  Their C symbols now only say to run
-- this update.
CREATE OR REPLACE FUNCTION edgesync.apply_begin(source text, commit_lsn pg_lsn) RETURNS boolean
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
CREATE OR REPLACE FUNCTION edgesync.apply_resync(source text) RETURNS void
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

-- ship

-- The shipper's queries run with search_path = pg_catalog, pg_temp however
-- _ship() is called (the worker sets it where it starts).
ALTER FUNCTION edgesync._ship(text, integer) SET search_path = pg_catalog, pg_temp;

-- Targets belong to a role (owner.hpp).  Those of 0.1.0 were added by some
-- member of edgesync_admin: they belong to edgesync_admin, a non-superuser,
-- until a superuser sets their URL again.
ALTER TABLE edgesync.targets ADD COLUMN owner regrole;
UPDATE edgesync.targets SET owner = 'edgesync_admin'::regrole;
ALTER TABLE edgesync.targets ALTER COLUMN owner SET NOT NULL;

-- A replica's whole error, which may quote row values, for edgesync_admin
-- only: target_status (edgesync_reader) keeps last_error without them.
ALTER TABLE edgesync.target_state ADD COLUMN last_error_detail text;

CREATE FUNCTION edgesync._calling_role() RETURNS regrole
    AS 'MODULE_PATHNAME', 'edgesync_calling_role' LANGUAGE C STABLE STRICT;
REVOKE ALL ON FUNCTION edgesync._calling_role() FROM PUBLIC;
CREATE FUNCTION edgesync._check_target_owner(target text, url text, owner regrole) RETURNS void
    AS 'MODULE_PATHNAME', 'edgesync_check_target_owner' LANGUAGE C STABLE STRICT;
REVOKE ALL ON FUNCTION edgesync._check_target_owner(text, text, regrole) FROM PUBLIC;

-- add_target() and alter_target() connect to a replica once before they
-- change anything (issue 12).
CREATE FUNCTION edgesync._check_target_connection(target text, url text, password text,
                                                  owner regrole, timeout_ms integer,
                                                  replica_schema text) RETURNS void
    AS 'MODULE_PATHNAME', 'edgesync_check_target_connection' LANGUAGE C VOLATILE STRICT;
REVOKE ALL ON FUNCTION edgesync._check_target_connection(text, text, text, regrole, integer, text) FROM PUBLIC;

CREATE FUNCTION edgesync._warn_unbounded_wal(target text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF pg_catalog.current_setting('max_slot_wal_keep_size') OPERATOR(pg_catalog.=) '-1' THEN
        RAISE WARNING 'the slot of target "%" may hold back WAL without limit', target
            USING DETAIL = pg_catalog.format('max_slot_wal_keep_size is -1: while the target is '
                                             'down or disabled, its slot "%s" keeps every WAL '
                                             'segment written since its last acknowledged '
                                             'batch, until the disk is full.',
                                             'edgesync_' OPERATOR(pg_catalog.||) target),
                  HINT = 'Set max_slot_wal_keep_size in postgresql.conf (for example 20GB) and '
                         'reload; a target whose slot is then invalidated comes back with '
                         'edgesync.resync().';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION edgesync._warn_unbounded_wal(text) FROM PUBLIC;

-- add_target() and alter_target() are replaced below, with the replica's
-- settings (issue 12).

-- When a failing target recovered (issue 18).
ALTER TABLE edgesync.target_state ADD COLUMN last_error_cleared_at timestamptz;

-- Each target is shipped by a worker of its own (issue 18): what it is doing
-- now comes from shared memory (and _drop_target_slot(), below, ends a
-- worker that holds the slot of a target being dropped).
CREATE FUNCTION edgesync._target_activity(OUT name text, OUT state text,
                                          OUT state_since timestamptz, OUT pid integer)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'edgesync_target_activity' LANGUAGE C STRICT VOLATILE;
REVOKE ALL ON FUNCTION edgesync._target_activity() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION edgesync._target_activity() TO edgesync_reader, edgesync_admin;

-- target_status says why no worker ships a target (issue 12).
CREATE FUNCTION edgesync._unserved_reason() RETURNS text
    AS 'MODULE_PATHNAME', 'edgesync_unserved_reason' LANGUAGE C STABLE;
REVOKE ALL ON FUNCTION edgesync._unserved_reason() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION edgesync._unserved_reason() TO edgesync_reader, edgesync_admin;

CREATE OR REPLACE VIEW edgesync.target_status AS
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
       st.resync_pending,
       t.owner,
       CASE WHEN pg_catalog.current_setting('max_slot_wal_keep_size') OPERATOR(pg_catalog.<>) '-1'
            THEN pg_catalog.pg_size_bytes(pg_catalog.current_setting('max_slot_wal_keep_size'))
       END                                                                AS wal_limit_bytes,
       s.safe_wal_size,
       st.last_attempt,
       st.last_error_cleared_at,
       CASE WHEN a.state IS NOT NULL THEN a.state
            WHEN NOT t.enabled THEN 'disabled'
            ELSE coalesce(edgesync._unserved_reason(), 'no worker') END   AS state,
       a.state_since,
       a.pid
  FROM edgesync.targets t
  LEFT JOIN edgesync.target_state st ON st.name = t.name
  LEFT JOIN pg_catalog.pg_replication_slots s
         ON s.slot_name = t.slot_name AND s.database = current_database()
  LEFT JOIN edgesync._target_activity() a ON a.name = t.name;

-- Targets are in a dump, their secrets, state and slots are not: resync()
-- gives a restored target a slot and state, alter_target() its secrets; a
-- database restored next to its original never takes the original's slots
-- (issue 13).
SELECT pg_catalog.pg_extension_config_dump('edgesync.targets', '');

-- Targets' slots are failover slots where the server has them (17 and later).
CREATE OR REPLACE FUNCTION edgesync._create_target_slot(slot text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    other name;
BEGIN
    -- Slot names are the server's: one of another database (whose targets a
    -- database restored next to it has) is refused, never touched.
    SELECT s.database INTO other FROM pg_replication_slots s
     WHERE s.slot_name = slot AND s.database IS DISTINCT FROM current_database();
    IF FOUND THEN
        RAISE EXCEPTION 'replication slot "%" belongs to database "%"', slot, other
            USING ERRCODE = 'duplicate_object',
                  DETAIL = 'Slot names are shared by all databases of the server.',
                  HINT = 'If this database is a copy restored next to that one, it cannot ship to the same target: drop the target here with edgesync.drop_target(), and add it under another name if the copy is to ship.';
    END IF;
    IF EXISTS (SELECT FROM pg_replication_slots s WHERE s.slot_name = slot)
       AND NOT EXISTS (SELECT FROM edgesync.targets t WHERE t.slot_name = slot) THEN
        PERFORM pg_drop_replication_slot(slot);
    END IF;
    -- A failover slot where the server has them (PostgreSQL 17): standbys
    -- that synchronize slots keep a copy, so a promoted standby goes on
    -- shipping where the old primary stopped (docs/shipping.md).
    IF EXISTS (SELECT FROM pg_catalog.pg_proc p
                WHERE p.oid = 'pg_catalog.pg_create_logical_replication_slot'::pg_catalog.regproc
                  AND 'failover' OPERATOR(pg_catalog.=) ANY (p.proargnames)) THEN
        EXECUTE 'SELECT pg_catalog.pg_create_logical_replication_slot($1, ''edgesync'', failover => true)'
          USING slot;
    ELSE
        PERFORM pg_create_logical_replication_slot(slot, 'edgesync');
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION edgesync._drop_target_slot(slot text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    tries integer := 0;
BEGIN
    LOOP
        BEGIN
            IF EXISTS (SELECT FROM pg_replication_slots s
                        WHERE s.slot_name = slot AND s.database = current_database()) THEN
                PERFORM pg_drop_replication_slot(slot);
            END IF;
            RETURN;
        EXCEPTION WHEN object_in_use THEN
            tries := tries + 1;
            IF tries >= 100 THEN
                RAISE;
            END IF;
            IF tries = 10 THEN
                BEGIN
                    PERFORM pg_terminate_backend(a.pid)
                       FROM pg_replication_slots s
                       JOIN pg_stat_activity a ON a.pid = s.active_pid
                      WHERE s.slot_name = slot AND s.database = current_database()
                        AND a.backend_type = 'edgesync shipper';
                EXCEPTION WHEN insufficient_privilege THEN
                    NULL;  -- an owner who is not superuser waits, as before
                END;
            END IF;
            PERFORM pg_sleep(0.1);
        END;
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION edgesync.resync(target text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t edgesync.targets := edgesync._require_target(target);
BEGIN
    PERFORM edgesync._drop_target_slot(t.slot_name);
    PERFORM edgesync._create_target_slot(t.slot_name);
    -- A restored target has neither secrets nor state (not in a dump).
    INSERT INTO edgesync.target_secrets (name) VALUES (t.name) ON CONFLICT (name) DO NOTHING;
    INSERT INTO edgesync.target_state (name) VALUES (t.name) ON CONFLICT (name) DO NOTHING;
    UPDATE edgesync.target_state SET resync_pending = true, next_retry = NULL, pending_end = NULL,
           acked_lsn = NULL
     WHERE target_state.name = t.name;
END
$$;

-- A replica's schema (issue 12): where the apply puts everything on the
-- replica, and whether the stream changes the replica's tables or only
-- checks them (docs/replica.md).  add_target() and alter_target() take both.
ALTER TABLE edgesync.targets ADD COLUMN replica_schema text,
    ADD COLUMN schema_changes text NOT NULL DEFAULT 'apply'
        CHECK (schema_changes IN ('apply', 'check'));
CREATE FUNCTION edgesync._check_replica_settings(kind text, replica_schema text, schema_changes text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF schema_changes IS NULL OR schema_changes NOT IN ('apply', 'check') THEN
        RAISE EXCEPTION 'invalid value for schema_changes'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Valid values are "apply" and "check".';
    END IF;
    IF replica_schema IS NOT NULL AND octet_length(replica_schema) NOT BETWEEN 1 AND 63 THEN
        RAISE EXCEPTION 'replica_schema must have 1 to 63 bytes'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF kind = 'http' AND (replica_schema IS NOT NULL OR schema_changes <> 'apply') THEN
        RAISE EXCEPTION 'replica_schema and schema_changes apply to postgresql targets only'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;
DROP FUNCTION edgesync.add_target(text, text, text, jsonb, text, integer, bigint, text, boolean, integer);
DROP FUNCTION edgesync.alter_target(text, text, text, jsonb, text, integer, bigint, text, boolean, integer);
CREATE FUNCTION edgesync.add_target(name text, url text, bearer_token text DEFAULT NULL,
                                    headers jsonb DEFAULT '{}', ca_file text DEFAULT NULL,
                                    batch_changes integer DEFAULT 1000,
                                    batch_bytes bigint DEFAULT 4194304,
                                    columns text DEFAULT 'policy', enabled boolean DEFAULT true,
                                    timeout_ms integer DEFAULT 30000,
                                    replica_schema text DEFAULT NULL,
                                    schema_changes text DEFAULT 'apply')
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET log_min_error_statement = panic
AS $$
DECLARE
    target text := add_target.name;
    owner  regrole := edgesync._calling_role();
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
    PERFORM edgesync._check_replica_settings(u.kind, replica_schema, schema_changes);
    PERFORM edgesync._check_raw_columns(columns);
    PERFORM edgesync._check_target_owner(target, url, owner);
    -- A replica is connected to once, before anything is created (docs/shipping.md).
    IF enabled AND u.kind = 'postgresql' THEN
        PERFORM edgesync._check_target_connection(target, u.url, u.password, owner, timeout_ms,
                                                  coalesce(replica_schema, ''));
    END IF;
    slot := 'edgesync_' || target;
    PERFORM edgesync._create_target_slot(slot);
    BEGIN
        INSERT INTO edgesync.targets (name, kind, url, slot_name, batch_changes, batch_bytes,
                                      columns, enabled, ca_file, timeout_ms, owner,
                                      replica_schema, schema_changes)
        VALUES (target, u.kind, u.url, slot, batch_changes, batch_bytes, columns, enabled,
                ca_file, timeout_ms, owner, replica_schema, schema_changes);
        INSERT INTO edgesync.target_secrets (name, bearer_token, password, headers)
        VALUES (target, bearer_token, nullif(u.password, ''), headers);
        INSERT INTO edgesync.target_state (name) VALUES (target);
    EXCEPTION WHEN OTHERS THEN
        PERFORM edgesync._drop_target_slot(slot);
        RAISE;
    END;
    PERFORM edgesync._warn_unbounded_wal(target);
END
$$;
CREATE FUNCTION edgesync.alter_target(name text, url text DEFAULT NULL, bearer_token text DEFAULT NULL,
                                      headers jsonb DEFAULT NULL, ca_file text DEFAULT NULL,
                                      batch_changes integer DEFAULT NULL,
                                      batch_bytes bigint DEFAULT NULL, columns text DEFAULT NULL,
                                      enabled boolean DEFAULT NULL, timeout_ms integer DEFAULT NULL,
                                      replica_schema text DEFAULT NULL,
                                      schema_changes text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET log_min_error_statement = panic
AS $$
DECLARE
    t  edgesync.targets := edgesync._require_target(alter_target.name);
    s  edgesync.target_secrets;
    u  record;
    was_enabled boolean := t.enabled;
BEGIN
    SELECT * INTO s FROM edgesync.target_secrets WHERE target_secrets.name = t.name FOR UPDATE;
    IF NOT FOUND THEN  -- a restored target: secrets are not in a dump
        INSERT INTO edgesync.target_secrets (name) VALUES (t.name) RETURNING * INTO s;
    END IF;
    IF url IS NOT NULL THEN
        u := edgesync._parse_target_url(url);
        t.kind := u.kind;
        t.url := u.url;
        t.owner := edgesync._calling_role();
        s.password := nullif(u.password, '');
        PERFORM edgesync._check_target_owner(t.name, url, t.owner);
    END IF;
    IF bearer_token IS NOT NULL THEN s.bearer_token := nullif(bearer_token, ''); END IF;
    IF headers IS NOT NULL THEN s.headers := headers; END IF;
    IF ca_file IS NOT NULL THEN t.ca_file := nullif(ca_file, ''); END IF;
    t.batch_changes := coalesce(batch_changes, t.batch_changes);
    t.batch_bytes := coalesce(batch_bytes, t.batch_bytes);
    t.columns := coalesce(columns, t.columns);
    t.enabled := coalesce(enabled, t.enabled);
    t.timeout_ms := coalesce(timeout_ms, t.timeout_ms);
    -- '' goes back to the default replica schema.
    IF replica_schema IS NOT NULL THEN t.replica_schema := nullif(replica_schema, ''); END IF;
    t.schema_changes := coalesce(schema_changes, t.schema_changes);
    PERFORM edgesync._check_target_settings(t.kind, s.bearer_token, s.headers, t.ca_file,
                                            t.batch_changes, t.batch_bytes, t.columns, t.timeout_ms);
    PERFORM edgesync._check_replica_settings(t.kind, t.replica_schema, t.schema_changes);
    PERFORM edgesync._check_raw_columns(t.columns);
    -- A new URL or replica schema, or a target enabled again: the replica is
    -- connected to once first.
    IF t.enabled AND t.kind = 'postgresql'
       AND (url IS NOT NULL OR replica_schema IS NOT NULL OR NOT was_enabled) THEN
        PERFORM edgesync._check_target_connection(t.name, t.url, coalesce(s.password, ''),
                                                  t.owner, t.timeout_ms,
                                                  coalesce(t.replica_schema, ''));
    END IF;
    UPDATE edgesync.targets SET kind = t.kind, url = t.url, batch_changes = t.batch_changes,
           batch_bytes = t.batch_bytes, columns = t.columns, enabled = t.enabled,
           ca_file = t.ca_file, timeout_ms = t.timeout_ms, owner = t.owner,
           replica_schema = t.replica_schema, schema_changes = t.schema_changes
     WHERE targets.name = t.name;
    UPDATE edgesync.target_secrets SET bearer_token = s.bearer_token, password = s.password,
           headers = s.headers
     WHERE target_secrets.name = t.name;
    -- New settings deserve a prompt try.
    UPDATE edgesync.target_state SET next_retry = NULL WHERE target_state.name = t.name;
    IF enabled THEN
        PERFORM edgesync._warn_unbounded_wal(t.name);
    END IF;
END
$$;
REVOKE ALL ON FUNCTION edgesync.add_target(text, text, text, jsonb, text, integer, bigint, text, boolean, integer, text, text),
                       edgesync.alter_target(text, text, text, jsonb, text, integer, bigint, text, boolean, integer, text, text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION edgesync.add_target(text, text, text, jsonb, text, integer, bigint, text, boolean, integer, text, text),
                          edgesync.alter_target(text, text, text, jsonb, text, integer, bigint, text, boolean, integer, text, text)
    TO edgesync_admin;

-- federate

-- federate() checks that the user mapping's role sees every row and column
-- (issue: a view answering "no such patient" under row level security).
-- Whether the user mapping's role sees all of the hospital's table: every
-- row (row level security) and the given columns (column privileges).
CREATE FUNCTION edgesync._remote_access(server name, remote_schema name, remote_table name,
                                        columns text[], OUT remote_role text,
                                        OUT rows_hidden boolean, OUT unreadable text)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'edgesync_remote_access' LANGUAGE C STRICT VOLATILE;
REVOKE ALL ON FUNCTION edgesync._remote_access(name, name, name, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION edgesync._remote_access(name, name, name, text[]) TO edgesync_admin;

ALTER TABLE edgesync.federations ADD COLUMN visible_rows_only boolean NOT NULL DEFAULT false;

DROP FUNCTION edgesync.federate(regclass, name, name, name, name);
CREATE FUNCTION edgesync.federate(local regclass, server name, remote_schema name DEFAULT 'public',
                                  remote_table name DEFAULT NULL, view_name name DEFAULT NULL,
                                  visible_rows_only boolean DEFAULT false)
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
    access   record;
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

    -- A replica row that the hospital does not return is taken as deleted
    -- there: only right if the mapped role sees every row, and every column
    -- the view reads.
    SELECT * INTO access
      FROM edgesync._remote_access(server, remote_schema, rtable,
                                   ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a
                                          WHERE a.attrelid = local AND a.attnum > 0 AND NOT a.attisdropped));
    IF access.unreadable IS NOT NULL THEN
        RAISE EXCEPTION 'role "%" on server "%" cannot read columns % of "%.%"',
                        access.remote_role, server, access.unreadable, remote_schema, rtable
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'A federated view reads every column of the replica from the hospital.',
                  HINT = format('At the hospital: GRANT SELECT (%s) ON %I.%I TO %I;',
                                access.unreadable, remote_schema, rtable, access.remote_role);
    END IF;
    IF access.rows_hidden AND NOT visible_rows_only THEN
        RAISE EXCEPTION 'row level security hides rows of "%.%" from role "%" on server "%"',
                        remote_schema, rtable, access.remote_role, server
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'A federated view takes a replica row that the hospital does not return '
                           'as deleted there: it would answer that rows the role cannot see do not exist.',
                  HINT = 'Map a role that sees every row of the table (its owner, or a role with BYPASSRLS), '
                         'or pass visible_rows_only => true for a view whose rows hidden from the role '
                         'come from the replica.';
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
                   'OPTIONS (server %L, schema_name %L, table_name %L, replica_schema %L, replica_table %L%s)',
                   nsp, sname, cols, server, remote_schema, rtable, nsp, rel.relname,
                   CASE WHEN visible_rows_only THEN ', visible_rows_only ''true''' ELSE '' END);
    EXECUTE format('COMMENT ON FOREIGN TABLE %I.%I IS %L', nsp, sname,
                   format('edgesync: the scan under federated view %I.%I', nsp, vname));
    EXECUTE format('CREATE VIEW %I.%I AS SELECT %s, _source, _version FROM %I.%I', nsp, vname, names, nsp, sname);
    v := format('%I.%I', nsp, vname)::regclass;
    EXECUTE format('COMMENT ON VIEW %s IS %L', v,
                   format('edgesync: %s merged with %I.%I on server %I; the higher version wins',
                          local, remote_schema, rtable, server));
    INSERT INTO edgesync.federations (view, scan, replica, server, remote_schema, remote_table,
                                      visible_rows_only)
    VALUES (v, format('%I.%I', nsp, sname)::regclass, local, server, remote_schema, rtable,
            visible_rows_only);
    RETURN v;
END
$$;
COMMENT ON FUNCTION edgesync.federate(regclass, name, name, name, name, boolean) IS
    'edgesync: create (or replace) a view of a replica merged with its live hospital table';
