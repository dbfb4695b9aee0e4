-- Transactions in the json format: savepoints and rolled-back
-- subtransactions, a transaction larger than logical_decoding_work_mem,
-- truncate (CASCADE, RESTART IDENTITY), logical messages, two-phase commit.
\set VERBOSITY default
\set SHOW_CONTEXT never
CREATE EXTENSION edgesync;

CREATE FUNCTION decoded(slot name, VARIADIC opts text[] DEFAULT '{}') RETURNS SETOF text
LANGUAGE sql AS $$
  SELECT regexp_replace(regexp_replace(regexp_replace(data,
           '"xid":\d+,"commit_lsn":"[0-9A-F]+/[0-9A-F]+","commit_time":"[^"]+"', '"xid":…', 'g'),
           ',"row":\{.*\}(,"seq")', '\1'),
           '"lsn":"[0-9A-F]+/[0-9A-F]+"', '"lsn":…')
    FROM pg_logical_slot_get_changes(slot, NULL, NULL, VARIADIC opts)
$$;

CREATE TABLE wards (id serial PRIMARY KEY, name text);
CREATE TABLE beds (id serial PRIMARY KEY, ward_id int REFERENCES wards, label text);
CREATE TABLE untracked (id int PRIMARY KEY);
SELECT edgesync.track('wards'), edgesync.track('beds');
SELECT 'init' FROM pg_create_logical_replication_slot('t', 'edgesync');

-- Savepoints: what was rolled back to is not streamed; seq has no gaps.
BEGIN;
INSERT INTO wards (name) VALUES ('A');
SAVEPOINT s1;
INSERT INTO wards (name) VALUES ('rolled back');
ROLLBACK TO s1;
INSERT INTO wards (name) VALUES ('B');
SAVEPOINT s2;
UPDATE wards SET name = 'B2' WHERE name = 'B';
RELEASE s2;
SAVEPOINT s3;
DELETE FROM wards WHERE name = 'A';
ROLLBACK TO s3;
COMMIT;
SELECT * FROM decoded('t', 'include-transaction', 'true');

-- Larger than logical_decoding_work_mem (64kB in the tests): spilled to
-- disk, streamed whole and in order.
BEGIN;
INSERT INTO beds (ward_id, label) SELECT 1, repeat('x', 100) || g FROM generate_series(1, 5000) g;
UPDATE beds SET label = 'updated' WHERE id % 2 = 0;
DELETE FROM beds WHERE id % 5 = 0;
COMMIT;
SELECT count(*) AS changes, count(DISTINCT d->>'commit_lsn') AS transactions,
       min((d->>'seq')::int) AS first_seq, max((d->>'seq')::int) AS last_seq,
       count(*) FILTER (WHERE d->>'op' = 'insert') AS inserts,
       count(*) FILTER (WHERE d->>'op' = 'update') AS updates,
       count(*) FILTER (WHERE d->>'op' = 'delete') AS deletes,
       bool_and((d->>'seq')::int = n) AS in_order
  FROM pg_logical_slot_get_changes('t', NULL, NULL) WITH ORDINALITY AS c(lsn, xid, data, n),
       LATERAL (SELECT c.data::jsonb) AS x(d);
SELECT spill_txns > 0 AS spilled FROM pg_stat_replication_slots WHERE slot_name = 't';

-- TRUNCATE: the tracked tables truncated, with the flags; untracked ones
-- are left out, a truncate of untracked tables only produces nothing.
TRUNCATE untracked;
TRUNCATE wards, untracked CASCADE;
TRUNCATE beds RESTART IDENTITY;
SELECT * FROM decoded('t');

-- Logical messages: transactional ones belong to their transaction (and
-- start it in the stream); others come out at once, with their LSN.
BEGIN;
INSERT INTO untracked VALUES (1);
SELECT 'm1' FROM pg_logical_emit_message(true, 'edgesync-test', 'in the transaction');
SELECT 'm2' FROM pg_logical_emit_message(false, 'edgesync-test', E'not transactional\n"quoted"');
INSERT INTO wards (name) VALUES ('C');
COMMIT;
SELECT 'm3' FROM pg_logical_emit_message(true, 'bin', '\x00ff10'::bytea);
BEGIN;
SELECT 'm4' FROM pg_logical_emit_message(true, 'edgesync-test', 'rolled back');
ROLLBACK;
SELECT * FROM decoded('t', 'include-transaction', 'on');

-- Two-phase commit: the slot decodes a prepared transaction when it is
-- committed (the plugin has no two-phase callbacks), as a normal one.
BEGIN;
INSERT INTO wards (name) VALUES ('prepared');
PREPARE TRANSACTION 'edgesync_2pc';
SELECT count(*) AS before_commit FROM pg_logical_slot_get_changes('t', NULL, NULL);
COMMIT PREPARED 'edgesync_2pc';
BEGIN;
INSERT INTO wards (name) VALUES ('prepared, rolled back');
PREPARE TRANSACTION 'edgesync_2pc_rb';
ROLLBACK PREPARED 'edgesync_2pc_rb';
SELECT * FROM decoded('t');
-- A slot created with two_phase: same output, at COMMIT PREPARED.
SELECT 'init' FROM pg_create_logical_replication_slot('t2', 'edgesync', false, true);
BEGIN;
INSERT INTO wards (name) VALUES ('prepared again');
PREPARE TRANSACTION 'edgesync_2pc2';
SELECT count(*) AS before_commit FROM pg_logical_slot_get_changes('t2', NULL, NULL);
COMMIT PREPARED 'edgesync_2pc2';
SELECT * FROM decoded('t2');
SELECT pg_drop_replication_slot('t2');

-- skip-origins: changes replayed from another node (a replication origin
-- set in the session) are left out, to avoid loops; others stay.
SELECT 'o' FROM pg_replication_origin_create('regress_node_b');
SELECT 'o' FROM pg_replication_origin_session_setup('regress_node_b');
INSERT INTO wards (name) VALUES ('replayed from node b');
SELECT 'o' FROM pg_replication_origin_session_reset();
INSERT INTO wards (name) VALUES ('local');
SELECT data::jsonb->'row'->>'name' AS name
  FROM pg_logical_slot_peek_changes('t', NULL, NULL, 'skip-origins', 'on');
SELECT data::jsonb->'row'->>'name' AS name
  FROM pg_logical_slot_get_changes('t', NULL, NULL);
SELECT pg_replication_origin_drop('regress_node_b');

SELECT pg_drop_replication_slot('t');
DROP TABLE wards, beds, untracked CASCADE;
DROP FUNCTION decoded(name, text[]);
DROP EXTENSION edgesync;
