-- Security of the tracking side (issue 17): catalog writes check what they
-- write, edgesync's triggers are recognised by what they are, no user opts
-- out of track_schema, the trigger functions act only on tracked tables, a
-- version conflict names a key only to a role that may see it, the log's keys
-- are masked for their reader, and pull() hands out a tombstone only to a
-- caller who could see the deleted row.
\set VERBOSITY default
\set SHOW_CONTEXT never
CREATE EXTENSION edgesync;
CREATE ROLE regress_mallory LOGIN;
CREATE ROLE regress_clerk LOGIN;
GRANT CREATE ON SCHEMA public TO regress_mallory;

-- 1. edgesync._register() is executable by PUBLIC (track() runs as its
-- caller and calls it), so it checks everything track() checks itself.
CREATE TABLE hospital_patients (id int PRIMARY KEY, hospital_id int NOT NULL, mrn text);
SET ROLE regress_mallory;
CREATE VIEW mallory_view AS SELECT 1 AS id;
SELECT edgesync._register('mallory_view', true, true);
\echo :LAST_ERROR_SQLSTATE
CREATE MATERIALIZED VIEW mallory_matview AS SELECT 1 AS id;
SELECT edgesync._register('mallory_matview', true, true);
CREATE SEQUENCE mallory_seq;
SELECT edgesync._register('mallory_seq', true, true);
CREATE UNLOGGED TABLE mallory_unlogged (id int PRIMARY KEY);
SELECT edgesync._register('mallory_unlogged', true, true);
CREATE TEMPORARY TABLE mallory_temp (id int PRIMARY KEY);
SELECT edgesync._register('mallory_temp', true, true);
CREATE TABLE mallory_parts (id int PRIMARY KEY) PARTITION BY RANGE (id);
CREATE TABLE mallory_part_1 PARTITION OF mallory_parts FOR VALUES FROM (0) TO (10);
SELECT edgesync._register('mallory_part_1', true, true);
CREATE TABLE mallory_no_key (id int);
SELECT edgesync._register('mallory_no_key', true, true);
CREATE TABLE mallory_bad_version (id int PRIMARY KEY, version text);
SELECT edgesync._register('mallory_bad_version', true, true);
-- Someone else's table: refused before any lock is taken.
SELECT edgesync._register('hospital_patients', true, true);
\echo :LAST_ERROR_SQLSTATE
SELECT edgesync._unregister('hospital_patients');
-- Schemas: only a schema the caller owns, never a system schema.
SELECT edgesync._register_schema('public');
\echo :LAST_ERROR_SQLSTATE
SELECT edgesync._register_schema('pg_catalog');
\echo :LAST_ERROR_SQLSTATE
SELECT edgesync._register_schema('edgesync');
RESET ROLE;
SELECT edgesync._register_schema('information_schema');
SELECT edgesync._register_schema('pg_toast');
SELECT count(*) AS nothing_registered FROM edgesync.tracked_tables;
SELECT count(*) AS no_schema_registered FROM edgesync.tracked_schemas;

-- A tracked table stays a table edgesync can track: turning it into a view
-- (PostgreSQL 15: CREATE RULE "_RETURN" on an empty table without triggers
-- or key), making it unlogged, or attaching it as a partition is refused.
CREATE TABLE to_be_view (id int PRIMARY KEY);
SELECT edgesync.track('to_be_view');
ALTER TABLE to_be_view SET UNLOGGED;
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE some_parts (id int PRIMARY KEY, version bigint NOT NULL DEFAULT 1,
                         created_at timestamptz NOT NULL DEFAULT now(),
                         updated_at timestamptz NOT NULL DEFAULT now()) PARTITION BY RANGE (id);
