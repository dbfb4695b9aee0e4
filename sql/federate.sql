-- Federated views: bad input gets a clear error and creates nothing; a
-- loopback federation (the "hospital" is this instance) works end to end.
\set VERBOSITY default
\set SHOW_CONTEXT never
CREATE EXTENSION edgesync;

-- The "hospital" table, tracked, in schema clinic; its replica in public.
CREATE SCHEMA clinic;
CREATE TABLE clinic.hospital_patients (id int PRIMARY KEY, name text, ward text);
SELECT edgesync.track('clinic.hospital_patients');
INSERT INTO clinic.hospital_patients (id, name, ward) VALUES (1, 'Ann', 'A'), (2, 'Bob', 'B'), (3, 'Cy', 'A');
UPDATE clinic.hospital_patients SET ward = 'ICU' WHERE id = 1;
CREATE TABLE hospital_patients (LIKE clinic.hospital_patients INCLUDING ALL);
INSERT INTO hospital_patients SELECT * FROM clinic.hospital_patients;
UPDATE hospital_patients SET ward = 'A', version = 1 WHERE id = 1;   -- the replica is behind
INSERT INTO hospital_patients (id, name, ward, version) VALUES (4, 'Dee', 'B', 1);  -- deleted at the hospital

-- No server yet, and postgres_fdw is not installed: the hint says so.
SELECT edgesync.federate('hospital_patients', 'hospital');
\echo :LAST_ERROR_SQLSTATE

CREATE EXTENSION postgres_fdw;
DO $$
BEGIN
    EXECUTE format('CREATE SERVER hospital FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host %L, port %L, dbname %L)',
                   split_part(current_setting('unix_socket_directories'), ',', 1),
                   current_setting('port'), current_database());
END
$$;
CREATE USER MAPPING FOR CURRENT_USER SERVER hospital;

-- Unknown server (postgres_fdw installed now).
SELECT edgesync.federate('hospital_patients', 'nowhere');
-- A server of another wrapper.
CREATE FOREIGN DATA WRAPPER regress_other;
CREATE SERVER regress_other_server FOREIGN DATA WRAPPER regress_other;
SELECT edgesync.federate('hospital_patients', 'regress_other_server');
-- Not a table.
CREATE VIEW patients_view AS SELECT * FROM hospital_patients;
SELECT edgesync.federate('patients_view', 'hospital', 'clinic');
-- A table without a primary key.
CREATE TABLE no_key (id int, version bigint);
SELECT edgesync.federate('no_key', 'hospital', 'clinic');
\echo :LAST_ERROR_SQLSTATE
-- A table without the version column.
CREATE TABLE no_version (id int PRIMARY KEY, name text);
SELECT edgesync.federate('no_version', 'hospital', 'clinic');
-- No such table at the hospital.
SELECT edgesync.federate('hospital_patients', 'hospital', 'clinic', 'nosuch');
\echo :LAST_ERROR_SQLSTATE
-- The hospital cannot be reached: federate() needs it to compare the columns.
CREATE SERVER regress_dead FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', port '1', dbname 'x');
CREATE USER MAPPING FOR CURRENT_USER SERVER regress_dead;
\set VERBOSITY terse
SELECT edgesync.federate('hospital_patients', 'regress_dead', 'clinic');
\set VERBOSITY default
\echo :LAST_ERROR_SQLSTATE
-- Columns that do not match: one missing at the hospital, one of another type.
CREATE TABLE mismatch (LIKE hospital_patients INCLUDING ALL);
ALTER TABLE mismatch ADD COLUMN room int, ALTER COLUMN ward TYPE varchar(10);
SELECT edgesync.federate('mismatch', 'hospital', 'clinic', 'hospital_patients');
\echo :LAST_ERROR_SQLSTATE
-- The view's name is taken by something else.
SELECT edgesync.federate('hospital_patients', 'hospital', 'clinic', view_name => 'patients_view');
\echo :LAST_ERROR_SQLSTATE
-- None of that created anything.
SELECT count(*) AS federations FROM edgesync.federations;
SELECT relname FROM pg_class WHERE relname LIKE '%federated%' ORDER BY 1;

