-- The trigger rules: versions, timestamps, optimistic locking, no-op updates,
-- replication apply, and what reaches sync_log.
\set VERBOSITY default
\set SHOW_CONTEXT never
CREATE EXTENSION edgesync;
CREATE TABLE hospital_patients (id int PRIMARY KEY, hospital_id int, name text, notes text);
SELECT edgesync.track('hospital_patients');

-- INSERT: version 1 and the transaction's clock, whatever the statement says.
BEGIN;
INSERT INTO hospital_patients (id, hospital_id, name, version, created_at, updated_at)
VALUES (1, 10, 'Ann', 42, '2000-01-01', '2000-01-01'),
       (2, 10, 'Bob', DEFAULT, DEFAULT, DEFAULT);
SELECT id, version, created_at = now() AS created_now, updated_at = now() AS updated_now
  FROM hospital_patients ORDER BY id;
COMMIT;
SELECT id, version FROM hospital_patients ORDER BY id;

-- UPDATE leaving version alone: version + 1, updated_at moves, created_at stays.
SELECT created_at AS ann_created FROM hospital_patients WHERE id = 1 \gset
BEGIN;
UPDATE hospital_patients SET notes = 'allergic to penicillin', created_at = '1999-01-01' WHERE id = 1;
SELECT id, version, created_at = :'ann_created' AS created_kept, updated_at = now() AS updated_now
  FROM hospital_patients WHERE id = 1;
COMMIT;

-- Two updates in one transaction: two versions.
BEGIN;
UPDATE hospital_patients SET notes = 'first' WHERE id = 2;
UPDATE hospital_patients SET notes = 'second' WHERE id = 2;
COMMIT;
SELECT id, version, notes FROM hospital_patients WHERE id = 2;

-- Optimistic locking: setting version means "I read this version".
UPDATE hospital_patients SET notes = 'based on v2', version = 2 WHERE id = 1;
SELECT id, version, notes FROM hospital_patients WHERE id = 1;
UPDATE hospital_patients SET notes = 'stale', version = 2 WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
UPDATE hospital_patients SET version = NULL WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
SELECT id, version, notes FROM hospital_patients WHERE id = 1;
-- A multi-row update with one stale row fails as a whole.
UPDATE hospital_patients SET notes = 'bulk', version = 1;
SELECT id, version, notes FROM hospital_patients ORDER BY id;

-- An UPDATE that changes no value: no new version, no log row.
SELECT count(*) AS log_rows_before FROM edgesync.sync_log \gset
UPDATE hospital_patients SET notes = notes;
UPDATE hospital_patients SET name = 'Ann' WHERE id = 1;
UPDATE hospital_patients SET notes = notes, updated_at = now(), version = 3 WHERE id = 1;
SELECT id, version FROM hospital_patients ORDER BY id;
SELECT count(*) - :log_rows_before AS new_log_rows FROM edgesync.sync_log;
-- ... unless the table asks to keep them.
SELECT edgesync.track('hospital_patients', skip_unchanged => false);
UPDATE hospital_patients SET notes = notes WHERE id = 1;
SELECT id, version FROM hospital_patients WHERE id = 1;
SELECT edgesync.track('hospital_patients');

-- Rows applied by replication keep their incoming values and are not logged.
SET session_replication_role = replica;
INSERT INTO hospital_patients (id, hospital_id, name, version, created_at, updated_at)
VALUES (3, 20, 'Cy', 7, '2020-02-02 00:00+00', '2021-03-03 00:00+00');
UPDATE hospital_patients SET version = 8, notes = 'from the cloud' WHERE id = 3;
RESET session_replication_role;
SELECT id, version, created_at, updated_at FROM hospital_patients WHERE id = 3;
-- ... and also when a replication origin is set (triggers still fire).
SELECT pg_replication_origin_create('cloud') IS NOT NULL AS origin_created;
SELECT pg_replication_origin_session_setup('cloud');
UPDATE hospital_patients SET version = 11, notes = 'origin apply' WHERE id = 3;
SELECT pg_replication_origin_session_reset();
SELECT pg_replication_origin_drop('cloud');
SELECT id, version, notes FROM hospital_patients WHERE id = 3;

-- DELETE and TRUNCATE are logged; a key change is a delete plus an update.
UPDATE hospital_patients SET id = 20 WHERE id = 2;
DELETE FROM hospital_patients WHERE id = 20;
TRUNCATE hospital_patients;
SELECT op, pk, version, role = current_user::regrole AS by_me,
       application_name = current_setting('application_name') AS same_app
  FROM edgesync.sync_log ORDER BY id;
