-- The sql format: applied to a second database on the same instance, the
-- replica converges to the source; applying the same stream again changes
-- nothing; an older change never overwrites a newer row.  The stream needs
-- nothing of edgesync on the replica: applied to a database without it by a
-- role that may only connect and create, it creates its position table and
-- the tables, and converges too.  Where edgesync is installed it applies the
-- same way, and the apply functions of 0.1.0's streams still work.
\set VERBOSITY default
\set SHOW_CONTEXT never
SELECT current_database() AS source_db, current_user AS superuser \gset
CREATE EXTENSION edgesync;
SET edgesync.hash_key = 'regress-secret';

-- The same tables on both sides (tracked on the replica too: applying keeps
-- the incoming versions).
\set tables 'CREATE TABLE patients (id int PRIMARY KEY, mrn text, name text, born date, notes text, score numeric, flags jsonb, weight float8); CREATE TABLE "Odd ""Table"""("select" int, "Key" text, "from" text, PRIMARY KEY ("select", "Key")); CREATE TABLE doses (id int PRIMARY KEY, mg int, g numeric GENERATED ALWAYS AS (mg / 1000.0) STORED); ALTER TABLE patients ALTER COLUMN notes SET STORAGE EXTERNAL; CREATE TABLE stays (id int, region text, patient text, PRIMARY KEY (id, region)) PARTITION BY LIST (region); CREATE TABLE stays_north PARTITION OF stays FOR VALUES IN (''north''); CREATE TABLE stays_south PARTITION OF stays FOR VALUES IN (''south''); CREATE TABLE wards (id serial PRIMARY KEY, name text); CREATE TABLE beds (id serial PRIMARY KEY, ward_id int REFERENCES wards, label text); SELECT count(edgesync.track(t)) AS tracked FROM unnest(ARRAY[''patients'', ''"Odd ""Table"""'', ''doses'', ''stays'', ''wards'', ''beds'']) AS t;'
:tables
SELECT edgesync.set_column_policy('patients', 'mrn', 'hash');
SELECT edgesync.set_column_policy('patients', 'name', 'redact');

CREATE DATABASE decode_replica;
\c decode_replica
SET client_min_messages = warning;
CREATE EXTENSION edgesync;
:tables
-- The replica keeps its own value of a redacted column.
INSERT INTO patients (id, name) VALUES (2, 'replica''s own name');
SELECT count(*) AS logged_before FROM edgesync.sync_log \gset
\c :source_db
SET edgesync.hash_key = 'regress-secret';

SELECT 'init' FROM pg_create_logical_replication_slot('q', 'edgesync');
-- The stream with LSNs, timestamps and hashes masked, and its long plain-SQL
-- statements shortened: the setup, the guard (source and commit LSN kept),
-- the apply condition of each statement (<applies>) and the table blocks
-- (mode and table kept; replica_sql.hpp's unit tests and the TAP tests
-- check them).
CREATE FUNCTION regress_masked(data text) RETURNS text LANGUAGE sql AS $$
SELECT regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(
       regexp_replace(regexp_replace(regexp_replace(data,
         '^DO \$edgesync\$DECLARE may .*$', 'DO -- setup (position table, replica role)'),
         '^DO \$edgesync\$DECLARE m pg_catalog\.text := ''(\w+)''; s pg_catalog\.text := ''([^'']*)''; n pg_catalog\.text := (E?''(?:[^'']|'''')*'');.*$',
         'DO -- table block (\1) \2.\3'),
         '^WITH edgesync_guard AS .* SELECT (E?''(?:[^'']|'''')*''), (''[^'']*'') FROM edgesync_guard .*$',
         'WITH edgesync_guard AS ... SELECT \1, \2 ...'),
         ' ''[0-9A-F]+/[0-9A-F]+''::pg_catalog\.pg_lsn OPERATOR\(pg_catalog\.>\) pg_catalog\.current_setting\(''edgesync_apply\.skip_through''\)::pg_catalog\.pg_lsn',
         ' <applies>', 'g'),
         '''[0-9A-F]+/[0-9A-F]+''', '''…''', 'g'),
         '([''"])\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[.0-9]*[+-]\d\d([''"])', '\1…\2', 'g'),
         '([''"])[0-9a-f]{64}([''"])', '\1…hmac\2', 'g'),
         '([''"])(long note ){3}[^''"]*([''"])', '\1long note …\3', 'g')
