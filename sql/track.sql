-- edgesync.track(), untrack(), track_schema(): what they add, refuse and keep.
\set VERBOSITY default
\set SHOW_CONTEXT never
CREATE EXTENSION edgesync;

-- A plain table gains the three columns and the triggers.
CREATE TABLE hospital_patients (id int PRIMARY KEY, name text NOT NULL, ward text);
INSERT INTO hospital_patients VALUES (1, 'Ann', 'A');  -- existing rows get defaults
SELECT edgesync.track('hospital_patients');
\d hospital_patients
SELECT id, version, created_at IS NOT NULL AS has_created, updated_at IS NOT NULL AS has_updated
  FROM hospital_patients;
SELECT relid, log_changes, skip_unchanged FROM edgesync.tracked_tables;

-- Idempotent: a second call changes nothing but the options.
SELECT edgesync.track('hospital_patients');
SELECT edgesync.track('hospital_patients', skip_unchanged => false);
SELECT tgname, pg_get_triggerdef(oid) LIKE '%version_trigger(''false'')%' AS keeps_noops
  FROM pg_trigger WHERE tgrelid = 'hospital_patients'::regclass AND tgname = 'edgesync_version';
SELECT count(*) AS registrations FROM edgesync.tracked_tables;

-- log_changes => false: versions and timestamps only, no log triggers.
SELECT edgesync.track('hospital_patients', log_changes => false);
SELECT tgname FROM pg_trigger WHERE tgrelid = 'hospital_patients'::regclass ORDER BY 1;
SELECT edgesync.track('hospital_patients');
SELECT tgname FROM pg_trigger WHERE tgrelid = 'hospital_patients'::regclass ORDER BY 1;

-- Existing columns of the right type are adopted as they are.
CREATE TABLE hospital_queues (id bigint PRIMARY KEY, version bigint, created_at timestamptz);
SELECT edgesync.track('hospital_queues');
SELECT attname, format_type(atttypid, atttypmod), attnotnull
  FROM pg_attribute WHERE attrelid = 'hospital_queues'::regclass AND attnum > 0 ORDER BY attnum;

-- Wrong types are refused before anything changes.
CREATE TABLE bad_version (id int PRIMARY KEY, version int);
SELECT edgesync.track('bad_version');
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE bad_stamp (id int PRIMARY KEY, updated_at timestamp);
SELECT edgesync.track('bad_stamp');
SELECT count(*) AS columns_unchanged FROM pg_attribute
 WHERE attrelid = 'bad_stamp'::regclass AND attnum > 0;

-- Unsupported relations.
CREATE TABLE no_key (id int, name text);
SELECT edgesync.track('no_key');
\echo :LAST_ERROR_SQLSTATE
CREATE VIEW patient_names AS SELECT id, name FROM hospital_patients;
SELECT edgesync.track('patient_names');
\echo :LAST_ERROR_SQLSTATE
CREATE MATERIALIZED VIEW patient_count AS SELECT count(*) FROM hospital_patients;
SELECT edgesync.track('patient_count');
CREATE TEMPORARY TABLE scratch (id int PRIMARY KEY);
SELECT edgesync.track('scratch');
\echo :LAST_ERROR_SQLSTATE
CREATE UNLOGGED TABLE fast (id int PRIMARY KEY);
SELECT edgesync.track('fast');
CREATE SEQUENCE some_seq;
SELECT edgesync.track('some_seq');
SELECT edgesync.track('does_not_exist');
\echo :LAST_ERROR_SQLSTATE
CREATE FOREIGN DATA WRAPPER dummy_fdw;
CREATE SERVER dummy_server FOREIGN DATA WRAPPER dummy_fdw;
CREATE FOREIGN TABLE remote_patients (id int) SERVER dummy_server;
SELECT edgesync.track('remote_patients');
SELECT count(*) AS nothing_registered FROM edgesync.tracked_tables
 WHERE relid::text IN ('bad_version', 'bad_stamp', 'no_key', 'fast');

-- Partitioned tables: tracked through the parent, partitions included, also
-- those attached or created later.
CREATE TABLE hospital_prescriptions (id int, hospital_id int, drug text, PRIMARY KEY (id, hospital_id))
  PARTITION BY LIST (hospital_id);
CREATE TABLE hospital_prescriptions_1 PARTITION OF hospital_prescriptions FOR VALUES IN (1);
SELECT edgesync.track('hospital_prescriptions_1');
\echo :LAST_ERROR_SQLSTATE
SELECT edgesync.track('hospital_prescriptions');
CREATE TABLE hospital_prescriptions_2 PARTITION OF hospital_prescriptions FOR VALUES IN (2);
CREATE TABLE hospital_prescriptions_3 (LIKE hospital_prescriptions);
ALTER TABLE hospital_prescriptions ATTACH PARTITION hospital_prescriptions_3 FOR VALUES IN (3);
SELECT tgrelid::regclass AS partition, tgname
  FROM pg_trigger WHERE tgrelid::regclass::text LIKE 'hospital_prescriptions%' AND tgname LIKE 'edgesync%'
 ORDER BY 1, 2;