ALTER TABLE some_parts ATTACH PARTITION to_be_view FOR VALUES FROM (0) TO (10);
ALTER TABLE to_be_view DROP CONSTRAINT to_be_view_pkey;
DROP TRIGGER edgesync_version ON to_be_view;
DROP TRIGGER edgesync_log ON to_be_view;
DROP TRIGGER edgesync_log_truncate ON to_be_view;
VACUUM to_be_view;  -- clears relhastriggers, which CREATE RULE checks
-- edgesync refuses it on 15 (55000, its message is checked by TAP 930); 16
-- and later never turn a table into a view and refuse it themselves (42809).
DO $$
BEGIN
    CREATE RULE "_RETURN" AS ON SELECT TO to_be_view DO INSTEAD
        SELECT 1 AS id, 1::bigint AS version, now() AS created_at, now() AS updated_at;
    RAISE NOTICE 'converted';
EXCEPTION WHEN object_not_in_prerequisite_state OR wrong_object_type THEN
    RAISE NOTICE 'refused';
END
$$;
SELECT relkind FROM pg_class WHERE oid = 'to_be_view'::regclass;
-- Untracked first, the conversion is the owner's business (where PostgreSQL
-- still allows it: 15).
SELECT edgesync.untrack('to_be_view');
DO $$
BEGIN
    CREATE RULE "_RETURN" AS ON SELECT TO to_be_view DO INSTEAD
        SELECT 1 AS id, 1::bigint AS version, now() AS created_at, now() AS updated_at;
EXCEPTION WHEN wrong_object_type THEN
    NULL;  -- 16 and later
END
$$;
SELECT relkind = 'v' OR current_setting('server_version_num')::int >= 160000 AS converted_where_allowed
  FROM pg_class WHERE oid = 'to_be_view'::regclass;
DO $$
BEGIN
    EXECUTE CASE (SELECT relkind FROM pg_class WHERE oid = 'to_be_view'::regclass)
            WHEN 'v' THEN 'DROP VIEW to_be_view' ELSE 'DROP TABLE to_be_view' END;
END
$$;
DROP TABLE some_parts;

-- 2. A user's trigger named like edgesync's on their own partitioned table
-- (a row trigger, so its partitions hold clones that cannot be dropped
-- alone) no longer breaks everybody's DDL, and is left alone.
CREATE TABLE tracked_parts (id int PRIMARY KEY, note text) PARTITION BY LIST (id);
CREATE TABLE tracked_parts_1 PARTITION OF tracked_parts FOR VALUES IN (1);
SELECT edgesync.track('tracked_parts');
SET ROLE regress_mallory;
CREATE FUNCTION mallory_noop() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$;
CREATE TRIGGER edgesync_log_truncate AFTER INSERT ON mallory_parts FOR EACH ROW EXECUTE FUNCTION mallory_noop();
CREATE TABLE mallory_after (id int);
RESET ROLE;
CREATE TABLE superuser_after (id int PRIMARY KEY);
CREATE INDEX ON superuser_after (id);
ALTER TABLE superuser_after ADD COLUMN note text;
-- A new partition of a tracked table still gets edgesync's TRUNCATE trigger.
CREATE TABLE tracked_parts_2 PARTITION OF tracked_parts FOR VALUES IN (2);
SELECT tgrelid::regclass, tgname, tgfoid::regproc, tgparentid <> 0 AS clone
  FROM pg_trigger WHERE tgname = 'edgesync_log_truncate' ORDER BY tgrelid::regclass::text;
-- untrack() and track() do not touch a trigger of edgesync's name that is not edgesync's.
CREATE TABLE own_trigger_names (id int PRIMARY KEY);
CREATE FUNCTION audit_noop() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
CREATE TRIGGER edgesync_version BEFORE INSERT ON own_trigger_names FOR EACH ROW EXECUTE FUNCTION audit_noop();
SELECT edgesync.track('own_trigger_names');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS not_tracked FROM edgesync.tracked_tables WHERE relid = 'own_trigger_names'::regclass;
ALTER TRIGGER edgesync_version ON own_trigger_names RENAME TO audit_version;
SELECT edgesync.track('own_trigger_names');
CREATE TRIGGER edgesync_audit_log AFTER INSERT ON own_trigger_names FOR EACH ROW EXECUTE FUNCTION audit_noop();
SELECT edgesync.untrack('own_trigger_names');
SELECT tgname, tgfoid::regproc FROM pg_trigger WHERE tgrelid = 'own_trigger_names'::regclass ORDER BY 1;

