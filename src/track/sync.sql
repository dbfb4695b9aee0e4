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
-- with the cursor that resumes after it.  It returns the keys and images as
-- written: only the log's owner runs it (changes() and pull() do, from C).
-- Stable: it reads the log in the snapshot of the statement that calls it,
-- the one pull() reads the rows in, and a new window is that snapshot.
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

-- changes(): the next changes of all tracked tables, keys masked for the
-- caller (src/decode/log_keys.cpp): a key column in clear only if the
-- caller may SELECT it and its policy allows (or it is a member of
-- edgesync_phi_reader); a hashed one as the stream shows it; else null.
CREATE FUNCTION edgesync.changes(cursor text, max integer DEFAULT 1000)
RETURNS TABLE (id bigint, relid regclass, pk jsonb, op "char", version bigint, xid xid8,
               changed_at timestamptz, role regrole, application_name text, next_cursor text)
    AS 'MODULE_PATHNAME', 'edgesync_changes' LANGUAGE C;
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

-- The combined USING expression of the SELECT policies of tbl that apply to
-- the current user, as row level security combines them (permissive ones
-- ORed, restrictive ones ANDed, none permissive: false), for pull() to
-- decide on a deleted row it can no longer select.  Columns unqualified.
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

-- pull(): the rows of a table as the caller may see them, by cursor (src/track/pull*.cpp).
-- From a NULL cursor, first every row (the initial load, in key order), then
-- the keys changed since, in the order of their last change, with
-- tombstones for deleted keys; a page shorter than max means the caller is
-- up to date.  The log's window is read as its owner, the rows as the
-- caller, so table privileges and row level security decide what comes
-- back.  Open to PUBLIC: it shows nothing the caller could not SELECT.
CREATE FUNCTION edgesync.pull(tbl regclass, cursor text, max integer DEFAULT 1000)
RETURNS TABLE (pk jsonb, "row" json, version bigint, deleted boolean, next_cursor text)
    AS 'MODULE_PATHNAME', 'edgesync_pull' LANGUAGE C;
COMMENT ON FUNCTION edgesync.pull(regclass, text, integer) IS
    'edgesync: every row, then the rows changed and tombstones of rows deleted, after a cursor';

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

-- RxDB's replication protocol over pull() and push(), one SQL call per page
-- and per push (docs/tracking.md, "Offline clients with RxDB").  Documents
-- are the table's rows as JSON with "_deleted": false, tombstones the key
-- with "_deleted": true; the checkpoint is {"cursor": <pull()'s cursor>}.
-- Both run as the caller: what pull() and push() allow, nothing more.

-- A page of documents after checkpoint (NULL: the initial load), and the
-- checkpoint after it.  Fewer than batch_size documents: up to date.
CREATE FUNCTION edgesync.rxdb_pull(tbl regclass, checkpoint jsonb, batch_size integer DEFAULT 100)
RETURNS json
    AS 'MODULE_PATHNAME', 'edgesync_rxdb_pull' LANGUAGE C;
COMMENT ON FUNCTION edgesync.rxdb_pull(regclass, jsonb, integer) IS
    'edgesync: RxDB replication, pull handler: {"documents": [...], "checkpoint": {...}}';

-- Applies RxDB's push rows ({"newDocumentState": ..., "assumedMasterState":
-- ...}) through push(): a document is written only if the row is still the
-- version the device assumed (by "version"); returns the current state of
-- the others, RxDB's conflicts, as documents.  A delete of a row that is
-- gone already is no conflict.
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
COMMENT ON PROCEDURE edgesync.prune(interval, integer, bigint) IS
    'edgesync: delete change-log rows older than an interval, in committed batches';

-- Privileges.  The log's keys are read only through changes() (masked,
-- for edgesync_reader) and pull() (what the caller may SELECT, for anyone);
-- the window that returns them as written is for the log's owner alone.
-- track/untrack/push check ownership and table privileges themselves and
-- stay open.
REVOKE ALL ON FUNCTION edgesync._window(text, text, oid, integer), edgesync.changes(text, integer),
    edgesync._cursor_parse(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION edgesync.changes(text, integer), edgesync._cursor_parse(text, text)
    TO edgesync_reader;
REVOKE ALL ON PROCEDURE edgesync.prune(interval, integer, bigint) FROM PUBLIC;
GRANT EXECUTE ON PROCEDURE edgesync.prune(interval, integer, bigint) TO edgesync_admin;
REVOKE ALL ON FUNCTION edgesync._desummarize_log_range(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION edgesync._desummarize_log_range(bigint) TO edgesync_admin;
REVOKE ALL ON FUNCTION edgesync._on_ddl(), edgesync._on_drop() FROM PUBLIC;