-- The role is the one in effect outside SECURITY DEFINER functions (SET ROLE counts).
CREATE ROLE regress_nurse;
GRANT INSERT ON hospital_patients TO regress_nurse;
SET ROLE regress_nurse;
SET application_name = 'ward-tablet';
INSERT INTO hospital_patients (id, name) VALUES (4, 'by the nurse');
RESET ROLE;
RESET application_name;
SELECT role, application_name FROM edgesync.sync_log WHERE pk = '{"id": 4}';

-- The log's transaction and clock are those of the change.
BEGIN;
INSERT INTO hospital_patients (id, hospital_id, name) VALUES (5, 10, 'Eve');
SELECT pg_current_xact_id() AS change_xid, now() AS change_clock \gset
COMMIT;
SELECT xid = :'change_xid'::xid8 AS same_xid, changed_at = :'change_clock'::timestamptz AS same_clock
  FROM edgesync.sync_log WHERE pk = '{"id": 5}';

-- Subtransactions: what a rolled-back savepoint wrote never reaches the log.
BEGIN;
INSERT INTO hospital_patients (id, name) VALUES (6, 'kept');
SAVEPOINT s1;
INSERT INTO hospital_patients (id, name) VALUES (7, 'rolled back');
SAVEPOINT s2;
INSERT INTO hospital_patients (id, name) VALUES (8, 'rolled back too');
ROLLBACK TO SAVEPOINT s1;
INSERT INTO hospital_patients (id, name) VALUES (9, 'kept too');
COMMIT;
SELECT pk FROM edgesync.sync_log WHERE op = 'I' AND (pk->>'id')::int >= 6 ORDER BY id;
-- An error inside a PL/pgSQL exception block, in the middle of a statement.
DO $$
BEGIN
  INSERT INTO hospital_patients (id, name) VALUES (10, 'kept');
  BEGIN
    INSERT INTO hospital_patients (id, name) VALUES (11, 'lost'), (10, 'duplicate');
  EXCEPTION WHEN unique_violation THEN
    RAISE NOTICE 'duplicate key rolled back';
  END;
END $$;
SELECT pk FROM edgesync.sync_log WHERE op = 'I' AND (pk->>'id')::int >= 10 ORDER BY id;
-- An aborted transaction leaves nothing.
BEGIN;
INSERT INTO hospital_patients (id, name) VALUES (12, 'aborted');
ROLLBACK;
SELECT count(*) AS aborted_rows FROM edgesync.sync_log WHERE pk = '{"id": 12}';

-- The buffer is written before PREPARE TRANSACTION, and before COMMIT: a
-- transaction's changes are in the log once it commits, not before.
BEGIN;
INSERT INTO hospital_patients (id, name) VALUES (13, 'prepared');
PREPARE TRANSACTION 'edgesync_2pc';
SELECT count(*) AS visible_before_commit FROM edgesync.sync_log WHERE pk = '{"id": 13}';
COMMIT PREPARED 'edgesync_2pc';
SELECT op, pk FROM edgesync.sync_log WHERE pk = '{"id": 13}';

BEGIN;
INSERT INTO hospital_patients (id, name) VALUES (14, 'flushed at commit');
SELECT count(*) AS before_commit FROM edgesync.sync_log WHERE pk = '{"id": 14}';
COMMIT;
SELECT op, pk FROM edgesync.sync_log WHERE pk = '{"id": 14}';

-- Large statements are written in several batches, all of them.
INSERT INTO hospital_patients (id, name) SELECT g, 'bulk ' || g FROM generate_series(100, 2599) g;
SELECT count(*) AS logged, count(DISTINCT id) AS distinct_ids FROM edgesync.sync_log
 WHERE (pk->>'id')::int BETWEEN 100 AND 2599;

-- ON CONFLICT: what happened is logged, what did not is not.
INSERT INTO hospital_patients (id, name) VALUES (100, 'dup'), (3000, 'new') ON CONFLICT DO NOTHING;
INSERT INTO hospital_patients (id, name) VALUES (101, 'upserted') ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name;
SELECT op, pk, version FROM edgesync.sync_log WHERE pk->>'id' IN ('100', '101', '3000') ORDER BY id;

-- COPY and MERGE go through the same triggers.
COPY hospital_patients (id, name) FROM stdin;
4001	copied one
4002	copied two
\.
MERGE INTO hospital_patients p
USING (VALUES (4001, 'merged'), (4003, 'merged new')) AS m(id, name) ON p.id = m.id
WHEN MATCHED THEN UPDATE SET name = m.name
WHEN NOT MATCHED THEN INSERT (id, name) VALUES (m.id, m.name);
SELECT op, pk, version FROM edgesync.sync_log WHERE (pk->>'id')::int BETWEEN 4001 AND 4003 ORDER BY id;
SELECT id, name, version FROM hospital_patients WHERE id BETWEEN 4001 AND 4003 ORDER BY id;