$$;

-- A workload with every kind of change.
INSERT INTO patients (id, mrn, name, born, notes, score, flags, weight) VALUES
  (1, 'MRN-1', 'Ann', '1980-01-01', repeat('long note ', 500), 1.10, '{"a": [1, "x"]}', 'NaN'),
  (2, 'MRN-2', 'Bob', NULL, E'quote '' backslash \\ newline\n tab\t 😀', NULL, 'null', -0.5),
  (3, 'MRN-3', 'Cy', '1990-03-03', NULL, 3, NULL, 'Infinity');
INSERT INTO "Odd ""Table""" VALUES (1, 'K''1', 'from'), (2, 'K"2', NULL);
INSERT INTO doses (id, mg) VALUES (1, 250), (2, 500);
UPDATE patients SET score = score + 1 WHERE id = 1;             -- notes unchanged (TOAST)
UPDATE patients SET notes = notes || 'more' WHERE id = 1;        -- notes changed
UPDATE patients SET id = 20 WHERE id = 2;                        -- new key
DELETE FROM patients WHERE id = 3;
UPDATE "Odd ""Table""" SET "Key" = 'K''1b' WHERE "select" = 1;
BEGIN;
INSERT INTO doses (id, mg) VALUES (3, 1);
SAVEPOINT s;
INSERT INTO doses (id, mg) VALUES (4, 1);
ROLLBACK TO s;
UPDATE doses SET mg = 2 WHERE id = 3;
COMMIT;
TRUNCATE doses;
INSERT INTO doses (id, mg) VALUES (5, 5);
SELECT 'm' FROM pg_logical_emit_message(true, 'ignored', 'by the sql format');
-- Partitions (written under the partitioned table; a partition truncated alone
-- by its name), TRUNCATE ... RESTART IDENTITY CASCADE.
INSERT INTO stays VALUES (1, 'north', 'Ann'), (2, 'south', 'Bob'), (3, 'south', 'Cy');
UPDATE stays SET region = 'north' WHERE id = 2;
TRUNCATE stays_south;
INSERT INTO wards (name) VALUES ('A'), ('B');
INSERT INTO beds (ward_id, label) VALUES (1, 'A1'), (2, 'B1');
TRUNCATE wards RESTART IDENTITY CASCADE;
INSERT INTO wards (name) VALUES ('C');
INSERT INTO beds (ward_id, label) VALUES (1, 'C1');

-- What the stream looks like (masked as above).
SELECT regress_masked(data) AS stream
  FROM pg_logical_slot_peek_changes('q', NULL, NULL, 'format', 'sql', 'source', 'regress-source');
-- The setup and a guard in full (the contract of docs/replica.md).
SELECT regexp_replace(data, '''[0-9A-F]+/[0-9A-F]+''', '''…''', 'g') AS plain_sql
  FROM pg_logical_slot_peek_changes('q', NULL, NULL, 'format', 'sql', 'source', 'regress-source')
 WHERE data LIKE 'DO $edgesync$DECLARE may %' OR data LIKE 'WITH edgesync_guard %' LIMIT 2;

-- One statement per line: line breaks inside values are escaped.
SELECT count(*) AS statements, bool_and(position(E'\n' in data) = 0 AND position(E'\r' in data) = 0) AS one_per_line
  FROM pg_logical_slot_peek_changes('q', NULL, NULL, 'format', 'sql');
