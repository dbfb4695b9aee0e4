-- PHI column policies: hash (HMAC-SHA256 with edgesync.hash_key) and redact,
-- applied inside the plugin; a policy change applies from its commit on;
-- columns=raw only for edgesync_phi_reader; who may set a policy.
\set VERBOSITY default
\set SHOW_CONTEXT never
CREATE EXTENSION edgesync;
CREATE EXTENSION pgcrypto;  -- to check the HMACs independently

CREATE FUNCTION decoded(slot name, VARIADIC opts text[] DEFAULT '{}') RETURNS SETOF jsonb
LANGUAGE sql AS $$
  SELECT (data::jsonb - 'xid' - 'commit_lsn' - 'commit_time') #- '{row,created_at}' #- '{row,updated_at}'
    FROM pg_logical_slot_get_changes(slot, NULL, NULL, VARIADIC opts)
$$;

CREATE TABLE patients (id int PRIMARY KEY, mrn text NOT NULL, name text, dob date, ward text);
SELECT edgesync.track('patients');
SELECT 'init' FROM pg_create_logical_replication_slot('p', 'edgesync');
SET edgesync.hash_key = 'regress-secret';

-- Before any policy: everything replicated.
INSERT INTO patients VALUES (1, 'MRN-1', 'Ann', '1980-01-01', 'A');
-- A transaction that already wrote the table cannot set a policy on it:
-- those rows would leave under the old one.
BEGIN;
INSERT INTO patients VALUES (2, 'MRN-2', 'Bob', '1990-02-02', 'B');
SELECT edgesync.set_column_policy('patients', 'mrn', 'hash');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- Policies set in one transaction apply from its commit, also to rows it
-- writes after them.
BEGIN;
SELECT edgesync.set_column_policy('patients', 'mrn', 'hash');
SELECT edgesync.set_column_policy('patients', 'name', 'redact');
SELECT edgesync.set_column_policy('patients', 'dob', 'hash');
INSERT INTO patients VALUES (3, 'MRN-3', 'Cy', NULL, 'C');
COMMIT;
INSERT INTO patients VALUES (4, 'MRN-1', 'Ann again', '1980-01-01', 'D');
UPDATE patients SET ward = 'E' WHERE id = 1;
SELECT d->'pk' AS pk, d->'row' AS row FROM decoded('p') AS d;

-- The hash is HMAC-SHA256(key, text of the value) in hex: equal values are
-- joinable, and anyone with the key can check them.
INSERT INTO patients VALUES (5, 'MRN-5', 'Dee', '2000-05-05', 'A');
SELECT d->'row'->>'mrn' = encode(hmac('MRN-5', 'regress-secret', 'sha256'), 'hex') AS mrn_hmac,
       d->'row'->>'dob' = encode(hmac('2000-05-05', 'regress-secret', 'sha256'), 'hex') AS dob_hmac,
       d->'row'->'name' AS name
  FROM decoded('p') AS d;
SELECT relid, attname, policy FROM edgesync.column_policies ORDER BY attname;

-- A hashed primary key is hashed in "pk" too.
CREATE TABLE ids (mrn text PRIMARY KEY, note text);
SELECT edgesync.track('ids');
SELECT edgesync.set_column_policy('ids', 'mrn', 'hash');
INSERT INTO ids VALUES ('MRN-9', 'x');
DELETE FROM ids;
SELECT d->>'op' AS op, d->'pk'->>'mrn' = encode(hmac('MRN-9', 'regress-secret', 'sha256'), 'hex') AS pk_hashed
  FROM decoded('p') AS d;

-- Without the key, a hashed column cannot leave: decoding stops with an error.
INSERT INTO patients VALUES (6, 'MRN-6', 'Eve', NULL, 'A');
RESET edgesync.hash_key;
SELECT * FROM pg_logical_slot_peek_changes('p', NULL, NULL);
\echo :LAST_ERROR_SQLSTATE
SET edgesync.hash_key = 'regress-secret';