-- Keys of every common type, as JSON.
CREATE TABLE visits (clinic text, day date, seq numeric, ok boolean, code uuid,
                     PRIMARY KEY (clinic, day, seq, ok, code));
SELECT edgesync.track('visits');
INSERT INTO visits VALUES (E'Saint "Mary''s"\n', '2026-01-02', 1.50, true, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11');
SELECT pk FROM edgesync.sync_log WHERE relid = 'visits'::regclass;
-- Keys are written under fixed output settings (the stream's: ISO dates,
-- UTC), whatever the writing session's: a day written under DMY reads back
-- as the same day, and pull() finds the row.
CREATE TABLE shifts (day date, starts timestamptz, ward text, PRIMARY KEY (day, starts));
SELECT edgesync.track('shifts');
BEGIN;
SET LOCAL DateStyle = 'SQL, DMY';
SET LOCAL TimeZone = 'Europe/Paris';
INSERT INTO shifts VALUES ('04/03/2026', '04/03/2026 08:00', 'A');
COMMIT;
SELECT pk FROM edgesync.sync_log WHERE relid = 'shifts'::regclass;
SELECT pk, "row"->>'ward' AS ward FROM edgesync.pull('shifts', NULL, 10);
DROP TABLE shifts;

-- Managed columns anywhere in the row, NULLs around them, NULLs supplied for them.
CREATE TABLE odd_layout (a text, version bigint, b varchar(10), created_at timestamptz,
                         c int, updated_at timestamptz, id int PRIMARY KEY, d numeric);
SELECT edgesync.track('odd_layout');
BEGIN;
INSERT INTO odd_layout (a, b, c, id, d) VALUES (NULL, 'x', NULL, 1, 1.5), ('long text value', NULL, 3, 2, NULL);
INSERT INTO odd_layout (id, version, created_at, updated_at) VALUES (3, NULL, NULL, NULL);
SELECT id, a, b, c, d, version, created_at = now() AS created_now, updated_at = now() AS updated_now
  FROM odd_layout ORDER BY id;
COMMIT;
UPDATE odd_layout SET a = coalesce(a, '') || '!', created_at = NULL;
SELECT id, a, version, created_at IS NOT NULL AS created_kept FROM odd_layout ORDER BY id;
DROP TABLE odd_layout;

-- The per-table facts the triggers cache follow the table's definition.
CREATE TABLE rekeyed (a int PRIMARY KEY, b int NOT NULL);
SELECT edgesync.track('rekeyed');
INSERT INTO rekeyed (a, b) VALUES (1, 10);
ALTER TABLE rekeyed DROP CONSTRAINT rekeyed_pkey, ADD PRIMARY KEY (b);
INSERT INTO rekeyed (a, b) VALUES (2, 20);
ALTER TABLE rekeyed RENAME COLUMN b TO bed;
UPDATE rekeyed SET a = 3 WHERE bed = 20;
SELECT op, pk, version FROM edgesync.sync_log WHERE relid = 'rekeyed'::regclass ORDER BY id;
DROP TABLE rekeyed;

-- A trigger function called the wrong way.
SELECT edgesync.version_trigger();
CREATE TABLE wrong (id int PRIMARY KEY);
CREATE TRIGGER wrong_way AFTER INSERT ON wrong FOR EACH ROW EXECUTE FUNCTION edgesync.version_trigger();
INSERT INTO wrong VALUES (1);
\echo :LAST_ERROR_SQLSTATE
-- A tracked table whose version column was dropped by hand.
SELECT edgesync.track('wrong');
DROP TRIGGER wrong_way ON wrong;
ALTER TABLE wrong DROP COLUMN version;
INSERT INTO wrong VALUES (2);
\echo :LAST_ERROR_SQLSTATE

DROP TABLE hospital_patients, visits, wrong;
DROP ROLE regress_nurse;

-- Tracked changes, then DROP EXTENSION in the same transaction: the log
-- went with the extension, and COMMIT still succeeds.
CREATE TABLE last_patients (id int PRIMARY KEY, name text);
SELECT edgesync.track('last_patients');
BEGIN;
INSERT INTO last_patients (id, name) VALUES (1, 'last');
SET LOCAL client_min_messages = warning;
DROP EXTENSION edgesync CASCADE;
COMMIT;
SELECT id, name, version FROM last_patients;
DROP TABLE last_patients;
