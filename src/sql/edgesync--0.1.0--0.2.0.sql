-- edgesync 0.1.0 -> 0.2.0 (ALTER EXTENSION edgesync UPDATE).
--
-- Brings an installed 0.1.0 to exactly what CREATE EXTENSION edgesync gives
-- in 0.2.0: test/t/050_upgrade.pl compares the two catalogs object by
-- object.  Every change to the pieces' SQL (src/*/*.sql) in 0.2.0 has its
-- counterpart here, under the heading of its piece.
\echo Use "ALTER EXTENSION edgesync UPDATE" to load this file. \quit

-- core

-- track

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

CREATE OR REPLACE FUNCTION edgesync.track(tbl regclass, log_changes boolean DEFAULT true,
                               skip_unchanged boolean DEFAULT true)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    col        record;
    part       regclass;
BEGIN
    PERFORM edgesync._register(tbl, log_changes, skip_unchanged);
    -- A user's triggers named like ours are left alone, and the table is not tracked with them.
    PERFORM edgesync._own_trigger(tbl, 'edgesync_version', 'edgesync.version_trigger()', true);
    PERFORM edgesync._own_trigger(tbl, 'edgesync_log', 'edgesync.log_trigger()', true);

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

CREATE OR REPLACE FUNCTION edgesync._on_ddl() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    cmd  record;
    rel  pg_catalog.pg_class;
    bad  record;
    root regclass;
    part regclass;
BEGIN
    FOR cmd IN SELECT * FROM pg_catalog.pg_event_trigger_ddl_commands()
                WHERE object_type IN ('table', 'table column', 'table constraint', 'index', 'rule')
    LOOP
        SELECT c.* INTO rel FROM pg_catalog.pg_class c
         WHERE c.oid = CASE cmd.object_type
                         WHEN 'index' THEN (SELECT indrelid FROM pg_catalog.pg_index WHERE indexrelid = cmd.objid)
                         WHEN 'rule' THEN (SELECT ev_class FROM pg_catalog.pg_rewrite WHERE oid = cmd.objid)
                         ELSE cmd.objid END;
        CONTINUE WHEN rel.oid IS NULL;
        FOR bad IN
            SELECT c.oid::regclass AS relid, c.relkind, c.relpersistence, c.relispartition
              FROM edgesync.tracked_tables t JOIN pg_catalog.pg_class c ON c.oid = t.relid
             WHERE t.relid IN (SELECT rel.oid UNION SELECT relid FROM pg_catalog.pg_partition_tree(rel.oid))
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
        CONTINUE WHEN rel.relkind NOT IN ('r', 'p');
        root := coalesce(pg_catalog.pg_partition_root(rel.oid), rel.oid);
        IF EXISTS (SELECT FROM edgesync.tracked_tables WHERE relid = root AND log_changes) THEN
            -- New or attached partitions (ATTACH PARTITION reports the parent).
            FOR part IN SELECT relid FROM pg_catalog.pg_partition_tree(root) LOOP
                PERFORM edgesync._add_truncate_trigger(part, false);
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
    -- removes the cloned row triggers itself).  Ours only: a user's trigger
    -- of that name, or the clone of one, is not touched.
    FOR part IN
        SELECT t.tgrelid::regclass FROM pg_catalog.pg_trigger t
         WHERE t.tgname = 'edgesync_log_truncate'
           AND t.tgfoid = 'edgesync.log_trigger()'::regprocedure AND t.tgparentid = 0
           AND NOT EXISTS (SELECT FROM edgesync.tracked_tables tt
                            WHERE tt.relid = coalesce(pg_catalog.pg_partition_root(t.tgrelid), t.tgrelid))
    LOOP
        BEGIN
            EXECUTE format('DROP TRIGGER edgesync_log_truncate ON %s', part);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'could not drop edgesync''s TRUNCATE trigger on "%": %', part, SQLERRM;
        END;
    END LOOP;
END
$$;

DROP EVENT TRIGGER edgesync_ddl;
CREATE EVENT TRIGGER edgesync_ddl ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'ALTER TABLE', 'CREATE INDEX',
                 'CREATE RULE')
    EXECUTE FUNCTION edgesync._on_ddl();


-- sync

-- decode

-- ship

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