SELECT string_agg(data, E'\n' ORDER BY n) AS stream
  FROM pg_logical_slot_peek_changes('q', NULL, NULL, 'format', 'sql', 'source', 'regress-source')
       WITH ORDINALITY AS c(lsn, xid, data, n) \gset
SELECT max(lsn) AS last_lsn FROM pg_logical_slot_peek_changes('q', NULL, NULL, 'format', 'sql') \gset
-- Row checksums on the source (the redacted column left out: it never
-- leaves; the hashed one arrives hashed).
\set checksum 'SELECT (SELECT md5(string_agg(format(''%s|%s|%s|%s|%s|%s|%s|%s|%s'', id, mrn IS NULL, born, md5(notes), score, flags, weight, version, created_at), '','' ORDER BY id)) FROM patients) AS patients, (SELECT md5(string_agg(t::text, '','' ORDER BY "select")) FROM "Odd ""Table""" t) AS odd, (SELECT md5(string_agg(d::text, '','' ORDER BY id)) FROM doses d) AS doses, (SELECT string_agg(format(''%s/%s/%s/%s'', tableoid::regclass, id, region, patient), '','' ORDER BY id) FROM stays) AS stays, (SELECT string_agg(format(''%s %s %s'', w.id, w.name, b.label), '','') FROM wards w JOIN beds b ON b.ward_id = w.id) AS wards'
:checksum \gset source_
\c decode_replica
\o /dev/null
:stream
\o
:checksum \gset replica_
SELECT :'source_patients' = :'replica_patients' AS patients_same, :'source_odd' = :'replica_odd' AS odd_same,
       :'source_doses' = :'replica_doses' AS doses_same;
SELECT :'source_stays' AS source_stays, :'replica_stays' AS replica_stays,
       :'source_wards' AS source_wards, :'replica_wards' AS replica_wards;
SELECT id, name, length(mrn) AS hashed_len, version FROM patients ORDER BY id;
SELECT source, lsn >= :'last_lsn'::pg_lsn - 200 AND lsn <= :'last_lsn' AS lsn_recorded FROM edgesync.applied_lsn;
SELECT count(*) - :logged_before AS logged_by_apply FROM edgesync.sync_log;
SELECT lsn AS applied_lsn FROM edgesync.applied_lsn \gset

-- The same stream again: every transaction recognised, nothing changes.
\o /dev/null
:stream
\o
:checksum \gset again_
SELECT :'replica_patients' = :'again_patients' AND :'replica_odd' = :'again_odd'
       AND :'replica_doses' = :'again_doses' AS unchanged,
       (SELECT lsn FROM edgesync.applied_lsn) = :'applied_lsn' AS lsn_unchanged;
SELECT id, name FROM patients ORDER BY id;

-- A replica without edgesync: the extension is not installed in the
-- database, and the role applying may only connect to it and create in it
-- (and in schema public, which PostgreSQL 15 keeps to its owner).  The
-- stream creates edgesync.applied_lsn and every table it writes: a hashed
-- column as text, a redacted one nullable, the partitioned table as one
-- plain table, the generated column computed there too; no triggers, no
-- foreign keys.  Applied twice, the second time changes nothing.
\c :source_db
CREATE DATABASE decode_plain;
CREATE ROLE regress_feed LOGIN;
GRANT CONNECT, CREATE ON DATABASE decode_plain TO regress_feed;
\c decode_plain
GRANT CREATE ON SCHEMA public TO regress_feed;
SELECT count(*) AS edgesync_installed FROM pg_extension WHERE extname = 'edgesync';
\c decode_plain regress_feed
SELECT rolsuper, rolreplication FROM pg_roles WHERE rolname = current_user;
\o /dev/null
:stream
\o
SELECT c.relname, c.relkind, pg_get_userbyid(c.relowner) AS owner,
       string_agg(format('%s %s%s%s', a.attname, format_type(a.atttypid, a.atttypmod),
                         CASE WHEN a.attnotnull THEN ' not null' END,
                         CASE WHEN a.attgenerated = 's' THEN ' generated' END), ', ' ORDER BY a.attnum) AS columns
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE n.nspname IN ('public', 'edgesync') AND c.relkind IN ('r', 'p')
 GROUP BY 1, 2, 3 ORDER BY 1;