-- The loopback federation.
SELECT edgesync.federate('hospital_patients', 'hospital', 'clinic');
SELECT edgesync.federate('hospital_patients', 'hospital', 'clinic');  -- again: replaced
SELECT view, scan, replica, server, remote_schema, remote_table FROM edgesync.federations;
SELECT id, name, ward, version, _source, _version FROM hospital_patients_federated ORDER BY id;
SELECT id, ward, _source FROM hospital_patients_federated WHERE ward = 'A' ORDER BY id;
EXPLAIN (VERBOSE, COSTS OFF) SELECT id, ward FROM hospital_patients_federated WHERE id = 1;
-- IN lists and IS NULL are pushed too.
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM hospital_patients_federated WHERE id IN (1, 3, 4) AND name IS NOT NULL;
SELECT id, _source FROM hospital_patients_federated WHERE id IN (1, 3, 4) AND name IS NOT NULL ORDER BY id;
-- Not pushed: a function of a column, a non-equality on text.
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM hospital_patients_federated WHERE lower(name) = 'ann' AND name > 'A';
-- The foreign table takes only federate()'s options.
ALTER FOREIGN TABLE hospital_patients_federated_scan OPTIONS (ADD fetch_size '10');
\echo :LAST_ERROR_SQLSTATE

-- A composite text/int key, and filters the freshest row no longer matches.
CREATE TABLE clinic.hospital_queues (ward text, ticket int, status text, PRIMARY KEY (ward, ticket));
SELECT edgesync.track('clinic.hospital_queues');
INSERT INTO clinic.hospital_queues (ward, ticket, status)
SELECT w, t, 'waiting' FROM unnest(ARRAY['A', 'B b', 'C''s']) w, generate_series(1, 3) t;
CREATE TABLE hospital_queues (LIKE clinic.hospital_queues INCLUDING ALL);
INSERT INTO hospital_queues SELECT * FROM clinic.hospital_queues;
UPDATE clinic.hospital_queues SET status = 'seen' WHERE ticket = 1;             -- hospital newer
DELETE FROM clinic.hospital_queues WHERE ward = 'A' AND ticket = 2;            -- deleted there
UPDATE hospital_queues SET status = 'called', version = 9 WHERE ward = 'C''s' AND ticket = 3;  -- replica newer
INSERT INTO clinic.hospital_queues (ward, ticket, status) VALUES ('A', 4, 'waiting');  -- not replicated yet
SELECT edgesync.federate('hospital_queues', 'hospital', 'clinic');
SELECT ward, ticket, status, version, _source FROM hospital_queues_federated ORDER BY 1, 2;
SELECT ward, ticket, _source FROM hospital_queues_federated WHERE status = 'waiting' ORDER BY 1, 2;
SELECT ward, ticket, status, _source FROM hospital_queues_federated WHERE ward = 'C''s' AND ticket >= 3;
-- The replica is read as the view's owner: a caller's own "=" found first on
-- its search_path must not run there (the key lookup uses IN).
CREATE SCHEMA regress_evil;
CREATE FUNCTION regress_evil.eq(int4, int4) RETURNS bool LANGUAGE plpgsql AS
$$BEGIN RAISE NOTICE 'regress_evil.= ran'; RETURN $1 OPERATOR(pg_catalog.=) $2; END$$;
CREATE OPERATOR regress_evil.= (LEFTARG = int4, RIGHTARG = int4, FUNCTION = regress_evil.eq);
SET search_path = regress_evil, public, pg_catalog;
SELECT id, _source FROM hospital_patients_federated ORDER BY id;
SELECT ward, ticket, _source FROM hospital_queues_federated ORDER BY 1, 2;
RESET search_path;
DROP SCHEMA regress_evil CASCADE;
SELECT edgesync.unfederate('hospital_queues_federated');

-- Values are written for the hospital in formats that do not depend on the
-- session: with DateStyle SQL, DMY a date is still sent as ISO (the hospital's
-- connection reads MDY), in a constant, a parameter and the key list.
CREATE TABLE clinic.hospital_visits (seen date PRIMARY KEY, note text);
SELECT edgesync.track('clinic.hospital_visits');
INSERT INTO clinic.hospital_visits (seen, note) VALUES ('2024-01-02', 'second of January'), ('2024-02-01', 'first of February');
CREATE TABLE hospital_visits (LIKE clinic.hospital_visits INCLUDING ALL);
INSERT INTO hospital_visits SELECT * FROM clinic.hospital_visits;
SELECT edgesync.federate('hospital_visits', 'hospital', 'clinic');
SET datestyle = 'SQL, DMY';
SELECT seen, note, _source FROM hospital_visits_federated WHERE seen = '02/01/2024';
EXPLAIN (VERBOSE, COSTS OFF) SELECT note FROM hospital_visits_federated WHERE seen = '02/01/2024';
PREPARE visit(date) AS SELECT note, _source FROM hospital_visits_federated WHERE seen = $1 AND note IS NOT NULL;
SET plan_cache_mode = force_generic_plan;
EXECUTE visit('01/02/2024');
RESET plan_cache_mode;
DEALLOCATE visit;
RESET datestyle;
SELECT edgesync.unfederate('hospital_visits_federated');

