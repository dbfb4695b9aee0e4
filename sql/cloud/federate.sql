-- federate.sql — federated views on a cloud where edgesync's library is absent
-- (a managed PostgreSQL: Supabase, RDS, Cloud SQL, Neon), in plain SQL over
-- dblink.  docs/federation.md, "On a managed cloud", says how to use it.
--
--   psql -v ON_ERROR_STOP=1 -f sql/cloud/federate.sql "<the cloud database>"
--
-- Run it as the role that will own federated views (no superuser needed),
-- once per database; running it again replaces the functions and keeps the
-- federations.  It needs dblink (CREATE EXTENSION dblink, which managed
-- clouds allow) and a foreign server for the hospital with a user mapping: a
-- postgres_fdw server, as for edgesync's own federate().  Everything lives
-- in schema edgesync_cloud, and federate() creates each view's objects next
-- to its replica.  Plain SQL on purpose: the shipper can run the same text.
--
-- Why dblink: a postgres_fdw query is tied to the local transaction, and a
-- hospital dying in the middle of one fails the caller's COMMIT
-- (test/t/600_postgres_fdw_midquery.pl).  A dblink connection is tied to no
-- transaction: a failed statement is caught here, the connection dropped,
-- and the caller's transaction goes on.
--
-- Waits: dblink_connect() is bounded by the server's connect_timeout on
-- PostgreSQL 15 and not interruptible; on 16 and later it is interruptible
-- and has no bound of its own.  Each statement carries the query timeout as
-- its statement_timeout at the hospital, which ends it there; waiting for
-- its answer is dblink_get_result(), interruptible wherever dblink waits
-- through libpq-be-fe-helpers (17 and later, and the minor releases of 15
-- and 16 that received that change: 15.20, tested, is one).
-- docs/federation.md has the table.
--
-- The merge is edgesync's (src/federate/merge.cpp), per primary key: the
-- freshest version wins (a tie to the hospital), a row the hospital lacks was
-- deleted there, and a row hidden by row level security is never taken for a
-- deleted one.  The hospital's answer is read whole before any row is
-- returned: a hospital that fails at any point costs a WARNING and the answer
-- is the replica's.

BEGIN;
SET LOCAL client_min_messages = warning;

CREATE SCHEMA IF NOT EXISTS edgesync_cloud;
COMMENT ON SCHEMA edgesync_cloud IS
    'edgesync: federated views in plain SQL over dblink (docs/federation.md)';
GRANT USAGE ON SCHEMA edgesync_cloud TO PUBLIC;

-- The federated views, with what each reads and the SQL pieces the merge
-- uses (made by federate() from the replica's definition).
CREATE TABLE IF NOT EXISTS edgesync_cloud.federations (
    view              regclass    PRIMARY KEY,     -- what users query
    row_type          regtype     NOT NULL UNIQUE, -- its rows: the replica's columns, _source, _version
    replica           regclass    NOT NULL,
    server            name        NOT NULL,        -- the foreign server of the hospital
    server_oid        oid         NOT NULL,        -- (names its connections)
    remote_schema     name        NOT NULL,
    remote_table      name        NOT NULL,
    visible_rows_only boolean     NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now(),
    columns           name[]      NOT NULL,        -- the replica's columns, in order
    types             text[]      NOT NULL,        -- their types (format_type)
    pushable          boolean[]   NOT NULL,        -- built-in type: filters may be sent
    collatable        boolean[]   NOT NULL,
    keys              name[]      NOT NULL,        -- the primary key
    key_types         text[]      NOT NULL
);
COMMENT ON TABLE edgesync_cloud.federations IS
    'edgesync: federated views over dblink (replica rows and live hospital rows, the freshest version wins)';
-- Anyone may federate what they own: rows are added and removed by
-- federate() and unfederate() as the calling role, and only for views and
-- row types that role owns.
ALTER TABLE edgesync_cloud.federations ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS read ON edgesync_cloud.federations;
DROP POLICY IF EXISTS own ON edgesync_cloud.federations;
DROP POLICY IF EXISTS drop_own ON edgesync_cloud.federations;
CREATE POLICY read ON edgesync_cloud.federations FOR SELECT USING (true);
CREATE POLICY own ON edgesync_cloud.federations FOR INSERT WITH CHECK (
    pg_catalog.pg_has_role(CURRENT_USER, (SELECT relowner FROM pg_catalog.pg_class WHERE oid = view), 'USAGE')
    AND pg_catalog.pg_has_role(CURRENT_USER, (SELECT typowner FROM pg_catalog.pg_type WHERE oid = row_type), 'USAGE'));
CREATE POLICY drop_own ON edgesync_cloud.federations FOR DELETE USING (
    NOT EXISTS (SELECT FROM pg_catalog.pg_class WHERE oid = view)
    OR pg_catalog.pg_has_role(CURRENT_USER, (SELECT relowner FROM pg_catalog.pg_class WHERE oid = view), 'USAGE'));
REVOKE ALL ON edgesync_cloud.federations FROM PUBLIC;
GRANT SELECT, INSERT, DELETE ON edgesync_cloud.federations TO PUBLIC;

-- dblink's functions, wherever the extension was installed (Supabase puts
-- extensions in schema "extensions", others in "public"): thin wrappers made
-- now, so that the code below names them with a fixed schema.  They run with
-- the caller's rights, as dblink's own functions do.
DO $install$
DECLARE
    dblink name := (SELECT n.nspname FROM pg_catalog.pg_extension e
                      JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
                     WHERE e.extname = 'dblink');
    s text;
