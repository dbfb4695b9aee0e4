# Demo chapter: the cloud's federated view — live when the hospital answers,
# the replica when it does not.
say "A cloud cluster with a replica of the hospital's patient table"
cluster_start cloud
cluster_psql cloud -d postgres -c 'CREATE DATABASE cloud'
cloud_sql() { cluster_psql cloud -d cloud -e "$@"; }
hospital_sql <<'SQL'
INSERT INTO hospital_patients (id, hospital_id, name, ward) VALUES (3, 1, 'Cy Young', 'A'), (4, 1, 'Di Prince', 'B');
CREATE TABLE hospital_prescriptions (id int PRIMARY KEY, patient_id int NOT NULL, drug text, dose text);
SELECT edgesync.track('hospital_prescriptions');
INSERT INTO hospital_prescriptions (id, patient_id, drug, dose) VALUES (10, 1, 'amoxicillin', '500 mg'), (11, 3, 'ibuprofen', '200 mg');
SQL
# The replica is copied here through postgres_fdw, as the stream would fill it.
cloud_sql <<SQL
CREATE EXTENSION edgesync;
CREATE EXTENSION postgres_fdw;
CREATE SERVER hospital FOREIGN DATA WRAPPER postgres_fdw
  OPTIONS (host '$CLUSTER_ROOT', port '$hospital_PORT', dbname 'hospital');
CREATE USER MAPPING FOR CURRENT_USER SERVER hospital;
CREATE SCHEMA staging;
IMPORT FOREIGN SCHEMA public LIMIT TO (hospital_patients, hospital_prescriptions) FROM SERVER hospital INTO staging;
CREATE TABLE hospital_patients (LIKE staging.hospital_patients, PRIMARY KEY (id));
CREATE TABLE hospital_prescriptions (LIKE staging.hospital_prescriptions, PRIMARY KEY (id));
INSERT INTO hospital_patients SELECT * FROM staging.hospital_patients;
INSERT INTO hospital_prescriptions SELECT * FROM staging.hospital_prescriptions;
DROP SCHEMA staging CASCADE;
SQL

say "federate(): one view per table, replica and live rows, the higher version wins"
cloud_sql <<'SQL'
SELECT edgesync.federate('hospital_patients', 'hospital');
SELECT edgesync.federate('hospital_prescriptions', 'hospital');
SQL
hospital_sql <<'SQL'
UPDATE hospital_patients SET ward = 'ICU' WHERE id = 3;   -- not in the replica yet
DELETE FROM hospital_prescriptions WHERE id = 11;
SQL
cloud_sql <<'SQL'
SELECT id, name, ward, version, _source FROM hospital_patients_federated ORDER BY id;
SELECT id, patient_id, drug, _source FROM hospital_prescriptions_federated ORDER BY id;
SQL

say "One patient's query: the filter is sent to the hospital"
cloud_sql <<'SQL'
EXPLAIN (VERBOSE, COSTS OFF) SELECT name, ward FROM hospital_patients_federated WHERE id = 3;
SQL

say "The hospital goes down (VPN outage): the replica answers, with a WARNING"
as_cluster_user "$PG_BINDIR/pg_ctl" -D "$CLUSTER_ROOT/hospital" -m fast -w stop >/dev/null
cloud_sql <<'SQL'
\timing on
SET edgesync.federate_connect_timeout = '1s';
SELECT id, name, ward, version, _source FROM hospital_patients_federated ORDER BY id;
\timing off
BEGIN;
CREATE TABLE report_log (at timestamptz DEFAULT now(), note text);
INSERT INTO report_log (note) VALUES ('ward report during the outage');
SELECT count(*) AS prescriptions FROM hospital_prescriptions_federated;
COMMIT;
SELECT note FROM report_log;
SQL

say "The hospital is back: live again"
as_cluster_user "$PG_BINDIR/pg_ctl" -D "$CLUSTER_ROOT/hospital" -l "$CLUSTER_ROOT/hospital.log" -w start >/dev/null
cloud_sql <<'SQL'
SELECT id, ward, version, _source FROM hospital_patients_federated WHERE id = 3;
SQL