-- 3. The recursion guard that any user could set is gone: a table created
-- in a tracked schema is tracked whatever edgesync_internal.in_track says.
CREATE SCHEMA clinic AUTHORIZATION regress_mallory;
SELECT edgesync.track_schema('clinic');
SET ROLE regress_mallory;
SET edgesync_internal.in_track = on;
CREATE TABLE clinic.appointments (id int PRIMARY KEY, at timestamptz);
RESET edgesync_internal.in_track;
RESET ROLE;
SELECT relid FROM edgesync.tracked_tables WHERE relid = 'clinic.appointments'::regclass;
SELECT tgname FROM pg_trigger WHERE tgrelid = 'clinic.appointments'::regclass ORDER BY 1;

-- 4. edgesync's trigger functions act only on tracked tables: no flooding
-- or spoofing of sync_log through a table nobody tracked.
SET ROLE regress_mallory;
CREATE TABLE mallory_spoof (id int PRIMARY KEY, version bigint, created_at timestamptz, updated_at timestamptz);
CREATE TRIGGER spoof_log AFTER INSERT OR DELETE ON mallory_spoof FOR EACH ROW EXECUTE FUNCTION edgesync.log_trigger();
INSERT INTO mallory_spoof (id) VALUES (1);
\echo :LAST_ERROR_SQLSTATE
DROP TRIGGER spoof_log ON mallory_spoof;
CREATE TRIGGER spoof_version BEFORE INSERT ON mallory_spoof FOR EACH ROW EXECUTE FUNCTION edgesync.version_trigger();
INSERT INTO mallory_spoof (id) VALUES (1);
DROP TRIGGER spoof_version ON mallory_spoof;
CREATE TRIGGER spoof_truncate AFTER TRUNCATE ON mallory_spoof FOR EACH STATEMENT EXECUTE FUNCTION edgesync.log_trigger();
TRUNCATE mallory_spoof;
RESET ROLE;
-- A tracked table's triggers keep working; untracked, they stop with it.
CREATE TABLE hospital_wards (id int PRIMARY KEY, name text);
SELECT edgesync.track('hospital_wards');
INSERT INTO hospital_wards VALUES (1, 'A');
SELECT edgesync._unregister('hospital_wards');
INSERT INTO hospital_wards VALUES (2, 'B');
SELECT relid::text, op, pk FROM edgesync.sync_log ORDER BY id;