BEGIN
    IF dblink IS NULL THEN
        RAISE EXCEPTION 'extension "dblink" is not installed'
            USING ERRCODE = 'undefined_object',
                  HINT = 'Install it (CREATE EXTENSION dblink; on Supabase: from the dashboard, '
                         'or CREATE EXTENSION dblink SCHEMA extensions), then run this script again.';
    END IF;
    s := pg_catalog.quote_ident(dblink);
    EXECUTE format('CREATE OR REPLACE FUNCTION edgesync_cloud._dblink_schema() RETURNS text'
                   ' LANGUAGE sql IMMUTABLE AS %L', format('SELECT %L::text', s));
    EXECUTE format('CREATE OR REPLACE FUNCTION edgesync_cloud._dblink_connect(conn text, server text)'
                   ' RETURNS text LANGUAGE sql AS %L', format('SELECT %s.dblink_connect($1, $2)', s));
    EXECUTE format('CREATE OR REPLACE FUNCTION edgesync_cloud._dblink_disconnect(conn text)'
                   ' RETURNS text LANGUAGE sql AS %L', format('SELECT %s.dblink_disconnect($1)', s));
    EXECUTE format('CREATE OR REPLACE FUNCTION edgesync_cloud._dblink_connections()'
                   ' RETURNS text[] LANGUAGE sql AS %L', format('SELECT %s.dblink_get_connections()', s));
    EXECUTE format('CREATE OR REPLACE FUNCTION edgesync_cloud._dblink_send(conn text, sql text)'
                   ' RETURNS integer LANGUAGE sql AS %L', format('SELECT %s.dblink_send_query($1, $2)', s));
    -- Reads one result that has arrived (a command's status, or the end of
    -- an answer): its number of rows.  PL/pgSQL: its plan is kept.
    EXECUTE format('CREATE OR REPLACE FUNCTION edgesync_cloud._dblink_skip(conn text)'
                   ' RETURNS bigint LANGUAGE plpgsql AS %L',
                   format('DECLARE n bigint; BEGIN SELECT pg_catalog.count(*) INTO n'
                          ' FROM %s.dblink_get_result(conn) AS t(status text); RETURN n; END', s));
END
$install$;

-- How long a statement waits for the hospital: edgesync_cloud.query_timeout
-- (an interval: SET edgesync_cloud.query_timeout = '5s'), 30 seconds by
-- default.  The hospital enforces it, as the statement_timeout of each
-- statement sent there.
CREATE OR REPLACE FUNCTION edgesync_cloud._query_timeout() RETURNS interval
LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(pg_catalog.current_setting('edgesync_cloud.query_timeout', true), '')::interval,
                    interval '30 seconds')
$$;

