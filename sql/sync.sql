-- changes(), pull(), push(), prune(): reading and writing by cursor.
\set VERBOSITY default
\set SHOW_CONTEXT never
CREATE EXTENSION edgesync;
CREATE TABLE hospital_patients (id int PRIMARY KEY, hospital_id int NOT NULL, name text, ward text);
SELECT edgesync.track('hospital_patients');
INSERT INTO hospital_patients (id, hospital_id, name, ward)
SELECT g, 1 + g % 2, 'patient ' || g, 'A' FROM generate_series(1, 5) g;

-- changes(): pages through the log; each row carries the cursor after it.
SELECT id, relid, pk, op, version, next_cursor ~ '^es1/[0-9a-f]+\.[0-9]+/all/' AS cursor_ok
  FROM edgesync.changes(NULL, 2);
SELECT next_cursor AS c1 FROM edgesync.changes(NULL, 2) ORDER BY id DESC LIMIT 1 \gset
SELECT id, pk FROM edgesync.changes(:'c1', 2);
SELECT next_cursor AS c2 FROM edgesync.changes(:'c1', 2) ORDER BY id DESC LIMIT 1 \gset
SELECT id, pk FROM edgesync.changes(:'c2', 10);
SELECT next_cursor AS c3 FROM edgesync.changes(:'c2', 10) ORDER BY id DESC LIMIT 1 \gset
-- Nothing new: nothing returned.
SELECT count(*) AS nothing_new FROM edgesync.changes(:'c3', 10);
UPDATE hospital_patients SET ward = 'B' WHERE id = 3;
SELECT pk, op, version FROM edgesync.changes(:'c3', 10);
-- current_cursor(): start from now.
SELECT count(*) AS from_now FROM edgesync.changes(edgesync.current_cursor(), 10);

-- pull(): from a NULL cursor, the initial load: every row as it is now, in
-- key order, no tombstones (a new device has nothing to delete).
DELETE FROM hospital_patients WHERE id = 4;
SELECT pk, "row"->>'name' AS name, "row"->>'ward' AS ward, version, deleted
  FROM edgesync.pull('hospital_patients', NULL);
SELECT next_cursor AS p1 FROM edgesync.pull('hospital_patients', NULL) ORDER BY pk DESC LIMIT 1 \gset

-- A client's loop: pull a page from the cursor it keeps (NULL at first),
-- apply it, keep the next_cursor of its last row; a page shorter than max
-- means up to date.  (Here: until up to date, or a number of pages.)
CREATE TABLE device (tbl regclass, page int, pk jsonb, note text, version bigint, deleted boolean, cursor text);
CREATE FUNCTION sync_device(tbl regclass, max int, pages int DEFAULT NULL) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    cur  text := (SELECT d.cursor FROM device d WHERE d.tbl = sync_device.tbl ORDER BY d.page DESC, d.ctid DESC LIMIT 1);
    pg   int := coalesce((SELECT max(d.page) FROM device d WHERE d.tbl = sync_device.tbl), 0);
    n    int;
BEGIN
    FOR i IN 1 .. coalesce(pages, 1000) LOOP
        pg := pg + 1;
        INSERT INTO device SELECT tbl, pg, p.pk, p."row"->>'note', p.version, p.deleted, p.next_cursor
          FROM edgesync.pull(tbl, cur, max) p;
        GET DIAGNOSTICS n = ROW_COUNT;
        cur := coalesce((SELECT d.cursor FROM device d WHERE d.tbl = sync_device.tbl AND d.page = pg
                          ORDER BY d.ctid DESC LIMIT 1), cur);
        EXIT WHEN n < max;
    END LOOP;
    RETURN pg;
