-- An UPDATE that changes no value is skipped (skip_unchanged): no new
-- version, no log row, whenever the row was written: before track() added
-- the managed columns, before or after a column was added or dropped, by a
-- restore, or in the usual way.
\set VERBOSITY default
\set SHOW_CONTEXT never
CREATE EXTENSION edgesync;

-- Rows that existed before track(): their tuples lack the columns track()
-- added (ALTER TABLE ... ADD COLUMN with a default does not rewrite them).
CREATE TABLE wards (id int PRIMARY KEY, name text, beds int, note text);
INSERT INTO wards VALUES (1, 'Cardiology', 12, NULL), (2, 'Oncology', NULL, 'east wing');
SELECT edgesync.track('wards');
SELECT count(*) AS log_rows_before FROM edgesync.sync_log \gset
UPDATE wards SET name = name;
UPDATE wards SET beds = beds, note = note WHERE id = 2;
UPDATE wards SET name = 'Cardiology' WHERE id = 1;
SELECT id, version FROM wards ORDER BY id;
SELECT count(*) - :log_rows_before AS new_log_rows FROM edgesync.sync_log;
-- A real change is still an update.
UPDATE wards SET beds = 14 WHERE id = 1;
SELECT id, version, updated_at > created_at AS updated FROM wards ORDER BY id;

-- Rows written after track(), then a column added: the old tuples lack it.
INSERT INTO wards VALUES (3, 'Neurology', 8, NULL);
ALTER TABLE wards ADD COLUMN floor int;
UPDATE wards SET name = name;
SELECT id, version FROM wards ORDER BY id;
-- ... and a column dropped: the old tuples still hold its value.
ALTER TABLE wards DROP COLUMN note;
UPDATE wards SET name = name;
SELECT id, version FROM wards ORDER BY id;
-- New rows, new columns, the usual case.
INSERT INTO wards (id, name) VALUES (4, 'Geriatrics');
UPDATE wards SET name = name, floor = floor;
SELECT id, version FROM wards ORDER BY id;
SELECT count(*) - :log_rows_before AS new_log_rows FROM edgesync.sync_log;

-- Optimistic locking still applies to a skipped row: a stale version fails.
UPDATE wards SET name = name, version = 1 WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
UPDATE wards SET name = name, version = 2 WHERE id = 1;
SELECT id, version FROM wards WHERE id = 1;

-- Setting the managed columns alone changes nothing either.
UPDATE wards SET updated_at = now(), created_at = '2000-01-01' WHERE id = 2;
SELECT id, version, created_at <> '2000-01-01' AS created_kept FROM wards WHERE id = 2;

-- A TOASTed value left alone is unchanged; a changed one is a change.
UPDATE wards SET name = repeat('x', 100000) WHERE id = 3;
UPDATE wards SET name = name WHERE id = 3;
UPDATE wards SET name = repeat('x', 100000) WHERE id = 3;
UPDATE wards SET name = repeat('y', 100000) WHERE id = 3;
SELECT id, version FROM wards WHERE id = 3;

-- skip_unchanged => false keeps every update, old rows included.
CREATE TABLE beds (id int PRIMARY KEY, label text);
INSERT INTO beds VALUES (1, 'A1');
SELECT edgesync.track('beds', skip_unchanged => false);
UPDATE beds SET label = label;
SELECT id, version FROM beds;

-- A partitioned table: rows of a partition that existed before track().
CREATE TABLE stays (id int, ward int, note text, PRIMARY KEY (id, ward)) PARTITION BY LIST (ward);
CREATE TABLE stays_1 PARTITION OF stays FOR VALUES IN (1);
INSERT INTO stays VALUES (1, 1, 'x');
SELECT edgesync.track('stays');
UPDATE stays SET note = note;
SELECT id, version FROM stays;

DROP TABLE wards, beds, stays;
DROP EXTENSION edgesync;
