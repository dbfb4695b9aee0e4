-- The edgesync output plugin, json format: inserts, updates and deletes of
-- tracked tables; untracked tables and their transactions produce nothing;
-- transactions lines; the tables option; every bad option; a database
-- without the extension.
\set VERBOSITY default
\set SHOW_CONTEXT never
SELECT current_database() AS regress_db \gset
CREATE EXTENSION edgesync;

-- Changes with xid, commit LSN/time and row timestamps masked.
CREATE FUNCTION decoded(slot name, VARIADIC opts text[] DEFAULT '{}') RETURNS SETOF text
LANGUAGE sql AS $$
  SELECT regexp_replace(regexp_replace(data,
           '"xid":\d+,"commit_lsn":"[0-9A-F]+/[0-9A-F]+","commit_time":"[^"]+"', '"xid":…', 'g'),
           '"(created|updated)_at":"[^"]+"', '"\1_at":…', 'g')
    FROM pg_logical_slot_get_changes(slot, NULL, NULL, VARIADIC opts)
$$;

CREATE TABLE patients (id int PRIMARY KEY, name text, ward text);
SELECT edgesync.track('patients');
CREATE TABLE visits (patient_id int, visit_no int, note text, PRIMARY KEY (patient_id, visit_no));
SELECT edgesync.track('visits');
CREATE TABLE untracked (id int PRIMARY KEY, note text);

SELECT 'init' FROM pg_create_logical_replication_slot('s', 'edgesync');

INSERT INTO patients (id, name, ward) VALUES (1, 'Ann', 'A'), (2, 'Bob', 'B');
INSERT INTO untracked VALUES (1, 'not streamed');
UPDATE patients SET ward = 'C' WHERE id = 1;
DELETE FROM patients WHERE id = 2;
INSERT INTO visits (patient_id, visit_no, note) VALUES (1, 1, 'first');
SELECT * FROM decoded('s');

-- The commit LSN, time and xid are there and well-formed.
INSERT INTO patients (id, name) VALUES (3, 'Cy');
SELECT d->>'op' AS op, d->>'xid' ~ '^\d+$' AS xid_ok,
       (d->>'commit_lsn')::pg_lsn > '0/0' AS lsn_ok,
       (d->>'commit_time')::timestamptz BETWEEN now() - interval '1 hour' AND clock_timestamp() AS time_ok,
       d->>'commit_time' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d$' AS iso8601
  FROM pg_logical_slot_get_changes('s', NULL, NULL) AS c, LATERAL (SELECT c.data::jsonb) AS j(d);

-- A transaction that touches only untracked tables produces nothing, and
-- the slot still moves past it.
INSERT INTO untracked VALUES (2, 'still not streamed');
SELECT pg_current_wal_lsn() AS after_untracked \gset
SELECT count(*) AS lines FROM pg_logical_slot_get_changes('s', NULL, NULL);
SELECT confirmed_flush_lsn >= :'after_untracked' AS slot_advanced
  FROM pg_replication_slots WHERE slot_name = 's';

-- An aborted transaction produces nothing.
BEGIN;
INSERT INTO patients (id, name) VALUES (4, 'rolled back');
ROLLBACK;
SELECT count(*) AS lines FROM pg_logical_slot_get_changes('s', NULL, NULL);

-- include-transaction: begin and commit lines around each transaction; seq
-- counts the changes.
BEGIN;
INSERT INTO untracked VALUES (3, 'not streamed, no begin for it');
INSERT INTO patients (id, name) VALUES (5, 'Dee');
UPDATE patients SET name = 'Dee E.' WHERE id = 5;
COMMIT;
INSERT INTO untracked VALUES (4, 'a whole untracked transaction');
SELECT * FROM decoded('s', 'include-transaction', 'on');

-- A key-changing update: pk is the old key, row the new one.
UPDATE patients SET id = 10 WHERE id = 5;
UPDATE visits SET visit_no = 2 WHERE patient_id = 1;
SELECT * FROM decoded('s');

-- tables narrows the stream further (untracked names match nothing).
INSERT INTO patients (id, name) VALUES (6, 'Eve');
INSERT INTO visits (patient_id, visit_no) VALUES (6, 1);
INSERT INTO untracked VALUES (5, 'x');
SELECT * FROM decoded('s', 'tables', 'public.visits, public.untracked');