-- (NOT NULL is a constraint here from PostgreSQL 18 on: the columns above show it.)
SELECT conrelid::regclass, pg_get_constraintdef(oid) FROM pg_constraint
 WHERE connamespace = 'public'::regnamespace AND contype <> 'n' ORDER BY 1, 2;
SELECT count(*) AS triggers FROM pg_trigger WHERE NOT tgisinternal;
\set staysum 'SELECT string_agg(format(''%s/%s/%s/%s'', tableoid::regclass, id, region, patient), '','' ORDER BY id) AS stays FROM stays'
:checksum \gset plain_
:staysum \gset plain_
SELECT :'source_patients' = :'plain_patients' AS patients_same, :'source_odd' = :'plain_odd' AS odd_same,
       :'source_doses' = :'plain_doses' AS doses_same, :'source_wards' = :'plain_wards' AS wards_same,
       :'plain_stays' AS stays;
SELECT id, name, length(mrn) AS hashed_len, version FROM patients ORDER BY id;
SELECT source, lsn >= :'last_lsn'::pg_lsn - 200 AND lsn <= :'last_lsn' AS lsn_recorded FROM edgesync.applied_lsn;
SELECT string_agg(format('%s:%s', tableoid::regclass, xmin), ',' ORDER BY tableoid::regclass::text, ctid) AS rows_before
  FROM (SELECT tableoid, xmin, ctid FROM patients UNION ALL SELECT tableoid, xmin, ctid FROM doses
        UNION ALL SELECT tableoid, xmin, ctid FROM stays UNION ALL SELECT tableoid, xmin, ctid FROM wards) r \gset
\o /dev/null
:stream
\o
SELECT string_agg(format('%s:%s', tableoid::regclass, xmin), ',' ORDER BY tableoid::regclass::text, ctid)
       = :'rows_before' AS applying_again_wrote_no_row
  FROM (SELECT tableoid, xmin, ctid FROM patients UNION ALL SELECT tableoid, xmin, ctid FROM doses
        UNION ALL SELECT tableoid, xmin, ctid FROM stays UNION ALL SELECT tableoid, xmin, ctid FROM wards) r;
\c :source_db :superuser
DROP DATABASE decode_plain;
DROP ROLE regress_feed;
\c decode_replica
-- A replayed transaction runs its statements with edgesync.applying() false.
BEGIN;
SELECT edgesync.apply_begin('regress-source', '0/1') AS fresh, edgesync.applying() AS applying,
       current_setting('session_replication_role') AS role;
ROLLBACK;
SELECT current_setting('session_replication_role') AS role_after;
-- Both arguments are required.
SELECT edgesync.apply_begin(NULL, '0/1');
SELECT edgesync.apply_begin('regress-source', NULL);
-- A batch of a full re-send (resync): apply mode whatever applied_lsn says
-- for the source, and nothing recorded.
SELECT lsn AS applied_before FROM edgesync.applied_lsn WHERE source = 'regress-source' \gset
BEGIN;
SELECT edgesync.apply_resync('regress-source');
SELECT edgesync.applying() AS applying, current_setting('session_replication_role') AS role;
COMMIT;
SELECT current_setting('session_replication_role') AS role_after,
       (SELECT lsn FROM edgesync.applied_lsn WHERE source = 'regress-source') = :'applied_before'
         AS lsn_unchanged,
       (SELECT count(*) FROM edgesync.applied_lsn WHERE source LIKE 'regress-source%') AS sources;
-- In a transaction found applied before, it makes the statements apply again.
BEGIN;
SELECT edgesync.apply_begin('regress-source', '0/1') AS fresh, edgesync.applying() AS applying;
SELECT edgesync.apply_resync('regress-source');
SELECT edgesync.applying() AS applying;
ROLLBACK;
SELECT edgesync.apply_resync(NULL);