END
$$;
CREATE TABLE visits (id int PRIMARY KEY, note text);
INSERT INTO visits SELECT g, 'visit ' || g FROM generate_series(1, 10) g;
SELECT edgesync.track('visits');
-- What the device holds (each key's last delivery) against the table, and
-- keys delivered more than once after a page: none.
CREATE VIEW device_differs AS
    SELECT coalesce(d.id, v.id) AS id, d.note AS device, v.note AS "table"
      FROM (SELECT DISTINCT ON (pk) (pk->>'id')::int AS id, note
              FROM device WHERE tbl = 'visits'::regclass AND pk IS NOT NULL AND NOT deleted
               AND (pk, page, ctid) IN (SELECT DISTINCT ON (pk) pk, page, ctid FROM device
                                         WHERE tbl = 'visits'::regclass ORDER BY pk, page DESC, ctid DESC)) d
      FULL JOIN visits v ON v.id = d.id
     WHERE d.note IS DISTINCT FROM v.note;

-- The load, in pages of 3: every row once, in key order.
SELECT sync_device('visits', 3) AS pages;
SELECT page, string_agg(pk->>'id', ',' ORDER BY ctid) AS keys FROM device GROUP BY page ORDER BY page;
SELECT count(*) AS nothing_new
  FROM edgesync.pull('visits', (SELECT cursor FROM device ORDER BY page DESC, ctid DESC LIMIT 1), 3);

-- A cursor in the middle of the load ends with the last key loaded, its
-- JSON as it is ("/" included: the field is the rest of the cursor).
-- Cursors handed out before carry it in hex, and devices keep them: both
-- forms resume at the same row, with the same cursors.
CREATE TABLE codes (code text PRIMARY KEY, n int);
INSERT INTO codes VALUES ('A/1', 1), ('A/2', 2), ('B"/1', 3), ('C', 4);
SELECT edgesync.track('codes');
CREATE FUNCTION hex_form(cursor text) RETURNS text LANGUAGE sql AS $$
    SELECT substring(cursor FROM '^(.*?/k)\{') ||
           encode(convert_to(substring(cursor FROM '^.*?/k(\{.*)$'), 'UTF8'), 'hex')
$$;
SELECT next_cursor AS mid_load FROM edgesync.pull('visits', NULL, 4) WITH ORDINALITY
 ORDER BY ordinality DESC LIMIT 1 \gset
SELECT substring(:'mid_load' FROM '/k.*$') AS load_position, hex_form(:'mid_load') ~ '/k7b[0-9a-f]+$' AS hex_is_hex;
SELECT n.pk, o.pk AS from_hex, n.next_cursor = o.next_cursor AS same_cursor
  FROM edgesync.pull('visits', :'mid_load', 3) WITH ORDINALITY n
  FULL JOIN edgesync.pull('visits', hex_form(:'mid_load'), 3) WITH ORDINALITY o USING (ordinality)
 ORDER BY ordinality;
SELECT next_cursor AS mid_load FROM edgesync.pull('codes', NULL, 2) WITH ORDINALITY
 ORDER BY ordinality DESC LIMIT 1 \gset
SELECT substring(:'mid_load' FROM '/k.*$') AS load_position;
SELECT n.pk, o.pk AS from_hex, n.next_cursor = o.next_cursor AS same_cursor
  FROM edgesync.pull('codes', :'mid_load', 5) WITH ORDINALITY n
  FULL JOIN edgesync.pull('codes', hex_form(:'mid_load'), 5) WITH ORDINALITY o USING (ordinality)
 ORDER BY ordinality;
-- Every row's cursor of the load resumes after that row, in both forms.
SELECT p.pk, (SELECT array_agg(q.pk->>'code' ORDER BY ordinality)
                FROM edgesync.pull('codes', p.next_cursor, 10) WITH ORDINALITY q) AS after,
       (SELECT array_agg(q.pk->>'code' ORDER BY ordinality)
          FROM edgesync.pull('codes', hex_form(p.next_cursor), 10) WITH ORDINALITY q) AS after_hex
  FROM edgesync.pull('codes', NULL, 3) WITH ORDINALITY p ORDER BY ordinality;
SELECT edgesync.untrack('codes');
DROP TABLE codes;
DROP FUNCTION hex_form(text);
-- The key of each row is the same jsonb in the load (built from the key's
-- values) as in the change pages (read from the log's JSON), members in
-- jsonb's order, integers of every size.
CREATE TABLE beds (ward varchar(10), bed int2, n int8, note text, PRIMARY KEY (ward, bed, n));
INSERT INTO beds VALUES ('A/"1', 1, 10, 'x'), ('B', -2, 9223372036854775807, 'y'),
                        ('C', 3, -9223372036854775808, 'z');
SELECT edgesync.track('beds');
SELECT edgesync.current_cursor('beds') AS beds_from \gset
UPDATE beds SET note = note || '!';
SELECT l.pk, l.pk = c.pk AS same_in_changes,
       l.pk = jsonb_build_object('ward', l."row"->'ward', 'bed', l."row"->'bed', 'n', l."row"->'n') AS same_as_row
  FROM edgesync.pull('beds', NULL) l
  FULL JOIN edgesync.pull('beds', :'beds_from') c ON c."row"->>'note' = l."row"->>'note'
 ORDER BY l.pk;
SELECT edgesync.untrack('beds');
DROP TABLE beds;

-- Then the changes, oldest first, each key once per page at its last
-- change, with its row as it is now, and tombstones for deleted keys.
UPDATE visits SET note = 'first' WHERE id = 5;
DELETE FROM visits WHERE id = 2;
INSERT INTO visits VALUES (11, 'new');
UPDATE visits SET note = 'second' WHERE id = 5;
UPDATE visits SET note = 'other' WHERE id = 7;
SELECT sync_device('visits', 100) AS pages;
SELECT pk, note, version, deleted FROM device WHERE page = 5 ORDER BY ctid;
SELECT * FROM device_differs;

-- Writes between the pages of a load: rows before the load's position
-- come as changes, rows after it as the load reads them; none is missed,
-- none comes twice.
DELETE FROM device;
SELECT sync_device('visits', 3, pages => 2) AS pages;
SELECT string_agg(pk->>'id', ',' ORDER BY page, ctid) AS loaded_so_far FROM device;
UPDATE visits SET note = 'changed during load' WHERE id IN (3, 9);
DELETE FROM visits WHERE id IN (4, 10);
INSERT INTO visits VALUES (0, 'inserted before'), (12, 'inserted after');
UPDATE visits SET id = 13 WHERE id = 1;
SELECT sync_device('visits', 3) AS pages;
SELECT page, string_agg(pk->>'id' || CASE WHEN deleted THEN '(deleted)' ELSE '' END, ',' ORDER BY ctid) AS keys
  FROM device GROUP BY page ORDER BY page;
SELECT * FROM device_differs;
SELECT pk->>'id' AS same_version_twice FROM device GROUP BY pk, version, deleted HAVING count(*) > 1;

-- The issue's case: 120 rows changed one transaction each, read 7 at a
-- time, come once each (newest first, they came 279 times).
CREATE TABLE wards (id int PRIMARY KEY, beds int);
INSERT INTO wards SELECT g, 0 FROM generate_series(1, 120) g;
SELECT edgesync.track('wards');
SELECT sync_device('wards', 7) AS load_pages \gset
CREATE PROCEDURE one_update_each() LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. 120 LOOP
        UPDATE wards SET beds = beds + 1 WHERE id = i;
        COMMIT;
    END LOOP;
END
$$;
CALL one_update_each();
SELECT sync_device('wards', 7) - :load_pages AS change_pages;
SELECT count(*) AS deliveries, count(DISTINCT pk) AS keys, count(*) FILTER (WHERE version = 2) AS at_version_2
  FROM device WHERE tbl = 'wards'::regclass AND page > :load_pages AND pk IS NOT NULL;
DROP PROCEDURE one_update_each();

-- A TRUNCATE leaves no tombstones: a cursor from before it is refused, and
-- the client loads again.
TRUNCATE visits;
SELECT * FROM edgesync.pull('visits', (SELECT cursor FROM device WHERE tbl = 'visits'::regclass ORDER BY page DESC, ctid DESC LIMIT 1));
\echo :LAST_ERROR_SQLSTATE
SELECT pk, deleted, next_cursor IS NOT NULL AS has_cursor FROM edgesync.pull('visits', NULL);
-- A malformed load position is an invalid cursor.
\set VERBOSITY terse
SELECT * FROM edgesync.pull('visits', regexp_replace(:'p1', '/-/-/-$', '/-/-/-/kxyz'));
\set VERBOSITY default
\echo :LAST_ERROR_SQLSTATE
DROP VIEW device_differs;
DROP FUNCTION sync_device(regclass, int, int);
DROP TABLE device, visits, wards;

-- pull() writes each row as row_to_json() does, byte for byte, for every
-- kind of column, in the session's settings: the load and the change pages.
CREATE TYPE kinds_mood AS ENUM ('ok', 'sad');
CREATE DOMAIN kinds_dose AS numeric(6,2);
CREATE TYPE kinds_pair AS (a int, b text);
CREATE TABLE kinds (id int PRIMARY KEY, gone int, b bool, i2 int2, i8 int8, f4 float4,
                    f8 float8, n numeric, d date, t time, tz timetz, ts timestamp,
                    tstz timestamptz, iv interval, j json, jb jsonb, s text, c char(3),
                    bin bytea, u uuid, ip inet, arr int[], tarr text[], mood kinds_mood,
                    dose kinds_dose, pair kinds_pair, pt point);
ALTER TABLE kinds DROP COLUMN gone;
INSERT INTO kinds VALUES
  (1, true, 2, 3, 1.5, 2.25, 3.125, '2026-01-02', '10:11:12', '10:11:12+02', '2026-01-02 03:04:05.678',
   '2026-01-02 03:04:05+00', '1 day 2 hours', '{"x": [1, 2]}', '{"y": {"z": null}}', 'a "quoted"\ttab\nline \u00e9',
   'ab', '\x00ff', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '10.0.0.1/8', '{1,NULL,3}', '{"a,b",c}',
   'sad', 12.5, ROW(1, 'x'), '(1,2)'),
  (2, false, -2, -9223372036854775808, 'NaN', 'Infinity', 'NaN', '-infinity', '00:00', '00:00+00',
   'infinity', '1999-12-31 23:59:59.999999+05', '-1 mon', 'null', '[]', '', NULL, '', NULL, NULL, '{}',
   '{}', 'ok', NULL, ROW(NULL, NULL), NULL),
  (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
SELECT edgesync.track('kinds');
SELECT edgesync.current_cursor('kinds') AS kinds_from \gset
UPDATE kinds SET s = s || '!' WHERE id <> 3;
CREATE FUNCTION kinds_differ(cur text) RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM edgesync.pull('kinds', cur) p JOIN kinds k ON k.id = (p.pk->>'id')::int
     WHERE p."row"::text IS DISTINCT FROM row_to_json(k)::text
$$;
SELECT kinds_differ(NULL) AS load_differs, kinds_differ(:'kinds_from') AS changes_differ,
       (SELECT count(*) FROM edgesync.pull('kinds', NULL)) AS loaded,
       (SELECT count(*) FROM edgesync.pull('kinds', :'kinds_from')) AS changed;
SET DateStyle = 'SQL, DMY';
SET TimeZone = 'America/New_York';
SET IntervalStyle = 'sql_standard';
SET extra_float_digits = 0;
SET bytea_output = 'escape';
SELECT kinds_differ(NULL) AS load_differs, kinds_differ(:'kinds_from') AS changes_differ;
RESET DateStyle;
RESET TimeZone;
RESET IntervalStyle;
RESET extra_float_digits;
RESET bytea_output;
DROP FUNCTION kinds_differ(text);
DROP TABLE kinds;
DROP TYPE kinds_pair;
DROP DOMAIN kinds_dose;
DROP TYPE kinds_mood;

-- push(): each change is applied, or comes back as a conflict with the row.
SELECT ord, op, pk, status, "row"->>'ward' AS ward, version
  FROM edgesync.push('hospital_patients', $$[
    {"op": "update", "row": {"id": 1, "ward": "C"}, "version": 1},
    {"op": "update", "row": {"id": 3, "ward": "stale"}, "version": 1},
    {"op": "insert", "row": {"id": 6, "hospital_id": 1, "name": "new"}},
    {"op": "insert", "row": {"id": 1, "hospital_id": 1, "name": "exists"}},
    {"op": "delete", "row": {"id": 5}, "version": 1},
    {"op": "delete", "row": {"id": 4}, "version": 1},
    {"op": "update", "row": {"id": 2, "ward": "A"}, "version": 1}
  ]$$);
SELECT id, ward, version FROM hospital_patients ORDER BY id;

-- A batch of updates of the same columns, each of another key (what a
-- device sends after editing offline), is applied in one statement, with
-- the answers of change by change: applied, stale (a conflict with the
-- row), no change at all (applied), no such row (a conflict, no row).  The
-- same key twice goes change by change: the second one is stale.
CREATE TABLE batch_rows (id int PRIMARY KEY, ward text, note text);
SELECT edgesync.track('batch_rows');
INSERT INTO batch_rows (id, ward) SELECT g, 'A' FROM generate_series(1, 4) g;
UPDATE batch_rows SET ward = 'B' WHERE id = 2;
SELECT ord, op, pk, status, "row"->>'ward' AS ward, version
  FROM edgesync.push('batch_rows', $$[
    {"op": "update", "row": {"id": 1, "ward": "C"}, "version": 1},
    {"op": "update", "row": {"id": 2, "ward": "stale"}, "version": 1},
    {"op": "update", "row": {"id": 3, "ward": "A"}, "version": 1},
    {"op": "update", "row": {"id": 99, "ward": "none"}, "version": 1}
  ]$$);
SELECT ord, status, "row"->>'ward' AS ward, version
  FROM edgesync.push('batch_rows', $$[
    {"op": "update", "row": {"id": 4, "ward": "E"}, "version": 1},
    {"op": "update", "row": {"id": 4, "ward": "F"}, "version": 1}
  ]$$);
SELECT id, ward, version FROM batch_rows ORDER BY id;
SELECT pk->>'id' AS id, op, version FROM edgesync.sync_log
 WHERE relid = 'batch_rows'::regclass AND op = 'U' ORDER BY id;
DROP TABLE batch_rows;

-- Bad input: a clear error and no change at all.
SELECT count(*) AS log_rows FROM edgesync.sync_log \gset
SELECT * FROM edgesync.push('hospital_patients', '{"op": "insert"}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM edgesync.push('hospital_patients', '[{"op": "insert", "row": {"id": 7, "hospital_id": 1}}, 42]');
SELECT * FROM edgesync.push('hospital_patients', '[{"op": "upsert", "row": {"id": 7}}]');
SELECT * FROM edgesync.push('hospital_patients', '[{"op": "insert", "row": {"id": 7, "hospital_id": 1}}, {"op": "insert", "row": {"id": 8, "colour": "red"}}]');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM edgesync.push('hospital_patients', '[{"op": "update", "row": {"ward": "X"}, "version": 1}]');
SELECT * FROM edgesync.push('hospital_patients', '[{"op": "update", "row": {"id": 1, "ward": "X"}}]');
SELECT * FROM edgesync.push('hospital_patients', '[{"op": "insert", "row": {"id": "seven", "hospital_id": 1}}]');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM edgesync.push('hospital_patients', '[{"op": "insert", "row": {"id": 7}, "extra": 1}]');
SELECT * FROM edgesync.push('hospital_patients', '[{"op": "delete", "row": {"id": 1}, "version": "one"}]');
SELECT count(*) - :log_rows AS log_rows_added, (SELECT count(*) FROM hospital_patients WHERE id >= 7) AS rows_added
  FROM edgesync.sync_log;

-- RxDB's protocol: a page of documents and its checkpoint; push rows, conflicts back.
SELECT jsonb_path_query_array(p, '$.documents[*].id') AS ids,
       jsonb_path_query_array(p, '$.documents[*]._deleted') AS deleted,
       p->'checkpoint' ? 'cursor' AS has_checkpoint
  FROM (SELECT edgesync.rxdb_pull('hospital_patients', NULL, 2)::jsonb AS p) page;
SELECT json_array_length(edgesync.rxdb_pull('hospital_patients', NULL, 10)->'documents') AS all_rows;
SELECT p->'documents' AS nothing_new, p->'checkpoint'->>'cursor' = c->>'cursor' AS checkpoint_kept
  FROM (SELECT (edgesync.rxdb_pull('hospital_patients', NULL, 10)->'checkpoint')::jsonb AS c) l,
       LATERAL (SELECT edgesync.rxdb_pull('hospital_patients', l.c, 10)::jsonb AS p) n;
SELECT jsonb_path_query_array(edgesync.rxdb_push('hospital_patients', $$[
    {"newDocumentState": {"id": 1, "hospital_id": 2, "name": "from a device", "_deleted": false, "_meta": {"lwt": 1}},
     "assumedMasterState": {"id": 1, "version": 2, "_deleted": false}},
    {"newDocumentState": {"id": 2, "name": "stale", "_deleted": false},
     "assumedMasterState": {"id": 2, "version": 9, "_deleted": false}},
    {"newDocumentState": {"id": 9, "hospital_id": 1, "name": "new", "_deleted": false}},
    {"newDocumentState": {"id": 4, "_deleted": true}, "assumedMasterState": {"id": 4, "version": 1}}
  ]$$), '$[*].name') AS conflicts_with_rows_as_they_are;
SELECT id, name, version FROM hospital_patients WHERE id IN (1, 2, 9) ORDER BY id;
SELECT edgesync.rxdb_push('hospital_patients', '{}');
SELECT edgesync.rxdb_push('hospital_patients', '[{"assumedMasterState": {}}]');
\echo :LAST_ERROR_SQLSTATE
DELETE FROM hospital_patients WHERE id = 9;

-- Untracked tables, bad cursors, bad limits.
CREATE TABLE untracked (id int PRIMARY KEY);
SELECT * FROM edgesync.pull('untracked', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM edgesync.push('untracked', '[]');
SELECT * FROM edgesync.changes('not a cursor', 10);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM edgesync.changes('es1/abc.1/all/-/-/-/-', 10);
SELECT * FROM edgesync.changes(:'p1', 10);
SELECT * FROM edgesync.pull('hospital_patients', :'c1');
SELECT * FROM edgesync.changes(NULL, 0);
\echo :LAST_ERROR_SQLSTATE

-- prune(): old rows go in batches; a cursor that had not read them is refused.
-- (The log stores changes in batches, one per statement here: age the first two,
-- the 5 inserts and the first update.)
UPDATE edgesync.sync_log_data SET changed_at = changed_at - interval '40 days'
 WHERE first_id IN (SELECT first_id FROM edgesync.sync_log_data ORDER BY first_id LIMIT 2);
CALL edgesync.prune('30 days', batch_size => 1);
SELECT count(*) AS rows_left FROM edgesync.sync_log;
SELECT * FROM edgesync.changes(:'c1', 10);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) > 0 AS fresh_start_works FROM edgesync.changes(NULL, 10);
CALL edgesync.prune('-1 day');

-- Indexes a DBA adds to the log are kept up to date: a plain one by the
-- flush's own index insert, an expression index through the executor.
CREATE INDEX sync_log_data_relid ON edgesync.sync_log_data (relid);
CREATE INDEX sync_log_data_last_id ON edgesync.sync_log_data ((first_id + cardinality(ops) - 1));
INSERT INTO hospital_patients (id, hospital_id, name) VALUES (100, 1, 'indexed'), (101, 1, 'indexed');
SET enable_seqscan = off;
SET enable_bitmapscan = off;
EXPLAIN (COSTS OFF) SELECT d.ops, d.pks FROM edgesync.sync_log_data d WHERE d.relid = 0;
SELECT d.ops, d.pks FROM edgesync.sync_log_data d
 WHERE d.relid = 'hospital_patients'::regclass AND d.pks[1] = '{"id":100}';
EXPLAIN (COSTS OFF) SELECT d.ops, d.pks FROM edgesync.sync_log_data d WHERE d.first_id + cardinality(d.ops) - 1 = 0;
SELECT d.ops, d.pks FROM edgesync.sync_log_data d
 WHERE d.first_id + cardinality(d.ops) - 1 = (SELECT max(id) FROM edgesync.sync_log);
RESET enable_bitmapscan;
RESET enable_seqscan;
DROP INDEX edgesync.sync_log_data_relid, edgesync.sync_log_data_last_id;
DELETE FROM hospital_patients WHERE id >= 100;
SELECT op, pk FROM edgesync.sync_log ORDER BY id DESC LIMIT 2;

-- prune() goes block range by block range; a range it empties is
-- desummarized, so that VACUUM summarizes it afresh instead of leaving the
-- old rows' times in the index for the new rows that will fill it.
-- (Autosummarize and autovacuum off: nothing else summarizes meanwhile.)
TRUNCATE edgesync.sync_log_data;
ALTER TABLE edgesync.sync_log_data SET (autovacuum_enabled = off);
ALTER INDEX edgesync.sync_log_data_xid_brin SET (autosummarize = off);
CREATE TABLE prune_patients (id int PRIMARY KEY);
SELECT edgesync.track('prune_patients');
CREATE PROCEDURE one_row_transactions(first int, n int) LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN first .. first + n - 1 LOOP
        INSERT INTO prune_patients VALUES (i);
        COMMIT;
    END LOOP;
END
$$;
CALL one_row_transactions(1, 3000);
SELECT pg_relation_size('edgesync.sync_log_data') / current_setting('block_size')::int > 32
       AS spans_more_than_one_range;
SELECT brin_summarize_new_values('edgesync.sync_log_data_xid_brin') >= 1 AS summarized;
SELECT pg_sleep(2);
CALL one_row_transactions(3001, 10);
-- (As a plain member of edgesync_admin: desummarizing is done for it.)
CREATE ROLE regress_log_admin IN ROLE edgesync_admin;
SET ROLE regress_log_admin;
CALL edgesync.prune('1 second', batch_size => 500);
RESET ROLE;
DROP ROLE regress_log_admin;
SELECT count(*) AS changes_left, min((pk->>'id')::int) AS first_left FROM edgesync.sync_log;
SELECT brin_summarize_range('edgesync.sync_log_data_xid_brin', 0) AS first_range_desummarized;
ALTER TABLE edgesync.sync_log_data RESET (autovacuum_enabled);
ALTER INDEX edgesync.sync_log_data_xid_brin SET (autosummarize = on);
DROP PROCEDURE one_row_transactions(int, int);
DROP TABLE prune_patients;

DROP TABLE hospital_patients, untracked;
DROP EXTENSION edgesync;
