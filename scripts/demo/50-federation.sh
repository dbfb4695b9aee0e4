# Demo chapter: the cloud's federated view — live when the hospital answers,
# the replica when it does not (docs/federation.md).
say "Federation: the cloud reaches the hospital through a postgres_fdw server"
if [ -z "${cloud_PORT:-}" ]; then
	cluster_start cloud
	cluster_psql cloud -d postgres -c 'CREATE DATABASE cloud'
fi
cloud_sql() { cluster_psql cloud -d cloud -e "$@"; }
# replicate TABLE: the replica as docs/replica.md bootstraps it (definition
# and rows, versions included); the stream keeps it up to date from there.
replicate() {
	as_cluster_user "$PG_BINDIR/pg_dump" -h "$CLUSTER_ROOT" -p "$hospital_PORT" -U postgres -d hospital \
		--schema-only -t "$1" | cluster_psql cloud -d cloud >/dev/null
	as_cluster_user "$PG_BINDIR/pg_dump" -h "$CLUSTER_ROOT" -p "$hospital_PORT" -U postgres -d hospital \
		--data-only --disable-triggers -t "$1" | cluster_psql cloud -d cloud >/dev/null
}
hospital_sql <<'SQL'
CREATE TABLE hospital_prescriptions (id int PRIMARY KEY, patient_id int NOT NULL, drug text, dose text);
SELECT edgesync.track('hospital_prescriptions');
INSERT INTO hospital_prescriptions (id, patient_id, drug, dose) VALUES (10, 1, 'amoxicillin', '500 mg'), (11, 3, 'ibuprofen', '200 mg');
SQL
cloud_sql -c 'CREATE EXTENSION IF NOT EXISTS edgesync'
[ -n "$(cluster_psql cloud -d cloud -At -c "SELECT to_regclass('hospital_patients')")" ] || replicate hospital_patients
replicate hospital_prescriptions
cloud_sql <<SQL
CREATE EXTENSION postgres_fdw;
CREATE SERVER hospital FOREIGN DATA WRAPPER postgres_fdw
  OPTIONS (host '$CLUSTER_ROOT', port '$hospital_PORT', dbname 'hospital');
CREATE USER MAPPING FOR CURRENT_USER SERVER hospital;
SQL

say "federate(): one view per table, replica and live rows, the higher version wins"
cloud_sql <<'SQL'
SELECT edgesync.federate('hospital_patients', 'hospital');
SELECT edgesync.federate('hospital_prescriptions', 'hospital');
SQL
echo '-- changes at the hospital that the replica has not received yet:'
hospital_sql <<'SQL'
UPDATE hospital_patients SET ward = 'ICU' WHERE id = 1;
INSERT INTO hospital_patients (id, hospital_id, name, ward) VALUES (4, 1, 'Di Prince', 'B');
DELETE FROM hospital_prescriptions WHERE id = 11;
SQL
cloud_sql <<'SQL'
SELECT id, name, ward, version FROM hospital_patients ORDER BY id;   -- the replica
SELECT id, name, ward, version, _source FROM hospital_patients_federated ORDER BY id;
SELECT id, patient_id, drug, _source FROM hospital_prescriptions_federated ORDER BY id;
SQL

say "One patient's query: the filter is sent to the hospital"
cloud_sql -c 'EXPLAIN (VERBOSE, COSTS OFF) SELECT name, ward FROM hospital_patients_federated WHERE id = 1'

say "The hospital goes down (VPN outage): the replica answers, with a WARNING, and the transaction goes on"
as_cluster_user "$PG_BINDIR/pg_ctl" -D "$CLUSTER_ROOT/hospital" -m fast -w stop >/dev/null
cloud_sql <<'SQL'
SET edgesync.federate_connect_timeout = '1s';
\timing on
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
cloud_sql -c 'SELECT id, ward, version, _source FROM hospital_patients_federated WHERE id = 1'
