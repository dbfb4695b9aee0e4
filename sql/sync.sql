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

-- pull(): current rows of changed keys, tombstones for deleted ones.
DELETE FROM hospital_patients WHERE id = 4;
SELECT pk, "row"->>'name' AS name, "row"->>'ward' AS ward, version, deleted
  FROM edgesync.pull('hospital_patients', NULL);
SELECT next_cursor AS p1 FROM edgesync.pull('hospital_patients', NULL) ORDER BY pk DESC LIMIT 1 \gset
-- Paging never loses a key: max = 1 at a time until the end.
WITH RECURSIVE pages(n, pk, cur) AS (
    SELECT 1, p.pk, p.next_cursor FROM edgesync.pull('hospital_patients', NULL, 1) p
  UNION ALL
    SELECT pages.n + 1, p.pk, p.next_cursor
      FROM pages, LATERAL edgesync.pull('hospital_patients', pages.cur, 1) p
     WHERE pages.n < 20
)
-- ("-": a row that only moves the cursor past key 4, deleted later.)
SELECT string_agg(coalesce(pk->>'id', '-'), ',' ORDER BY n) AS keys_in_order FROM pages;

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
