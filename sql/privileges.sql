-- Who may do what: the log holds patient keys, so it is not open to PUBLIC.
\set VERBOSITY default
\set SHOW_CONTEXT never
CREATE EXTENSION edgesync;
CREATE ROLE regress_clinic_app LOGIN;
CREATE ROLE regress_sync_client LOGIN;
CREATE ROLE regress_hospital_1 LOGIN;
GRANT edgesync_reader TO regress_sync_client, regress_hospital_1;

CREATE TABLE hospital_patients (id int PRIMARY KEY, hospital_id int NOT NULL, name text);
SELECT edgesync.track('hospital_patients');
INSERT INTO hospital_patients (id, hospital_id, name) VALUES (1, 1, 'Ann'), (2, 2, 'Bob'), (3, 1, 'Cy');
GRANT SELECT, INSERT, UPDATE, DELETE ON hospital_patients TO regress_clinic_app, regress_sync_client, regress_hospital_1;

-- A plain role: may write the tracked table (the triggers log for it) but
-- may not read the log or track tables it does not own.
SET ROLE regress_clinic_app;
UPDATE hospital_patients SET name = 'Ann B.' WHERE id = 1;
SELECT count(*) FROM edgesync.sync_log;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM edgesync.sync_log_data;
SELECT count(*) FROM edgesync.changes(NULL, 10);
\echo :LAST_ERROR_SQLSTATE
-- pull() shows only what the role may SELECT anyway: open to it.
SELECT count(*) FROM edgesync.pull('hospital_patients', NULL);
SELECT count(*) FROM edgesync.tracked_tables;
SELECT edgesync.track('hospital_patients');
\echo :LAST_ERROR_SQLSTATE
SELECT edgesync.untrack('hospital_patients');
-- Writing the catalog directly, or through the C helper, is refused too.
INSERT INTO edgesync.tracked_tables (relid) VALUES ('hospital_patients');
SELECT edgesync._register('hospital_patients', true, true);
-- push runs with the caller's own table privileges.
SELECT status FROM edgesync.push('hospital_patients', '[{"op": "update", "row": {"id": 3, "name": "Cy C."}, "version": 1}]');
CALL edgesync.prune('1 day');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- A role granted edgesync_reader reads the log and pulls.
SET ROLE regress_sync_client;
SELECT op, pk FROM edgesync.sync_log ORDER BY id;
SELECT count(*) AS changes FROM edgesync.changes(NULL, 10);
SELECT pk, "row"->>'name' AS name FROM edgesync.pull('hospital_patients', NULL);
CALL edgesync.prune('1 day');
RESET ROLE;

-- The owner of a table may track it without any edgesync role.
CREATE TABLE clinic_notes (id int PRIMARY KEY, body text);
ALTER TABLE clinic_notes OWNER TO regress_clinic_app;
SET ROLE regress_clinic_app;
SELECT edgesync.track('clinic_notes');
SELECT edgesync.untrack('clinic_notes');
RESET ROLE;
-- ... and a schema's owner may track the schema.
CREATE SCHEMA clinic AUTHORIZATION regress_clinic_app;
SET ROLE regress_sync_client;
SELECT edgesync.track_schema('clinic');
\echo :LAST_ERROR_SQLSTATE
SET ROLE regress_clinic_app;
SELECT edgesync.track_schema('clinic');
CREATE TABLE clinic.appointments (id int PRIMARY KEY, at timestamptz);
RESET ROLE;
SELECT relid FROM edgesync.tracked_tables WHERE relid::text LIKE 'clinic.%';

-- Row-level security applies to pull and push: regress_hospital_1 sees hospital 1 only.
ALTER TABLE hospital_patients ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_hospital ON hospital_patients
  USING (hospital_id = 1 OR current_user <> 'regress_hospital_1');
SET ROLE regress_hospital_1;
SELECT pk, "row"->>'name' AS name FROM edgesync.pull('hospital_patients', NULL);
SELECT ord, status, "row" IS NULL AS row_hidden FROM edgesync.push('hospital_patients', $$[
  {"op": "update", "row": {"id": 2, "name": "not mine"}, "version": 1},
  {"op": "update", "row": {"id": 1, "name": "mine"}, "version": 2}
]$$);
RESET ROLE;
SELECT id, name, version FROM hospital_patients ORDER BY id;

-- SECURITY DEFINER functions pin search_path.
SELECT p.oid::regprocedure, p.proconfig
  FROM pg_proc p WHERE p.pronamespace = 'edgesync'::regnamespace AND p.prosecdef ORDER BY p.proname;

DROP SCHEMA clinic CASCADE;
DROP TABLE hospital_patients, clinic_notes;
DROP EXTENSION edgesync;
DROP ROLE regress_clinic_app, regress_sync_client, regress_hospital_1;