-- count(*) of the whole view is the hospital's, in one statement.
EXPLAIN (VERBOSE, COSTS OFF) SELECT count(*) FROM hospital_patients_federated;
SELECT count(*) FROM hospital_patients_federated;
SELECT count(*) FROM hospital_patients_federated WHERE _source IS NOT NULL;
-- Not with a filter, nor for another aggregate.
EXPLAIN (COSTS OFF) SELECT count(*) FROM hospital_patients_federated WHERE id > 1;
EXPLAIN (COSTS OFF) SELECT max(id) FROM hospital_patients_federated;

-- The hospital's table changed under the view: an error, not an outage.
-- (A changed option of the foreign table is seen at once: cached facts are invalidated.)
ALTER FOREIGN TABLE hospital_patients_federated_scan OPTIONS (SET table_name 'nosuch');
SELECT id FROM hospital_patients_federated WHERE id = 1;
ALTER FOREIGN TABLE hospital_patients_federated_scan OPTIONS (SET table_name 'hospital_patients');
SELECT id FROM hospital_patients_federated WHERE id = 1;
ALTER TABLE clinic.hospital_patients RENAME COLUMN ward TO unit;
SELECT id, ward FROM hospital_patients_federated WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE clinic.hospital_patients RENAME COLUMN unit TO ward;

-- A changed user mapping is used at once, not after the cached connection dies.
SELECT id, _source FROM hospital_patients_federated WHERE id = 1;
ALTER USER MAPPING FOR CURRENT_USER SERVER hospital OPTIONS (ADD user 'regress_no_such_role');
\set VERBOSITY terse
SELECT id, _source FROM hospital_patients_federated WHERE id = 1;
\set VERBOSITY default
ALTER USER MAPPING FOR CURRENT_USER SERVER hospital OPTIONS (DROP user);
SELECT id, _source FROM hospital_patients_federated WHERE id = 1;

-- Rights: a reader needs SELECT on the view only, no user mapping of its own
-- (the hospital is reached with the view owner's).
CREATE ROLE regress_reader;
GRANT SELECT ON hospital_patients_federated TO regress_reader;
SET ROLE regress_reader;
SELECT id, ward, _source FROM hospital_patients_federated WHERE id = 1;
SELECT id FROM hospital_patients WHERE id = 1;   -- the replica itself is not readable
RESET ROLE;
-- A view owned by a non-superuser: as with postgres_fdw, the connection must use a password.
CREATE ROLE regress_owner;
GRANT edgesync_admin TO regress_owner;
GRANT SELECT ON hospital_patients TO regress_owner;
ALTER FOREIGN TABLE hospital_patients_federated_scan OWNER TO regress_owner;
ALTER VIEW hospital_patients_federated OWNER TO regress_owner;
SELECT count(*) FROM hospital_patients_federated;   -- no USAGE on the postgres_fdw server
\echo :LAST_ERROR_SQLSTATE
GRANT USAGE ON FOREIGN SERVER hospital TO regress_owner;
\set VERBOSITY sqlstate
SELECT count(*) FROM hospital_patients_federated;  -- no user mapping (16 reworded the message)
\set VERBOSITY default
CREATE USER MAPPING FOR regress_owner SERVER hospital;
SELECT count(*) FROM hospital_patients_federated;
\echo :LAST_ERROR_SQLSTATE
ALTER USER MAPPING FOR regress_owner SERVER hospital OPTIONS (ADD password '');
SELECT count(*) FROM hospital_patients_federated;   -- an empty password is none
\echo :LAST_ERROR_SQLSTATE
ALTER USER MAPPING FOR regress_owner SERVER hospital OPTIONS (SET password 'secret');
SELECT count(*) FROM hospital_patients_federated;   -- this server does not ask for it
ALTER VIEW hospital_patients_federated OWNER TO CURRENT_USER;
ALTER FOREIGN TABLE hospital_patients_federated_scan OWNER TO CURRENT_USER;

-- unfederate.
SELECT edgesync.unfederate('patients_view');
\echo :LAST_ERROR_SQLSTATE
SELECT edgesync.unfederate('hospital_patients_federated');
SELECT count(*) AS federations FROM edgesync.federations;
SELECT relname FROM pg_class WHERE relname LIKE '%federated%' ORDER BY 1;

SET client_min_messages = warning;
DROP SCHEMA clinic CASCADE;
DROP TABLE hospital_patients, hospital_queues, hospital_visits, no_key, no_version, mismatch CASCADE;
DROP FOREIGN DATA WRAPPER regress_other CASCADE;
DROP USER MAPPING FOR regress_owner SERVER hospital;
DROP EXTENSION postgres_fdw CASCADE;
RESET client_min_messages;
DROP EXTENSION edgesync;
DROP ROLE regress_reader, regress_owner;