INSERT INTO hospital_prescriptions (id, hospital_id, drug) VALUES (1, 1, 'a'), (2, 2, 'b'), (3, 3, 'c');
SELECT tableoid::regclass, id, version FROM hospital_prescriptions ORDER BY id;
-- Changes to partitions are logged under the tracked table.
SELECT relid, pk, op FROM edgesync.sync_log WHERE relid = 'hospital_prescriptions'::regclass ORDER BY id;
-- Even when aimed at a partition directly.
INSERT INTO hospital_prescriptions_2 (id, hospital_id, drug) VALUES (4, 2, 'd');
SELECT relid, pk, op FROM edgesync.sync_log WHERE pk->>'id' = '4';

-- A detached partition is no longer tracked: it keeps none of our triggers.
ALTER TABLE hospital_prescriptions DETACH PARTITION hospital_prescriptions_3;
SELECT count(*) AS triggers_on_detached FROM pg_trigger
 WHERE tgrelid = 'hospital_prescriptions_3'::regclass AND tgname LIKE 'edgesync%';
DROP TABLE hospital_prescriptions_3;

-- untrack(): triggers and registration go; data and columns stay.
SELECT edgesync.untrack('hospital_queues');
SELECT count(*) AS triggers_left FROM pg_trigger WHERE tgrelid = 'hospital_queues'::regclass;
SELECT count(*) AS still_registered FROM edgesync.tracked_tables WHERE relid = 'hospital_queues'::regclass;
SELECT count(*) AS columns_kept FROM pg_attribute
 WHERE attrelid = 'hospital_queues'::regclass AND attname IN ('version', 'created_at', 'updated_at');
SELECT edgesync.untrack('hospital_queues');
\echo :LAST_ERROR_SQLSTATE
SELECT edgesync.untrack('hospital_prescriptions');
SELECT count(*) AS partition_triggers_left FROM pg_trigger
 WHERE tgrelid::regclass::text LIKE 'hospital_prescriptions%' AND tgname LIKE 'edgesync%';

-- Dropping a tracked table removes it from the catalog.
CREATE TABLE short_lived (id int PRIMARY KEY);
SELECT edgesync.track('short_lived');
DROP TABLE short_lived;
SELECT count(*) AS dangling FROM edgesync.tracked_tables t
 WHERE NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = t.relid);

-- track_schema(): every table now, and every table created there later.
CREATE SCHEMA ward;
CREATE TABLE ward.beds (id int PRIMARY KEY, label text);
CREATE TABLE ward.notes (body text);
SELECT * FROM edgesync.track_schema('ward');
CREATE TABLE ward.hospital_patient_reviews (id int PRIMARY KEY, score int);
CREATE TABLE ward.keyless (x int);
-- A key added later makes the table tracked.
ALTER TABLE ward.keyless ADD PRIMARY KEY (x);
CREATE TABLE ward.log AS SELECT 1 AS n;
SELECT relid FROM edgesync.tracked_tables WHERE relid::text LIKE 'ward.%' ORDER BY 1;
INSERT INTO ward.hospital_patient_reviews (id, score) VALUES (1, 5);
SELECT version FROM ward.hospital_patient_reviews;
SELECT edgesync.track_schema('no_such_schema');
\echo :LAST_ERROR_SQLSTATE
SELECT edgesync.track_schema('pg_catalog');
-- Tracked schemas are kept by name (pg_upgrade keeps no schema OIDs): a
-- renamed schema stays tracked under its new name.
ALTER SCHEMA ward RENAME TO "Ward 2";
SELECT nspname FROM edgesync.tracked_schemas;
CREATE TABLE "Ward 2".rooms (id int PRIMARY KEY);
SELECT edgesync._is_tracked('"Ward 2".rooms') AS renamed_schema_tracks;
ALTER SCHEMA "Ward 2" RENAME TO ward;
DROP SCHEMA ward CASCADE;
SELECT count(*) AS schemas_left FROM edgesync.tracked_schemas;

-- The catalog writes run as the catalog's owner: an operator the caller put
-- on their search_path must not run with those rights (track(), and the
-- internal _register() called directly).
CREATE ROLE regress_track_owner;
CREATE SCHEMA regress_trap AUTHORIZATION regress_track_owner;
SET ROLE regress_track_owner;
CREATE TABLE regress_trap.mine (id int PRIMARY KEY);
CREATE FUNCTION regress_trap.trap_eq(regclass, regclass) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  RAISE NOTICE 'trap operator ran as %', current_user;
  RETURN $1::oid OPERATOR(pg_catalog.=) $2::oid;
END $$;
CREATE OPERATOR regress_trap.= (LEFTARG = regclass, RIGHTARG = regclass,
                                FUNCTION = regress_trap.trap_eq);
SET search_path = regress_trap, pg_catalog;
SELECT edgesync.track('mine');
SELECT edgesync._register('mine', true, true);
SELECT edgesync.untrack('mine');
RESET search_path;
RESET ROLE;
DROP SCHEMA regress_trap CASCADE;
DROP ROLE regress_track_owner;

DROP FOREIGN TABLE remote_patients;
DROP SERVER dummy_server;
DROP FOREIGN DATA WRAPPER dummy_fdw;
DROP TABLE hospital_patients, hospital_queues, bad_version, bad_stamp, no_key,
  hospital_prescriptions, fast CASCADE;
DROP SEQUENCE some_seq;
DROP EXTENSION edgesync;