-- 6. A version conflict names the row's key only to a role that may SELECT
-- it (core's rule for key values in errors), never past row level security.
SELECT edgesync.track('hospital_patients');
INSERT INTO hospital_patients (id, hospital_id, mrn) VALUES (1, 1, 'MRN-0001');
GRANT UPDATE (mrn, version) ON hospital_patients TO regress_clerk;
GRANT SELECT (version) ON hospital_patients TO regress_clerk;
SET ROLE regress_clerk;
UPDATE hospital_patients SET mrn = 'x', version = 7 WHERE version = 1;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
GRANT SELECT (id) ON hospital_patients TO regress_clerk;
SET ROLE regress_clerk;
UPDATE hospital_patients SET mrn = 'x', version = 7 WHERE id = 1;
RESET ROLE;
ALTER TABLE hospital_patients ENABLE ROW LEVEL SECURITY;
CREATE POLICY everything ON hospital_patients USING (true);
SET ROLE regress_clerk;
UPDATE hospital_patients SET mrn = 'x', version = 7 WHERE id = 1;
RESET ROLE;

-- 5. The log's keys reach a reader only as far as the reader may see them.
-- A hashed key column shows as the stream shows it (the same HMAC), a key
-- column the reader may not SELECT is null, edgesync_phi_reader sees clear.
SET edgesync.hash_key = 'regress-secret';
CREATE ROLE regress_log_reader IN ROLE edgesync_reader;
CREATE ROLE regress_phi_reader IN ROLE edgesync_reader, edgesync_phi_reader;
CREATE TABLE hospital_charts (mrn text PRIMARY KEY, note text);
SELECT edgesync.track('hospital_charts');
SELECT edgesync.set_column_policy('hospital_charts', 'mrn', 'hash');
CREATE TABLE hospital_beds (ward text, bed int, PRIMARY KEY (ward, bed));
SELECT edgesync.track('hospital_beds');
GRANT SELECT ON hospital_charts, hospital_beds TO regress_phi_reader;
GRANT SELECT (bed) ON hospital_beds TO regress_log_reader;
SELECT 'init' FROM pg_create_logical_replication_slot('security_track', 'edgesync');
INSERT INTO hospital_charts VALUES ('MRN-0042', 'a note');
INSERT INTO hospital_beds VALUES ('ICU', 3);
SELECT data::jsonb->'pk' AS streamed_pk FROM pg_logical_slot_get_changes('security_track', NULL, NULL)
 WHERE data::jsonb->>'table' = 'hospital_charts';
SET ROLE regress_log_reader;
SELECT relid, pk FROM edgesync.sync_log WHERE relid::text LIKE 'hospital_c%' OR relid::text LIKE 'hospital_b%' ORDER BY id;
SELECT relid, pk FROM edgesync.changes(NULL) WHERE relid::text IN ('hospital_charts', 'hospital_beds') ORDER BY id;
-- Not through the table, nor the engine under changes(), nor as an oracle.
SELECT pks FROM edgesync.sync_log_data;
SELECT count(*) FROM edgesync._window('all', NULL, NULL, 10);
SELECT edgesync._log_pks('(0,0)');
RESET ROLE;
SET ROLE regress_phi_reader;
SELECT relid, pk FROM edgesync.sync_log WHERE relid::text IN ('hospital_charts', 'hospital_beds') ORDER BY id;
SELECT relid, pk FROM edgesync.changes(NULL) WHERE relid::text IN ('hospital_charts', 'hospital_beds') ORDER BY id;
RESET ROLE;
-- Without the hash key, a hashed column is null, never clear.
RESET edgesync.hash_key;
SET ROLE regress_log_reader;
SELECT relid, pk FROM edgesync.sync_log WHERE relid::text = 'hospital_charts' ORDER BY id;
RESET ROLE;
SELECT pg_drop_replication_slot('security_track');

-- pull() under row level security: a tombstone reaches only a caller who
-- could see the deleted row; each hospital still gets the deletes of its
-- own rows (offline clients depend on them).
CREATE ROLE regress_hospital_1 LOGIN;
CREATE ROLE regress_hospital_2 LOGIN;
CREATE TABLE hospital_admissions (id int PRIMARY KEY, hospital_id int NOT NULL, ward text);
SELECT edgesync.track('hospital_admissions');
ALTER TABLE hospital_admissions ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_hospital ON hospital_admissions
    USING (hospital_id = current_setting('app.hospital_id')::int);
GRANT SELECT ON hospital_admissions TO regress_hospital_1, regress_hospital_2;
INSERT INTO hospital_admissions VALUES (1, 1, 'A'), (2, 2, 'B'), (3, 1, 'C'), (4, 2, 'D');
-- (A NULL cursor is the initial load, of rows as they are: tombstones come from a cursor.)
SELECT edgesync.current_cursor('hospital_admissions') AS before_deletes \gset
DELETE FROM hospital_admissions WHERE id IN (3, 4);
SET ROLE regress_hospital_1;
SET app.hospital_id = 1;
SELECT pk, "row"->>'ward' AS ward, deleted FROM edgesync.pull('hospital_admissions', :'before_deletes') ORDER BY pk;
RESET ROLE;
SET ROLE regress_hospital_2;
SET app.hospital_id = 2;
SELECT pk, "row"->>'ward' AS ward, deleted FROM edgesync.pull('hospital_admissions', :'before_deletes') ORDER BY pk;
-- From a cursor on: the next delete is its own, the other hospital's is not.
SELECT edgesync.current_cursor('hospital_admissions') AS cursor \gset
RESET ROLE;
DELETE FROM hospital_admissions WHERE id = 2;
DELETE FROM hospital_admissions WHERE id = 1;
SET ROLE regress_hospital_2;
SELECT pk, deleted FROM edgesync.pull('hospital_admissions', :'cursor') WHERE pk IS NOT NULL;
RESET ROLE;
RESET app.hospital_id;
-- Only what the policies read is kept of a deleted row; nobody but the owner reads it.
SELECT images FROM edgesync.sync_log_data WHERE images IS NOT NULL ORDER BY first_id;
-- The table's owner is not under row level security: every tombstone.
SELECT pk, deleted FROM edgesync.pull('hospital_admissions', :'before_deletes') ORDER BY pk;
-- The initial load (a NULL cursor) under row level security: each hospital
-- loads its own rows, and the changes made during its load that it gets are
-- those of its own rows: its delete, not another hospital's.
INSERT INTO hospital_admissions VALUES (1, 1, 'A'), (2, 2, 'B'), (5, 1, 'E'), (6, 2, 'F'), (7, 1, 'G');
SET ROLE regress_hospital_1;
SET app.hospital_id = 1;
SELECT pk, "row"->>'ward' AS ward, deleted FROM edgesync.pull('hospital_admissions', NULL, 2);
SELECT next_cursor AS loading FROM edgesync.pull('hospital_admissions', NULL, 2) ORDER BY pk DESC LIMIT 1 \gset
RESET ROLE;
DELETE FROM hospital_admissions WHERE id IN (2, 5);
SET ROLE regress_hospital_1;
SELECT pk, "row"->>'ward' AS ward, deleted FROM edgesync.pull('hospital_admissions', :'loading', 2);
RESET ROLE;
SET ROLE regress_hospital_2;
SET app.hospital_id = 2;
SELECT pk, "row"->>'ward' AS ward, deleted FROM edgesync.pull('hospital_admissions', NULL);
RESET ROLE;
RESET app.hospital_id;

-- The helpers the DDL triggers call are safe whoever calls them: another
-- role's table is neither tracked (as its owner) nor given edgesync's
-- columns by a role that does not own it.
CREATE TABLE victim_notes (id int PRIMARY KEY, body text);
SET ROLE regress_mallory;
SELECT edgesync._track_as_owner('victim_notes');
\echo :LAST_ERROR_SQLSTATE
SELECT edgesync._add_managed_columns('victim_notes');
\echo :LAST_ERROR_SQLSTATE
SELECT edgesync._ddl_changes(NULL);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT edgesync._is_tracked('victim_notes') AS tracked,
       (SELECT count(*) FROM pg_attribute WHERE attrelid = 'victim_notes'::regclass AND attnum > 0) AS columns;
DROP TABLE victim_notes;

DROP SCHEMA clinic CASCADE;
DROP TABLE hospital_patients, hospital_wards, tracked_parts, superuser_after, own_trigger_names,
    hospital_charts, hospital_beds, hospital_admissions;
DROP OWNED BY regress_mallory;
DROP FUNCTION audit_noop();
DROP EXTENSION edgesync;
DROP ROLE regress_mallory, regress_clerk, regress_log_reader, regress_phi_reader,
    regress_hospital_1, regress_hospital_2;