-- Option values: booleans in any spelling, values and unquoted names in
-- any case.  Option names are case-sensitive, as in core's plugins.
INSERT INTO patients (id, name) VALUES (7, 'Fay');
SELECT count(*) FROM pg_logical_slot_peek_changes('s', NULL, NULL, 'include-transaction', 'yes', 'format', 'Json');
SELECT count(*) FROM pg_logical_slot_peek_changes('s', NULL, NULL, 'include-transaction', 'off', 'format', 'JSON');
SELECT count(*) FROM pg_logical_slot_peek_changes('s', NULL, NULL, 'tables', 'PUBLIC.Patients');
SELECT count(*) FROM pg_logical_slot_peek_changes('s', NULL, NULL, 'tables', '"PUBLIC"."Patients"');

-- Every bad option is an error naming it.
SELECT * FROM pg_logical_slot_peek_changes('s', NULL, NULL, 'fromat', 'json');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pg_logical_slot_peek_changes('s', NULL, NULL, 'format', 'xml');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pg_logical_slot_peek_changes('s', NULL, NULL, 'FORMAT', 'json');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pg_logical_slot_peek_changes('s', NULL, NULL, 'include-transaction', 'maybe');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pg_logical_slot_peek_changes('s', NULL, NULL, 'skip-origins', '2');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pg_logical_slot_peek_changes('s', NULL, NULL, 'columns', 'all');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pg_logical_slot_peek_changes('s', NULL, NULL, 'tables', 'patients');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pg_logical_slot_peek_changes('s', NULL, NULL, 'tables', 'public.patients,');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pg_logical_slot_peek_changes('s', NULL, NULL, 'tables', 'a.b.c');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pg_logical_slot_peek_changes('s', NULL, NULL, 'tables', '"public.patients');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pg_logical_slot_peek_changes('s', NULL, NULL, 'source', '');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM pg_logical_slot_peek_changes('s', NULL, NULL, 'format', 'json', 'format', 'sql');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM pg_logical_slot_get_changes('s', NULL, NULL);

-- Schema changes of a tracked table a replica must follow: a "schema" line
-- each, in the transaction of the change, before the changes after it; none
-- for an untracked table, none for a column added (its values say it).
CREATE TABLE schema_t (id int PRIMARY KEY, a text, b int);
SELECT edgesync.track('schema_t');
SELECT count(*) AS lines FROM pg_logical_slot_get_changes('s', NULL, NULL);
BEGIN;
ALTER TABLE schema_t RENAME COLUMN a TO "a 2";
INSERT INTO schema_t (id, "a 2", b) VALUES (1, 'x', 2);
COMMIT;
ALTER TABLE schema_t ALTER COLUMN b TYPE bigint, DROP COLUMN "a 2", ADD COLUMN c text;
ALTER TABLE schema_t RENAME TO schema_t2;
ALTER TABLE untracked ALTER COLUMN note TYPE varchar(100);
INSERT INTO schema_t2 (id, b) VALUES (2, 3);
SELECT * FROM decoded('s');
SELECT change, old_name, new_name, old_schema FROM edgesync.schema_changes ORDER BY changed_at, change;
DROP TABLE schema_t2;
SELECT count(*) FROM pg_logical_slot_get_changes('s', NULL, NULL);

-- pg_replication_slot_advance() skips changes without output.
INSERT INTO patients (id, name) VALUES (8, 'skipped');
SELECT 'advanced' FROM pg_replication_slot_advance('s', pg_current_wal_lsn());
SELECT count(*) AS lines FROM pg_logical_slot_get_changes('s', NULL, NULL);

SELECT pg_drop_replication_slot('s');

-- The slot's database must have the extension: at creation, and at each start.
CREATE DATABASE decode_noext;
\c decode_noext
SELECT pg_create_logical_replication_slot('noext', 'edgesync');
\echo :LAST_ERROR_SQLSTATE
CREATE EXTENSION edgesync;
SELECT 'init' FROM pg_create_logical_replication_slot('noext', 'edgesync');
DROP EXTENSION edgesync;
SELECT * FROM pg_logical_slot_get_changes('noext', NULL, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT pg_drop_replication_slot('noext');
\c :regress_db
DROP DATABASE decode_noext;

DROP TABLE patients, visits, untracked;
DROP FUNCTION decoded(name, text[]);
DROP EXTENSION edgesync;