-- Back to replicate; a renamed column keeps its policy; partitions follow
-- their root's policies, matched by column name.
SELECT edgesync.set_column_policy('patients', 'dob', 'replicate');
ALTER TABLE patients RENAME COLUMN name TO full_name;
INSERT INTO patients VALUES (7, 'MRN-7', 'Fay', '1970-07-07', 'A');
CREATE TABLE stays (id int, region text, patient text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
CREATE TABLE stays_south (patient text, region text NOT NULL, id int NOT NULL);
ALTER TABLE stays ATTACH PARTITION stays_south FOR VALUES IN ('south');
SELECT edgesync.track('stays');
SELECT edgesync.set_column_policy('stays', 'patient', 'redact');
INSERT INTO stays VALUES (1, 'south', 'Gus');
BEGIN;  -- a write to one partition counts too
INSERT INTO stays_south (id, region, patient) VALUES (2, 'south', 'rolled back');
SELECT edgesync.set_column_policy('stays', 'patient', 'replicate');
ROLLBACK;
SELECT d->>'table' AS tbl, d->'row' AS row FROM decoded('p') AS d;

-- columns=raw: refused to a role that is not a member of edgesync_phi_reader,
-- allowed to one that is.
CREATE ROLE regress_stream_reader LOGIN REPLICATION;
INSERT INTO patients VALUES (8, 'MRN-8', 'Hal', NULL, 'A');
SET ROLE regress_stream_reader;
SELECT * FROM pg_logical_slot_peek_changes('p', NULL, NULL, 'columns', 'raw');
\echo :LAST_ERROR_SQLSTATE
SELECT data::jsonb->'row'->'full_name' AS redacted FROM pg_logical_slot_peek_changes('p', NULL, NULL);
-- The key is for superusers only.  (SQLSTATE only: PostgreSQL 16 reworded
-- its own message.)
\set VERBOSITY sqlstate
SHOW edgesync.hash_key;
\set VERBOSITY default
SELECT count(*) FROM pg_settings WHERE name = 'edgesync.hash_key';
RESET ROLE;
GRANT edgesync_phi_reader TO regress_stream_reader;
SET ROLE regress_stream_reader;
SELECT d->'row'->>'mrn' AS mrn, d->'row'->>'full_name' AS full_name
  FROM decoded('p', 'columns', 'raw') AS d;
RESET ROLE;
SHOW edgesync.hash_key;

-- Who may set a policy: the table's owner, with a valid policy, on a column
-- that can carry it.
CREATE ROLE regress_clerk;
SET ROLE regress_clerk;
SELECT edgesync.set_column_policy('patients', 'mrn', 'replicate');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT edgesync.set_column_policy('patients', 'mrn', 'scramble');
\echo :LAST_ERROR_SQLSTATE
SELECT edgesync.set_column_policy('patients', 'nope', 'hash');
\echo :LAST_ERROR_SQLSTATE
SELECT edgesync.set_column_policy('patients', 'version', 'redact');
\echo :LAST_ERROR_SQLSTATE
SELECT edgesync.set_column_policy('patients', 'id', 'redact');
\echo :LAST_ERROR_SQLSTATE
SELECT edgesync.set_column_policy('patients', 'ctid', 'redact');
\echo :LAST_ERROR_SQLSTATE
SELECT edgesync.set_column_policy('stays_south', 'patient', 'hash');
\echo :LAST_ERROR_SQLSTATE
CREATE VIEW patient_view AS SELECT * FROM patients;
SELECT edgesync.set_column_policy('patient_view', 'mrn', 'hash');
\echo :LAST_ERROR_SQLSTATE
SELECT edgesync.set_column_policy('patients', 'mrn', NULL);
\echo :LAST_ERROR_SQLSTATE
-- Nobody but the function writes the policy catalog.
SET ROLE regress_clerk;
INSERT INTO edgesync.column_policies (relid, attname, policy) VALUES ('patients', 'mrn', 'hash');
RESET ROLE;

-- The policy catalog is written as its owner, with a search_path of its own:
-- a table owner's "=" put in front of pg_catalog's is not run (it would run
-- with the catalog owner's rights).
CREATE SCHEMA regress_trap;
GRANT CREATE, USAGE ON SCHEMA regress_trap TO regress_clerk;
SET ROLE regress_clerk;
CREATE TABLE regress_trap.clerk_notes (id int PRIMARY KEY, note text);
CREATE FUNCTION regress_trap.trap_eq(regclass, regclass) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  RAISE NOTICE 'trap operator ran as %', current_user;
  RETURN $1::oid OPERATOR(pg_catalog.=) $2::oid;
END $$;
CREATE OPERATOR regress_trap.= (LEFTARG = regclass, RIGHTARG = regclass,
                                FUNCTION = regress_trap.trap_eq);
SET search_path = regress_trap, pg_catalog;
SELECT edgesync.set_column_policy('clerk_notes', 'note', 'hash');
SELECT edgesync.set_column_policy('clerk_notes', 'note', 'redact');
SELECT edgesync.set_column_policy('clerk_notes', 'note', 'replicate');
SHOW search_path;
RESET search_path;
RESET ROLE;
DROP SCHEMA regress_trap CASCADE;

-- Dropping a table drops its policies.
DROP VIEW patient_view;
DROP TABLE ids;
SELECT relid, attname, policy FROM edgesync.column_policies ORDER BY 1::text, 2;

SELECT pg_drop_replication_slot('p');
DROP TABLE patients, stays;
DROP ROLE regress_stream_reader, regress_clerk;
DROP FUNCTION decoded(name, text[]);
DROP EXTENSION pgcrypto;
DROP EXTENSION edgesync;
