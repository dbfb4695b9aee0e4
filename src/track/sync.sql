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
CREATE FUNCTION edgesync._window(scope text, cursor text, rel oid, max integer)
RETURNS TABLE (log_id bigint, log_xid bigint, log_relid oid, log_pk text, log_op "char",
               log_version bigint, log_changed_at timestamptz, log_role oid, log_app text,
               next_cursor text, log_image text)
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
               r.changed_at, r.role, r.application_name, e.image
          FROM rows r
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

-- The page pull() returns, computed as the caller from the window's log
-- rows (arrays, in window order): the current rows of the keys changed, as
-- the caller may select them, and tombstones for deleted keys.  A tombstone
-- goes only to a caller who could see the deleted row: under row level
-- security, its SELECT policies must pass on the row's image (kept by the
-- log trigger for tables with row level security; a delete without one, made
-- before row level security was enabled, is not handed out).  Called with
-- made-up arrays it can tell nothing its caller could not select.
--
-- Rows come in the order of each key's last change, so every row's cursor
-- is safe to resume from, and the last row carries the cursor after every
-- log row read.  If the log rows read were all about keys the caller cannot
-- see, one row with only next_cursor set (pk NULL) keeps the reader moving.
CREATE FUNCTION edgesync._pull_page(tbl regclass, pks text[], ops "char"[], versions bigint[],
                                    xids bigint[], ids bigint[], cursors text[], images text[])
RETURNS TABLE (pk jsonb, "row" jsonb, version bigint, deleted boolean, next_cursor text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    keys      name[];
    match     text;
    tombstone text := 'true';
BEGIN
    keys := edgesync._key_columns(tbl);
    SELECT string_agg(format('t.%1$I = k.%1$I', key), ' AND ') INTO match FROM unnest(keys) AS key;
    IF row_security_active(tbl) THEN
        tombstone := format('l.image IS NOT NULL AND EXISTS (SELECT FROM jsonb_populate_record(NULL::%s, l.image || l.pk) AS %I WHERE %s)',
                            tbl, (SELECT c.relname FROM pg_class c WHERE c.oid = tbl),
                            edgesync._select_policy_qual(tbl));
    END IF;

    RETURN QUERY EXECUTE format($q$
        WITH w AS MATERIALIZED (
            SELECT w.pk::jsonb AS pk, w.op AS log_op, w.version AS log_version, w.xid AS log_xid,
                   w.id AS log_id, w.next_cursor, w.image::jsonb AS image, w.n
              FROM unnest($1, $2, $3, $4, $5, $6, $7) WITH ORDINALITY
                   AS w(pk, op, version, xid, id, next_cursor, image, n)
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
             WHERE t.%3$I IS NOT NULL OR (l.log_op = 'D' AND %4$s)
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
        $q$, tbl, match, keys[1], tombstone)
    USING pks, ops, versions, xids, ids, cursors, images;
END
$$;

-- pull(): the current rows of the keys changed after cursor, and tombstones
-- for deleted keys, as the caller may see them (src/track/pull.cpp): the
-- log's window is read as its owner, the rows as the caller, so table
-- privileges and row level security decide what comes back.  Open to
-- PUBLIC: it shows nothing the caller could not SELECT.
CREATE FUNCTION edgesync.pull(tbl regclass, cursor text, max integer DEFAULT 1000)
RETURNS TABLE (pk jsonb, "row" jsonb, version bigint, deleted boolean, next_cursor text)
    AS 'MODULE_PATHNAME', 'edgesync_pull' LANGUAGE C;
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