-- Drops conn if it is open; never fails.
CREATE OR REPLACE FUNCTION edgesync_cloud._disconnect(conn text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF conn = ANY (coalesce(edgesync_cloud._dblink_connections(), '{}')) THEN
        PERFORM edgesync_cloud._dblink_disconnect(conn);
    END IF;
EXCEPTION WHEN OTHERS THEN
    NULL;
END
$$;

-- Reads the rest of conn's answer (a command's status, the end of the
-- answer), so that the connection can take the next statement.
CREATE OR REPLACE FUNCTION edgesync_cloud._finish(conn text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    LOOP
        EXIT WHEN edgesync_cloud._dblink_skip(conn) = 0;
    END LOOP;
END
$$;

-- Opens the session's connection conn (_connection_name()) to server with
-- dblink_connect(), the server's options and the current role's user
-- mapping (a view's owner inside its functions).  The connection gets
-- stable text formats and, from PostgreSQL 14 on, a check every second that
-- its client is still there (a query abandoned by a cancel here ends at the
-- hospital within a second).  Raises if the hospital cannot be reached.
CREATE OR REPLACE FUNCTION edgesync_cloud._connect(server name, conn text) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM edgesync_cloud._dblink_connect(conn, server);
    PERFORM edgesync_cloud._dblink_send(conn, pg_catalog.format(
        $sql$DO $do$BEGIN
            PERFORM pg_catalog.set_config('search_path', 'pg_catalog', false);
            PERFORM pg_catalog.set_config('datestyle', 'ISO', false);
            PERFORM pg_catalog.set_config('intervalstyle', 'postgres', false);
            PERFORM pg_catalog.set_config('extra_float_digits', '3', false);
            PERFORM pg_catalog.set_config('statement_timeout', %L, false);
            BEGIN
                PERFORM pg_catalog.set_config('client_connection_check_interval', '1000', false);
            EXCEPTION WHEN OTHERS THEN
                NULL;
            END;
        END $do$ $sql$,
        edgesync_cloud._timeout_ms()));
    PERFORM edgesync_cloud._finish(conn);
END
$fn$;

-- The query timeout in milliseconds, as text for statement_timeout.
CREATE OR REPLACE FUNCTION edgesync_cloud._timeout_ms() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT greatest(1, (extract(epoch FROM edgesync_cloud._query_timeout()) * 1000)::bigint)::text
$$;

-- The name of the session's connection to a server (by its oid) for the
-- current role, and of the setting that marks that server as failed for the
-- rest of a statement (its value: the statement's start).
CREATE OR REPLACE FUNCTION edgesync_cloud._connection_name(server_oid oid) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT 'edgesync_cloud_' || server_oid || '_' || pg_catalog.quote_ident(current_user)::regrole::oid
$$;
CREATE OR REPLACE FUNCTION edgesync_cloud._failed_setting(server_oid oid) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT 'edgesync_cloud.failed_' || server_oid
$$;

-- The hospital cannot answer: the rest of the statement does not ask it
-- again (a nested loop pays the timeout once), and this is said once, with
-- why.  Also when row level security hides rows from the mapped role.
CREATE OR REPLACE FUNCTION edgesync_cloud._unreachable(f edgesync_cloud.federations, why text,
                                                       rows_hidden boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM set_config(edgesync_cloud._failed_setting(f.server_oid), statement_timestamp()::text, false);
    IF rows_hidden THEN
        RAISE WARNING 'row level security hides rows of %.% from the user mapping''s role on hospital server "%": answering from the replica alone',
                      quote_ident(f.remote_schema), quote_ident(f.remote_table), f.server
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'A federated view takes a replica row that the hospital does not return as deleted there.',
                  HINT = 'Map a role that sees every row of the table (its owner, or a role with BYPASSRLS), '
                         'or call edgesync_cloud.federate() again with visible_rows_only => true.';
    ELSE
        RAISE WARNING 'hospital server "%" is unreachable: answering from the replica alone', f.server
            USING ERRCODE = 'connection_failure',
                  DETAIL = why,
                  HINT = 'Rows changed at the hospital since the replica last caught up are shown as the '
                         'replica has them (_source is ''replica'').';
    END IF;
END
$$;

-- The hospital's answer on conn could not be had (it failed, timed out, or
-- its statement failed): drops the connection and, after a WARNING, returns
-- true (answer from the replica).  A refusal (class 42: a column renamed, a
-- privilege revoked there) is a mistake to fix, not an outage: an error.  A
-- cancel of this statement (or its own statement_timeout) returns false: the
-- caller lets it through.
CREATE OR REPLACE FUNCTION edgesync_cloud._failed(f edgesync_cloud.federations, conn text, state text,
                                                  why text, detail text, context text) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM edgesync_cloud._disconnect(conn);
    IF state = '57014' THEN
        -- dblink reports the hospital's errors with the connection's name in
        -- their context; a cancel here has none.
        IF position(conn IN coalesce(context, '')) = 0 THEN
            RETURN false;
        END IF;
        why := format('no answer within %s (edgesync_cloud.query_timeout)', edgesync_cloud._query_timeout());
        detail := NULL;
    END IF;
    IF state LIKE '42%' THEN
        RAISE EXCEPTION 'the hospital refused a federated query'
            USING ERRCODE = state,
                  DETAIL = format('The hospital answered: %s.', rtrim(why, '.')),
                  HINT = 'The hospital''s table or its privileges changed: compare them with the replica, '
                         'then call edgesync_cloud.federate() again.';
    END IF;
    PERFORM edgesync_cloud._unreachable(f, concat_ws(': ', why, nullif(detail, '')));
    RETURN true;
END
$$;

-- Sends sql to the hospital of f, with edgesync_cloud.query_timeout as its
-- statement_timeout there: returns the connection to read its answer from
-- (dblink_get_result()), or NULL, after a WARNING, when the hospital cannot
-- be reached or failed earlier in the statement.  A connection kept from an
-- earlier statement that died since (a hospital restart) is replaced once.
CREATE OR REPLACE FUNCTION edgesync_cloud._send(f edgesync_cloud.federations, sql text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    conn    text := edgesync_cloud._connection_name(f.server_oid);
    cached  boolean;
    attempt integer := 0;
    state   text;
    why     text;
    detail  text;
    context text;
BEGIN
    IF pg_catalog.current_setting(edgesync_cloud._failed_setting(f.server_oid), true)
           IS NOT DISTINCT FROM pg_catalog.statement_timestamp()::text THEN
        RETURN NULL;
    END IF;
    LOOP
        attempt := attempt + 1;
        BEGIN
            cached := conn = ANY (coalesce(edgesync_cloud._dblink_connections(), '{}'));
            IF NOT cached THEN
                PERFORM edgesync_cloud._connect(f.server, conn);
            END IF;
            -- One round trip: the timeout (an implicit transaction: SET LOCAL
            -- lasts for the statement), then the statement.
            IF edgesync_cloud._dblink_send(conn, 'SET LOCAL statement_timeout = '
                                                 || edgesync_cloud._timeout_ms() || '; ' || sql) <> 1 THEN
                RAISE EXCEPTION 'could not send the query' USING ERRCODE = 'connection_failure';
            END IF;
            PERFORM edgesync_cloud._dblink_skip(conn);   -- the SET's status
            RETURN conn;
        EXCEPTION
            WHEN query_canceled THEN
                GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, why = MESSAGE_TEXT,
                                        detail = PG_EXCEPTION_DETAIL, context = PG_EXCEPTION_CONTEXT;
                IF NOT edgesync_cloud._failed(f, conn, state, why, detail, context) THEN
                    RAISE;
                END IF;
                RETURN NULL;
            WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, why = MESSAGE_TEXT,
                                        detail = PG_EXCEPTION_DETAIL, context = PG_EXCEPTION_CONTEXT;
                -- A kept connection that failed (a restarted hospital
                -- answers with 57P01 and closes it): once more, on a new one.
                IF cached AND attempt = 1 AND (state LIKE '08%' OR state LIKE '57P%') THEN
                    PERFORM edgesync_cloud._disconnect(conn);
                    CONTINUE;
                END IF;
                PERFORM edgesync_cloud._failed(f, conn, state, why, detail, context);
                RETURN NULL;
        END;
    END LOOP;
END
$$;

-- A filter given as parallel arrays (column, operator, value), one
-- condition per element, all of them ANDed: as SQL on the merged rows
-- (local), and the part that both servers evaluate alike, sent to the
-- hospital and used on the replica (pushed, NULL if none): conditions on
-- built-in types, and on text-like types only = and <> (the two servers may
-- sort text differently).  keys_only: every pushed condition is on the
-- primary key, whose values are the same on both sides.  Values are checked
-- against the column's type here, and written in its canonical form.
CREATE OR REPLACE FUNCTION edgesync_cloud._filter(f edgesync_cloud.federations, columns text[], ops text[],
                                                  vals text[], OUT pushed text, OUT local text,
                                                  OUT keys_only boolean)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n    integer := coalesce(array_length(columns, 1), 0);
    i    integer;
    c    integer;
    op   text;
    cond text;
    val  text;
BEGIN
    keys_only := true;
    IF n <> coalesce(array_length(ops, 1), 0) OR n <> coalesce(array_length(vals, 1), 0) THEN
        RAISE EXCEPTION 'a filter needs as many operators and values as columns'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR i IN 1 .. n LOOP
        c := array_position(f.columns, columns[i]::name);
        IF c IS NULL THEN
            RAISE EXCEPTION 'column "%" of federated view % does not exist', columns[i], f.view
                USING ERRCODE = 'undefined_column';
        END IF;
        op := upper(btrim(ops[i]));
        IF op IN ('IS NULL', 'IS NOT NULL') THEN
            cond := format('(%I %s)', columns[i], op);
        ELSIF op IN ('=', '<>', '<', '<=', '>', '>=') THEN
            IF vals[i] IS NULL THEN
                RAISE EXCEPTION 'a filter compares column "%" with NULL', columns[i]
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'Use the operator IS NULL or IS NOT NULL.';
            END IF;
            EXECUTE format('SELECT %L::%s::text', vals[i], f.types[c]) INTO val;
            cond := format('(%I OPERATOR(pg_catalog.%s) %L::%s)', columns[i], op, val, f.types[c]);
        ELSE
            RAISE EXCEPTION 'operator "%" is not supported in a federated filter', ops[i]
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Use =, <>, <, <=, >, >=, IS NULL or IS NOT NULL; filter the view for anything else.';
        END IF;
        local := concat_ws(' AND ', local, cond);
        IF f.pushable[c] AND (NOT f.collatable[c] OR op IN ('=', '<>', 'IS NULL', 'IS NOT NULL')) THEN
            pushed := concat_ws(' AND ', pushed, cond);
            keys_only := keys_only AND columns[i]::name = ANY (f.keys);
        END IF;
    END LOOP;
END
$$;

-- The hospital's statement for f under the pushed filter (SQL, or NULL):
--   SELECT cols, true FROM remote WHERE F
--   UNION ALL SELECT keys, version, false FROM remote       (only with r0: the replica's
--        WHERE (keys) IN (r0) AND (F) IS NOT TRUE            keys under F, one array each)
--   UNION ALL SELECT NULL... WHERE row_security_active(remote)   (rows hidden from the role?)
-- One statement: one round trip, one snapshot.
CREATE OR REPLACE FUNCTION edgesync_cloud._hospital_sql(f edgesync_cloud.federations, pushed text,
                                                        r0 text[] DEFAULT NULL) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT format('SELECT %s, true FROM %I.%I', array_to_string(ARRAY(SELECT quote_ident(c) FROM unnest(f.columns) c), ', '),
                  f.remote_schema, f.remote_table)
           || coalesce(' WHERE ' || pushed, '')
           || CASE WHEN r0 IS NULL THEN '' ELSE format(
                  ' UNION ALL SELECT %s, false FROM %I.%I WHERE (%s) IN (SELECT * FROM ROWS FROM (%s)) AND (%s) IS NOT TRUE',
                  array_to_string(ARRAY(SELECT CASE WHEN c = ANY (f.keys) OR c = 'version' THEN quote_ident(c) ELSE 'NULL' END
                                          FROM unnest(f.columns) c), ', '),
                  f.remote_schema, f.remote_table,
                  array_to_string(ARRAY(SELECT quote_ident(k) FROM unnest(f.keys) k), ', '),
                  (SELECT string_agg(format('pg_catalog.unnest(%L::%s[])', r0[i], f.key_types[i]), ', ')
                     FROM generate_subscripts(f.keys, 1) i),
                  pushed) END
           || format(' UNION ALL SELECT %s, NULL WHERE pg_catalog.row_security_active(%L::pg_catalog.regclass)',
                     array_to_string(array_fill('NULL'::text, ARRAY[array_length(f.columns, 1)]), ', '),
                     format('%I.%I', f.remote_schema, f.remote_table))
$$;

-- The rows of a federated view under a filter (see _filter()): the whole
-- view, and <view>_rows().  template and templates are NULL of the view's
-- row type and of its array type: they say which federation, and the shape
-- of the answer.  Runs as its caller (the view's functions run it as the
-- view's owner).  The merge, per primary key, with F the pushed filter:
--
--   replica:  R0 = the keys of SELECT ... FROM replica WHERE F, when F is
--                  not on the key alone (their versions are asked for)
--   hospital: _hospital_sql(), read whole
--   here:     the hospital's rows unless the replica has a higher version;
--             the replica's rows under F whose hospital version is lower;
--             a replica row the hospital lacks is deleted there, or, when
--             row level security hides rows from the mapped role of a
--             visible_rows_only view, returned as 'replica_unverified'.
--
-- <view>_get() is the same merge for one key, in static SQL.
CREATE OR REPLACE FUNCTION edgesync_cloud.merged_rows(template anyelement, templates anyarray,
                                                      columns text[] DEFAULT NULL, ops text[] DEFAULT NULL,
                                                      vals text[] DEFAULT NULL)
RETURNS SETOF anyelement
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET datestyle = 'ISO' SET intervalstyle = 'postgres' SET extra_float_digits = 3
AS $$
DECLARE
    f        edgesync_cloud.federations;
    filt     record;
    r0       text[];
    keys_in  text;
    conn     text;
    hrows    templates%TYPE;
    hidden   boolean;
    state    text;
    why      text;
    detail   text;
    context  text;
    keys_xh  text;
    keys_rh  text;
    replica  text;
    sql      text;
BEGIN
    SELECT * INTO f FROM edgesync_cloud.federations WHERE row_type = pg_typeof(template)::regtype;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'type % is not the row type of a federated view', pg_typeof(template)
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'Federated views are listed in edgesync_cloud.federations.';
    END IF;
    filt := edgesync_cloud._filter(f, columns, ops, vals);

    -- R0, and the replica rows to merge: those under F whose versions the hospital is asked for.
    IF filt.pushed IS NOT NULL AND NOT filt.keys_only THEN
        EXECUTE format('SELECT ARRAY[%s] FROM %s WHERE %s',
                       (SELECT string_agg(format('pg_catalog.array_agg(%I ORDER BY %s)::text', k,
                                                 array_to_string(ARRAY(SELECT quote_ident(x) FROM unnest(f.keys) x), ', ')),
                                          ', ') FROM unnest(f.keys) k),
                       f.replica, filt.pushed)
            INTO r0;
        IF r0[1] IS NULL THEN
            r0 := NULL;
        ELSE
            keys_in := format('(%s) IN (SELECT * FROM ROWS FROM (%s))',
                              array_to_string(ARRAY(SELECT quote_ident(x) FROM unnest(f.keys) x), ', '),
                              (SELECT string_agg(format('pg_catalog.unnest($2[%s]::%s[])', i, f.key_types[i]), ', ')
                                 FROM generate_subscripts(f.keys, 1) i));
        END IF;
    END IF;

    conn := edgesync_cloud._send(f, edgesync_cloud._hospital_sql(f, filt.pushed, r0));
    IF conn IS NOT NULL THEN
        BEGIN
            EXECUTE format(
                'SELECT pg_catalog.array_agg(ROW(%s, CASE WHEN h._matched THEN ''hospital'' ELSE ''version'' END, h.version)::%s)'
                '       FILTER (WHERE h._matched IS NOT NULL),'
                '       pg_catalog.bool_or(h._matched IS NULL)'
                '  FROM %s.dblink_get_result($1) AS h(%s, _matched boolean)',
                array_to_string(ARRAY(SELECT 'h.' || quote_ident(c) FROM unnest(f.columns) c), ', '),
                f.row_type, edgesync_cloud._dblink_schema(),
                (SELECT string_agg(format('%I %s', c, t), ', ') FROM unnest(f.columns, f.types) AS x(c, t)))
                INTO hrows, hidden USING conn;
            PERFORM edgesync_cloud._finish(conn);
        EXCEPTION
            WHEN query_canceled THEN
                GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, why = MESSAGE_TEXT,
                                        detail = PG_EXCEPTION_DETAIL, context = PG_EXCEPTION_CONTEXT;
                IF NOT edgesync_cloud._failed(f, conn, state, why, detail, context) THEN
                    RAISE;   -- this statement was cancelled
                END IF;
                conn := NULL;
            WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, why = MESSAGE_TEXT,
                                        detail = PG_EXCEPTION_DETAIL, context = PG_EXCEPTION_CONTEXT;
                PERFORM edgesync_cloud._failed(f, conn, state, why, detail, context);
                conn := NULL;
        END;
    END IF;
    IF conn IS NOT NULL AND hidden AND NOT f.visible_rows_only THEN
        -- Rows the role cannot see would look deleted: the hospital's answer is not used.
        PERFORM edgesync_cloud._unreachable(f, NULL, rows_hidden => true);
        conn := NULL;
    END IF;

    replica := format('(SELECT * FROM %s%s)', f.replica, ' WHERE ' || nullif(concat_ws(' AND ', filt.pushed, keys_in), ''));
    IF conn IS NULL THEN
        sql := format('SELECT r.*, ''replica''::text, r.version FROM %s r', replica);
    ELSE
        keys_xh := (SELECT string_agg(format('x.%1$I OPERATOR(pg_catalog.=) h.%1$I', k), ' AND ') FROM unnest(f.keys) k);
        keys_rh := (SELECT string_agg(format('r.%1$I OPERATOR(pg_catalog.=) h.%1$I', k), ' AND ') FROM unnest(f.keys) k);
        sql := format(
            'SELECT h.* FROM pg_catalog.unnest($1) h'
            ' WHERE h._source OPERATOR(pg_catalog.=) ''hospital'''
            '   AND NOT EXISTS (SELECT FROM %s x WHERE %s AND x.version OPERATOR(pg_catalog.>) h.version)'
            ' UNION ALL '
            'SELECT r.*, ''replica''::text, r.version FROM %s r JOIN pg_catalog.unnest($1) h ON %s'
            ' WHERE r.version OPERATOR(pg_catalog.>) h.version',
            f.replica, keys_xh, replica, keys_rh);
        IF hidden THEN
            -- Hidden from the role, or deleted at the hospital: it cannot tell which.
            sql := sql || format(
                ' UNION ALL SELECT r.*, ''replica_unverified''::text, r.version FROM %s r'
                ' WHERE NOT EXISTS (SELECT FROM pg_catalog.unnest($1) h WHERE %s)', replica, keys_rh);
        END IF;
    END IF;
    RETURN QUERY EXECUTE format('SELECT m.* FROM (%s) m%s', sql, ' WHERE ' || filt.local) USING hrows, r0;
END
$$;

-- Runs sql at the hospital for federate() and returns its rows as a jsonb
-- array of objects (cols: the column definitions of the answer).  Unlike a
-- federated query, a hospital that cannot answer is an error here.
CREATE OR REPLACE FUNCTION edgesync_cloud._ask(server name, sql text, cols text) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    conn   text := edgesync_cloud._connection_name((SELECT oid FROM pg_catalog.pg_foreign_server WHERE srvname = server));
    answer jsonb;
    why    text;
    detail text;
BEGIN
    PERFORM edgesync_cloud._disconnect(conn);
    PERFORM edgesync_cloud._connect(server, conn);
    IF edgesync_cloud._dblink_send(conn, sql) <> 1 THEN
        RAISE EXCEPTION 'could not send the query' USING ERRCODE = 'connection_failure';
    END IF;
    EXECUTE format('SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(h)) FROM %s.dblink_get_result($1) AS h(%s)',
                   edgesync_cloud._dblink_schema(), cols)
        INTO answer USING conn;
    PERFORM edgesync_cloud._finish(conn);
    RETURN answer;
EXCEPTION
    WHEN query_canceled THEN
        PERFORM edgesync_cloud._disconnect(conn);
        RAISE;
    WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS why = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
        PERFORM edgesync_cloud._disconnect(conn);
        RAISE EXCEPTION 'could not read the hospital''s table on server "%"', server
            USING ERRCODE = 'sqlclient_unable_to_establish_sqlconnection',
                  DETAIL = concat_ws(': ', why, nullif(detail, ''));
END
$$;

-- federate(): the view <table>_federated over replica table `local` and the
-- hospital's remote_schema.remote_table, reached through foreign server
-- `server` (postgres_fdw's, with a user mapping for the calling role).
-- Creates, in the replica's schema and owned by the caller:
--   <view>_row        the rows' type: the replica's columns, _source, _version
--   <view>_rows(columns text[], ops text[], vals text[])
--                     the rows under a filter (one condition per element)
--   <view>_get(key)   the row of one primary key
--   <view>            the whole table
-- The functions run as their owner (SECURITY DEFINER): readers need EXECUTE
-- on them and SELECT on the view (grant_read()), no user mapping of their
-- own.  Idempotent: federating again replaces the view.  Checks everything
-- first (table, key, version column, server, the hospital's columns, and that
-- the user mapping's role sees every row and column it needs);
-- visible_rows_only accepts a role that row level security limits, whose
-- hidden rows then come from the replica as 'replica_unverified'.
CREATE OR REPLACE FUNCTION edgesync_cloud.federate(local regclass, server name, remote_schema name DEFAULT 'public',
                                                   remote_table name DEFAULT NULL, view_name name DEFAULT NULL,
                                                   visible_rows_only boolean DEFAULT false)
RETURNS regclass
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rel      pg_catalog.pg_class;
    nsp      name;
    rtable   name;
    vname    name;
    tname    name;
    rows_fn  name;
    get_fn   name;
    old      regclass;
    remote   jsonb;
    access   record;
    missing  text;
    differ   text;
    cols     name[];
    types    text[];
    builtin  boolean[];
    textlike boolean[];
    args     text;
    keys     name[];
    ktypes   text[];
    params   text;
    key_sql  text;
    key_r    text;
    key_rh   text;
    key_xh   text;
    replica  text;
    settings text := 'SECURITY DEFINER SET search_path = pg_catalog, pg_temp';
    -- Plans made once per session: the lookup's statements do not depend on its values.
    get_settings text := ' SET plan_cache_mode = force_generic_plan';
    v        regclass;
    t        regtype;
BEGIN
    SELECT * INTO rel FROM pg_catalog.pg_class WHERE oid = local;
    IF rel.relkind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION 'cannot federate "%"', local
            USING ERRCODE = 'wrong_object_type',
                  DETAIL = 'edgesync_cloud.federate() takes the replica table on the cloud.';
    END IF;
    nsp := rel.relnamespace::regnamespace::name;
    rtable := coalesce(remote_table, rel.relname);
    vname := coalesce(view_name, left(rel.relname, 53) || '_federated');
    tname := left(vname, 59) || '_row';
    rows_fn := left(vname, 58) || '_rows';
    get_fn := left(vname, 59) || '_get';

    SELECT array_agg(a.attname ORDER BY k.n), array_agg(pg_catalog.format_type(a.atttypid, a.atttypmod) ORDER BY k.n)
      INTO keys, ktypes
      FROM pg_catalog.pg_index i
     CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
      JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
     WHERE i.indrelid = local AND i.indisprimary;
    IF keys IS NULL THEN
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
                WHERE attrelid = local AND attname IN ('_source', '_version', '_matched') AND NOT attisdropped) THEN
        RAISE EXCEPTION 'table "%" has a column named _source, _version or _matched', local
            USING ERRCODE = 'duplicate_column',
                  DETAIL = 'A federated view adds the first two, and reads the hospital with the third.';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_foreign_server s WHERE s.srvname = server) THEN
        RAISE EXCEPTION 'server "%" does not exist', server
            USING ERRCODE = 'undefined_object',
                  HINT = 'Create it with CREATE SERVER ... FOREIGN DATA WRAPPER postgres_fdw and a user mapping.';
    END IF;
    SELECT array_agg(a.attname ORDER BY a.attnum),
           array_agg(pg_catalog.format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum),
           array_agg(a.atttypid < 16384 ORDER BY a.attnum),
           array_agg(ty.typcollation <> 0 ORDER BY a.attnum)
      INTO cols, types, builtin, textlike
      FROM pg_catalog.pg_attribute a
      JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid
     WHERE a.attrelid = local AND a.attnum > 0 AND NOT a.attisdropped;

    -- The replica's columns must exist at the hospital with the same types.
    remote := edgesync_cloud._ask(server, format(
        'SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod)'
        '  FROM pg_catalog.pg_attribute a'
        '  JOIN pg_catalog.pg_class c ON c.oid = a.attrelid'
        '  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace'
        ' WHERE n.nspname = %L AND c.relname = %L AND c.relkind IN (''r'', ''p'', ''v'', ''f'')'
        '   AND a.attnum > 0 AND NOT a.attisdropped', remote_schema, rtable),
        'name text, type text');
    IF remote IS NULL THEN
        RAISE EXCEPTION 'table "%.%" does not exist on server "%"', remote_schema, rtable, server
            USING ERRCODE = 'undefined_table',
                  HINT = 'Pass the hospital''s schema and table as remote_schema and remote_table.';
    END IF;
    SELECT string_agg(format('%I', l.c), ', ' ORDER BY l.o) FILTER (WHERE r.name IS NULL),
           string_agg(format('%I (%s here, %s at the hospital)', l.c, l.t, r.type), ', ' ORDER BY l.o)
               FILTER (WHERE r.type <> l.t)
      INTO missing, differ
      FROM unnest(cols, types) WITH ORDINALITY AS l(c, t, o)
      LEFT JOIN jsonb_to_recordset(remote) AS r(name text, type text) ON r.name = l.c;
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
      FROM jsonb_to_recordset(edgesync_cloud._ask(server, format(
               'SELECT current_user, pg_catalog.row_security_active(c.oid),'
               '       (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(col), '', '')'
               '          FROM pg_catalog.unnest(%L::pg_catalog.text[]) AS col'
               '         WHERE NOT pg_catalog.has_column_privilege(c.oid, col, ''SELECT''))'
               '  FROM pg_catalog.pg_class c'
               '  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace'
               ' WHERE n.nspname = %L AND c.relname = %L', cols, remote_schema, rtable),
               'remote_role text, rows_hidden boolean, unreadable text'))
           AS a(remote_role text, rows_hidden boolean, unreadable text);
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
    DELETE FROM edgesync_cloud.federations f
     WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid = f.view);
    old := to_regclass(format('%I.%I', nsp, vname));
    IF old IS NOT NULL THEN
        IF NOT EXISTS (SELECT FROM edgesync_cloud.federations f WHERE f.view = old) THEN
            RAISE EXCEPTION 'relation "%" already exists', old
                USING ERRCODE = 'duplicate_table',
                      HINT = 'Pass another name as view_name.';
        END IF;
        PERFORM edgesync_cloud.unfederate(old);
    END IF;
    IF to_regtype(format('%I.%I', nsp, tname)) IS NOT NULL THEN
        RAISE EXCEPTION 'type "%.%" already exists', nsp, tname
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Pass another name as view_name.';
    END IF;

    EXECUTE format('CREATE TYPE %I.%I AS (%s, _source text, _version bigint)', nsp, tname,
                   (SELECT string_agg(format('%I %s', c, ty), ', ') FROM unnest(cols, types) AS x(c, ty)));
    t := format('%I.%I', nsp, tname)::regtype;
    EXECUTE format('CREATE FUNCTION %I.%I(columns text[] DEFAULT NULL, ops text[] DEFAULT NULL, vals text[] DEFAULT NULL)'
                   ' RETURNS SETOF %s LANGUAGE sql STABLE %s AS %L',
                   nsp, rows_fn, t, settings,
                   format('SELECT * FROM edgesync_cloud.merged_rows(NULL::%s, NULL::%s[], $1, $2, $3)', t, t));
    SELECT string_agg(format('%I %s', k, kt), ', ' ORDER BY n),
           string_agg(format('$%s::text', n), ', ' ORDER BY n),
           string_agg(format('(%s OPERATOR(pg_catalog.=) %%L::%s)', replace(quote_ident(k), '%', '%%'), kt), ' AND ' ORDER BY n),
           string_agg(format('r.%I OPERATOR(pg_catalog.=) $%s', k, n), ' AND ' ORDER BY n),
           string_agg(format('r.%1$I OPERATOR(pg_catalog.=) h.%1$I', k), ' AND ' ORDER BY n),
           string_agg(format('x.%1$I OPERATOR(pg_catalog.=) h.%1$I', k), ' AND ' ORDER BY n)
      INTO params, args, key_sql, key_r, key_rh, key_xh
      FROM unnest(keys, ktypes) WITH ORDINALITY AS x(k, kt, n);
    replica := format('%I.%I', nsp, rel.relname);
    -- Keys whose text depends on settings are written in the hospital's formats.
    IF EXISTS (SELECT FROM unnest(ktypes) kt
                WHERE kt !~ '^(integer|bigint|smallint|oid|boolean|uuid|text|numeric|character varying|character)\M') THEN
        get_settings := get_settings || ' SET datestyle = ''ISO'' SET intervalstyle = ''postgres'' SET extra_float_digits = 3';
    END IF;
    -- The one-key lookup: the merge of merged_rows() in static SQL (its plans
    -- are kept for the session), for a filter on the key alone.
    EXECUTE format('CREATE FUNCTION %I.%I(%s) RETURNS SETOF %s LANGUAGE plpgsql STABLE %s%s AS %L',
                   nsp, get_fn, params, t, settings, get_settings, format($body$
DECLARE
    f        edgesync_cloud.federations;
    conn     text;
    hrows    %1$s[];
    hidden   boolean;
    state    text;
    why      text;
    detail   text;
    context  text;
BEGIN
    SELECT * INTO f FROM edgesync_cloud.federations WHERE row_type = %2$L::regtype;
    conn := edgesync_cloud._send(f, format(%3$L, %4$s));
    IF conn IS NOT NULL THEN
        BEGIN
            SELECT pg_catalog.array_agg(ROW(%5$s, 'hospital', h.version)::%1$s) FILTER (WHERE h._matched),
                   pg_catalog.bool_or(h._matched IS NULL)
              INTO hrows, hidden
              FROM %6$s.dblink_get_result(conn) AS h(%7$s, _matched boolean);
            PERFORM edgesync_cloud._finish(conn);
        EXCEPTION
            WHEN query_canceled THEN
                GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, why = MESSAGE_TEXT,
                                        detail = PG_EXCEPTION_DETAIL, context = PG_EXCEPTION_CONTEXT;
                IF NOT edgesync_cloud._failed(f, conn, state, why, detail, context) THEN
                    RAISE;
                END IF;
                conn := NULL;
            WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, why = MESSAGE_TEXT,
                                        detail = PG_EXCEPTION_DETAIL, context = PG_EXCEPTION_CONTEXT;
                PERFORM edgesync_cloud._failed(f, conn, state, why, detail, context);
                conn := NULL;
        END;
    END IF;
    IF conn IS NOT NULL AND hidden AND NOT f.visible_rows_only THEN
        PERFORM edgesync_cloud._unreachable(f, NULL, rows_hidden => true);
        conn := NULL;
    END IF;
    IF conn IS NULL THEN
        RETURN QUERY SELECT r.*, 'replica'::text, r.version FROM %8$s r WHERE %9$s;
        RETURN;
    END IF;
    RETURN QUERY
        SELECT h.* FROM pg_catalog.unnest(hrows) h
         WHERE NOT EXISTS (SELECT FROM %8$s x WHERE %10$s AND x.version OPERATOR(pg_catalog.>) h.version)
        UNION ALL
        SELECT r.*, 'replica'::text, r.version FROM %8$s r JOIN pg_catalog.unnest(hrows) h ON %11$s
         WHERE %9$s AND r.version OPERATOR(pg_catalog.>) h.version
        UNION ALL
        SELECT r.*, 'replica_unverified'::text, r.version FROM %8$s r
         WHERE hidden AND %9$s AND NOT EXISTS (SELECT FROM pg_catalog.unnest(hrows) h WHERE %11$s);
END
$body$,
        t, t,
        replace(format('SELECT %s, true FROM %I.%I WHERE ',
                       array_to_string(ARRAY(SELECT quote_ident(c) FROM unnest(cols) c), ', '), remote_schema, rtable),
                '%', '%%')
            || key_sql
            || replace(format(' UNION ALL SELECT %s, NULL WHERE pg_catalog.row_security_active(%L::pg_catalog.regclass)',
                              array_to_string(array_fill('NULL'::text, ARRAY[array_length(cols, 1)]), ', '),
                              format('%I.%I', remote_schema, rtable)), '%', '%%'),
        args,
        array_to_string(ARRAY(SELECT 'h.' || quote_ident(c) FROM unnest(cols) c), ', '),
        edgesync_cloud._dblink_schema(),
        (SELECT string_agg(format('%I %s', c, ty), ', ') FROM unnest(cols, types) AS x(c, ty)),
        replica, key_r, key_xh, key_rh));
    EXECUTE format('REVOKE ALL ON FUNCTION %I.%I(text[], text[], text[]) FROM PUBLIC', nsp, rows_fn);
    EXECUTE format('REVOKE ALL ON FUNCTION %I.%I(%s) FROM PUBLIC', nsp, get_fn, array_to_string(ktypes, ', '));
    EXECUTE format('CREATE VIEW %I.%I AS SELECT * FROM %I.%I()', nsp, vname, nsp, rows_fn);
    v := format('%I.%I', nsp, vname)::regclass;
    EXECUTE format('COMMENT ON VIEW %s IS %L', v,
                   format('edgesync_cloud: %s merged with %I.%I on server %I; the higher version wins',
                          local, remote_schema, rtable, server));
    INSERT INTO edgesync_cloud.federations (view, row_type, replica, server, server_oid, remote_schema, remote_table,
                                            visible_rows_only, columns, types, pushable, collatable, keys, key_types)
    VALUES (v, t, local, server, (SELECT oid FROM pg_catalog.pg_foreign_server s WHERE s.srvname = server),
            remote_schema, rtable, visible_rows_only, cols, types, builtin, textlike, keys, ktypes);
    RETURN v;
END
$$;

-- unfederate(): drops a federated view, its functions and its row type.
CREATE OR REPLACE FUNCTION edgesync_cloud.unfederate(view regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    f edgesync_cloud.federations;
BEGIN
    SELECT * INTO f FROM edgesync_cloud.federations WHERE federations.view = unfederate.view;
    IF NOT FOUND THEN
        RAISE EXCEPTION '"%" is not a federated view', view
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'Federated views are listed in edgesync_cloud.federations.';
    END IF;
    DELETE FROM edgesync_cloud.federations WHERE federations.view = unfederate.view;
    -- The view and the functions depend on the type.
    EXECUTE format('DROP TYPE %s CASCADE', f.row_type);
END
$$;

-- grant_read(): lets a role read a federated view (SELECT on it, EXECUTE on
-- its functions); it needs no user mapping of its own.
CREATE OR REPLACE FUNCTION edgesync_cloud.grant_read(view regclass, reader name) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    f  edgesync_cloud.federations;
    fn regprocedure;
BEGIN
    SELECT * INTO f FROM edgesync_cloud.federations WHERE federations.view = grant_read.view;
    IF NOT FOUND THEN
        RAISE EXCEPTION '"%" is not a federated view', view
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'Federated views are listed in edgesync_cloud.federations.';
    END IF;
    EXECUTE format('GRANT SELECT ON %s TO %I', f.view, reader);
    FOR fn IN SELECT p.oid FROM pg_catalog.pg_proc p WHERE p.prorettype = f.row_type LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', fn, reader);
    END LOOP;
END
$$;

COMMIT;