-- A newer row on the replica is not overwritten by an older change.
SET session_replication_role = replica;
UPDATE patients SET score = 100, version = 100 WHERE id = 1;
RESET session_replication_role;
\c :source_db
SET edgesync.hash_key = 'regress-secret';
SELECT count(*) > 0 AS consumed FROM pg_logical_slot_get_changes('q', NULL, NULL);
UPDATE patients SET score = 7 WHERE id = 1;
UPDATE patients SET weight = 70 WHERE id = 20;
DELETE FROM "Odd ""Table""";
SELECT string_agg(data, E'\n' ORDER BY n) AS stream
  FROM pg_logical_slot_get_changes('q', NULL, NULL, 'format', 'sql', 'source', 'regress-source')
       WITH ORDINALITY AS c(lsn, xid, data, n) \gset
\c decode_replica
\o /dev/null
:stream
\o
SELECT id, score, weight, version FROM patients ORDER BY id;
SELECT count(*) AS odd_rows FROM "Odd ""Table""";

-- applying() names its operator with its schema: an "=" put before
-- pg_catalog's in the applying session's search_path is not run.
CREATE SCHEMA regress_trap;
CREATE FUNCTION regress_trap.trap_eq(text, text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  RAISE NOTICE 'trap operator ran as %', current_user;
  RETURN $1 OPERATOR(pg_catalog.=) $2;
END $$;
CREATE OPERATOR regress_trap.= (LEFTARG = text, RIGHTARG = text, FUNCTION = regress_trap.trap_eq);
SET search_path = regress_trap, pg_catalog, public;
BEGIN;
SELECT edgesync.apply_begin('regress-source', '0/1') AS fresh, edgesync.applying() AS applying;
ROLLBACK;
SELECT edgesync.applying() AS applying;
RESET search_path;
DROP SCHEMA regress_trap CASCADE;

-- Applying needs edgesync_applier; edgesync_admin does not apply.
CREATE ROLE regress_nobody;
SET ROLE regress_nobody;
SELECT edgesync.apply_begin('x', '0/1');
\echo :LAST_ERROR_SQLSTATE
SELECT edgesync.apply_resync('x');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP ROLE regress_nobody;
CREATE ROLE regress_admin IN ROLE edgesync_admin;
SET ROLE regress_admin;
SELECT edgesync.apply_begin('x', '0/1');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP ROLE regress_admin;
-- apply_begin() grants nothing: a plain role granted edgesync_applier records
-- its LSNs with its own rights, but its triggers still fire (this row gets
-- version 1 from edgesync's trigger) ...
CREATE ROLE regress_applier IN ROLE edgesync_applier;
GRANT INSERT, UPDATE, DELETE ON doses TO regress_applier;
SET ROLE regress_applier;
BEGIN;
SELECT edgesync.apply_begin('another source', '0/10') AS fresh,
       current_setting('session_replication_role') AS role;
INSERT INTO doses (id, mg, version) VALUES (99, 1, 42);
COMMIT;
-- ... until it is granted SET on the setting, as a superuser may grant:
-- then it applies in replica mode, and the row keeps its version.
RESET ROLE;
GRANT SET ON PARAMETER session_replication_role TO regress_applier;
SET ROLE regress_applier;
BEGIN;
SELECT edgesync.apply_begin('another source', '0/20') AS fresh,
       current_setting('session_replication_role') AS role;
INSERT INTO doses (id, mg, version) VALUES (98, 1, 42);
COMMIT;
SELECT current_setting('session_replication_role') AS role_after;
RESET ROLE;
SELECT id, version FROM doses WHERE id IN (98, 99) ORDER BY id;
SELECT source, lsn FROM edgesync.applied_lsn WHERE source = 'another source';
DELETE FROM doses WHERE id IN (98, 99);
REVOKE SET ON PARAMETER session_replication_role FROM regress_applier;
DROP OWNED BY regress_applier;
DROP ROLE regress_applier;

-- Integer extremes, as keys and values: the stream applies (a negative
-- bigint literal must not be cast before its minus applies).
CREATE TABLE extremes (id bigint PRIMARY KEY, b bigint, i int, s smallint);
SELECT count(edgesync.track('extremes')) AS tracked;
\c :source_db
SET edgesync.hash_key = 'regress-secret';
CREATE TABLE extremes (id bigint PRIMARY KEY, b bigint, i int, s smallint);
SELECT edgesync.track('extremes');
SELECT count(*) >= 0 AS consumed FROM pg_logical_slot_get_changes('q', NULL, NULL);
INSERT INTO extremes VALUES (-9223372036854775808, -9223372036854775808, -2147483648, -32768),
  (9223372036854775807, 9223372036854775807, 2147483647, 32767), (-1, -1, -1, -1);
UPDATE extremes SET s = 0 WHERE id = -9223372036854775808;
DELETE FROM extremes WHERE id = -1;
SELECT string_agg(data, E'\n' ORDER BY n) AS stream
  FROM pg_logical_slot_get_changes('q', NULL, NULL, 'format', 'sql', 'source', 'regress-source')
       WITH ORDINALITY AS c(lsn, xid, data, n) \gset
SELECT string_agg(format('%s/%s/%s/%s/%s', id, b, i, s, version), ', ' ORDER BY id) AS source_extremes
  FROM extremes \gset
\c decode_replica
\o /dev/null
:stream
\o
SELECT string_agg(format('%s/%s/%s/%s/%s', id, b, i, s, version), ', ' ORDER BY id) AS replica_extremes
  FROM extremes \gset
SELECT :'replica_extremes' AS replica_extremes, :'source_extremes' = :'replica_extremes' AS same;
-- The stream names its operators with their schema: applied again from
-- scratch with bigint's "=", "<" and "<=" of another schema put before
-- pg_catalog's in the search_path, none of them runs (no NOTICE).
CREATE SCHEMA regress_trap2;
CREATE FUNCTION regress_trap2.eq(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN RAISE NOTICE 'trap = ran'; RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
CREATE FUNCTION regress_trap2.lt(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN RAISE NOTICE 'trap < ran'; RETURN $1 OPERATOR(pg_catalog.<) $2; END $$;
CREATE FUNCTION regress_trap2.le(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN RAISE NOTICE 'trap <= ran'; RETURN $1 OPERATOR(pg_catalog.<=) $2; END $$;
CREATE OPERATOR regress_trap2.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = regress_trap2.eq);
CREATE OPERATOR regress_trap2.< (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = regress_trap2.lt);
CREATE OPERATOR regress_trap2.<= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = regress_trap2.le);
DELETE FROM extremes;
DELETE FROM edgesync.applied_lsn;
SET search_path = regress_trap2, pg_catalog, public;
\o /dev/null
:stream
\o
RESET search_path;
SELECT string_agg(format('%s/%s/%s/%s/%s', id, b, i, s, version), ', ' ORDER BY id)
       = :'source_extremes' AS same_again FROM extremes;
DROP SCHEMA regress_trap2 CASCADE;

-- Runs: consecutive changes of one table and kind are written as one
-- multi-row statement.  A run ends at another table or kind, at a key already
-- in it, at a truncate, at batch-rows or batch-bytes, and at commit.
\set runtables 'CREATE TABLE r1 (id int PRIMARY KEY, v text); CREATE TABLE r2 (id int PRIMARY KEY, v text); CREATE TABLE r3 (id int PRIMARY KEY); CREATE TABLE rfull (id int PRIMARY KEY, v text); ALTER TABLE rfull REPLICA IDENTITY FULL; CREATE TABLE rnum (id numeric PRIMARY KEY, v text); CREATE TABLE rarr (id int PRIMARY KEY, tags text[]); SELECT count(edgesync.track(t)) AS tracked FROM unnest(ARRAY[''r1'', ''r2'', ''r3'', ''rfull'', ''rnum'', ''rarr'']) AS t;'
:runtables
\c :source_db
SET edgesync.hash_key = 'regress-secret';
:runtables
SELECT count(*) >= 0 AS consumed FROM pg_logical_slot_get_changes('q', NULL, NULL);
BEGIN;
INSERT INTO r1 VALUES (1, 'a'), (2, 'b'), (3, 'c');
UPDATE r1 SET v = 'a2' WHERE id = 1;          -- key 1 already in the run
INSERT INTO r1 VALUES (4, 'd');
INSERT INTO r2 VALUES (10, 'x');              -- alternating tables
INSERT INTO r1 VALUES (11, 'y');
INSERT INTO r2 VALUES (12, 'z');
DELETE FROM r1 WHERE id = 2;                  -- a delete between upserts
INSERT INTO r1 VALUES (20, 'e'), (21, 'f');
INSERT INTO r3 VALUES (1), (2);
TRUNCATE r3;                                  -- a truncate inside a run
INSERT INTO r3 VALUES (3), (4);
UPDATE r1 SET id = 100 WHERE id = 3;          -- a key change: delete, then upsert
DELETE FROM r1 WHERE id IN (4, 11, 20);       -- one delete statement
INSERT INTO rfull VALUES (1, 'p'), (2, 'q'), (3, 'r');
DELETE FROM rfull WHERE id < 3;               -- guarded by the deleted versions
INSERT INTO rnum VALUES (1.0, 'n'), (2, 'm'); -- numeric keys: one row per statement
INSERT INTO rarr VALUES (1, '{a,"b,c"}'), (2, NULL), (3, '{}'); -- an array column: VALUES
COMMIT;
INSERT INTO r2 SELECT g, repeat('w', 300) FROM generate_series(100, 106) g;
SELECT left(regress_masked(data), 38) AS statement,
       CASE WHEN data LIKE '%SELECT pg_catalog.unnest(%'
            THEN cardinality(string_to_array(substring(data from 'unnest\(''\{([^}]*)\}'), ','))
            WHEN data LIKE '%(VALUES %' THEN (length(data) - length(replace(data, '), (', ''))) / 4 + 1 END AS rows_in_run
  FROM pg_logical_slot_peek_changes('q', NULL, NULL, 'format', 'sql')
 WHERE data NOT LIKE 'WITH edgesync_guard %' AND data NOT LIKE 'DO $edgesync$DECLARE %';
SELECT regress_masked(data) AS data FROM pg_logical_slot_peek_changes('q', NULL, NULL, 'format', 'sql')
 WHERE data LIKE 'DELETE FROM "public"."r%' AND data LIKE '%USING%';
-- The limits: batch-rows (7 rows in runs of 3) and batch-bytes (each ~350-byte row
-- takes a run of two past 1024 bytes).
SELECT left(data, 38) AS statement,
       CASE WHEN data LIKE '%SELECT pg_catalog.unnest(%'
            THEN cardinality(string_to_array(substring(data from 'unnest\(''\{([^}]*)\}'), ','))
            WHEN data LIKE '%(VALUES %' THEN (length(data) - length(replace(data, '), (', ''))) / 4 + 1 END AS rows_in_run
  FROM pg_logical_slot_peek_changes('q', NULL, NULL, 'format', 'sql', 'batch-rows', '3')
 WHERE data LIKE 'INSERT INTO "public"."r2"%';
SELECT count(*) AS statements
  FROM pg_logical_slot_peek_changes('q', NULL, NULL, 'format', 'sql', 'batch-bytes', '1024')
 WHERE data LIKE 'INSERT INTO "public"."r2"%';
SELECT count(*) AS statements
  FROM pg_logical_slot_peek_changes('q', NULL, NULL, 'format', 'sql', 'batch-rows', '1')
 WHERE data LIKE 'INSERT%' OR data LIKE 'DELETE%';
SELECT * FROM pg_logical_slot_peek_changes('q', NULL, NULL, 'format', 'sql', 'batch-rows', '0');
SELECT * FROM pg_logical_slot_peek_changes('q', NULL, NULL, 'format', 'sql', 'batch-bytes', '1k');
SELECT string_agg(data, E'\n' ORDER BY n) AS stream
  FROM pg_logical_slot_get_changes('q', NULL, NULL, 'format', 'sql', 'source', 'regress-source')
       WITH ORDINALITY AS c(lsn, xid, data, n) \gset
\set runsum 'SELECT (SELECT string_agg(format(''%s:%s:%s'', id, v, version), '','' ORDER BY id) FROM r1) AS r1, (SELECT md5(string_agg(format(''%s:%s:%s'', id, v, version), '','' ORDER BY id)) FROM r2) AS r2, (SELECT string_agg(id::text, '','' ORDER BY id) FROM r3) AS r3, (SELECT string_agg(format(''%s:%s'', id, v), '','' ORDER BY id) FROM rfull) AS rfull, (SELECT string_agg(format(''%s:%s'', id, v), '','' ORDER BY id) FROM rnum) AS rnum, (SELECT string_agg(format(''%s:%s'', id, tags), '','' ORDER BY id) FROM rarr) AS rarr'
:runsum \gset source_
\c decode_replica
\o /dev/null
:stream
\o
:runsum \gset replica_
SELECT :'source_r1' AS r1, :'source_r1' = :'replica_r1' AND :'source_r2' = :'replica_r2'
       AND :'source_r3' = :'replica_r3' AND :'source_rfull' = :'replica_rfull'
       AND :'source_rnum' = :'replica_rnum' AND :'source_rarr' = :'replica_rarr' AS same;
SELECT lsn AS applied_lsn FROM edgesync.applied_lsn WHERE source = 'regress-source' \gset
\o /dev/null
:stream
\o
:runsum \gset again_
SELECT :'replica_r1' = :'again_r1' AND :'replica_r2' = :'again_r2' AND :'replica_r3' = :'again_r3'
       AND :'replica_rfull' = :'again_rfull' AND :'replica_rnum' = :'again_rnum'
       AND :'replica_rarr' = :'again_rarr' AS unchanged,
       (SELECT lsn FROM edgesync.applied_lsn WHERE source = 'regress-source') = :'applied_lsn' AS lsn_unchanged;
DROP TABLE r1, r2, r3, rfull, rnum, rarr;

-- A column's type changed inside a transaction ends the run (its arrays are
-- cast to the column's type).
\c :source_db
SET edgesync.hash_key = 'regress-secret';
CREATE TABLE rtype (id int PRIMARY KEY, v int);
SELECT edgesync.track('rtype');
SELECT count(*) >= 0 AS consumed FROM pg_logical_slot_get_changes('q', NULL, NULL);
BEGIN;
INSERT INTO rtype VALUES (1, 1), (2, 2);
ALTER TABLE rtype ALTER COLUMN v TYPE text;
INSERT INTO rtype VALUES (3, 'x'), (4, 'y');
COMMIT;
SELECT (SELECT string_agg(m[1], ' ') FROM regexp_matches(data, '''(::[a-z_. ]+\[\])\)', 'g') m) AS casts
  FROM pg_logical_slot_get_changes('q', NULL, NULL, 'format', 'sql')
 WHERE data LIKE 'INSERT%';
\c decode_replica

\c :source_db
SET edgesync.hash_key = 'regress-secret';
SELECT pg_drop_replication_slot('q');
DROP DATABASE decode_replica;
DROP TABLE patients, "Odd ""Table""", doses, stays, wards, beds, extremes, r1, r2, r3, rfull, rnum, rarr, rtype;
DROP FUNCTION regress_masked(text);
DROP EXTENSION edgesync;
