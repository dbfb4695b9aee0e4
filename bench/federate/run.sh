#!/usr/bin/env bash
# Federated view benchmark (issue 6): what a query through edgesync.federate()'s
# view costs next to the replica alone and a plain postgres_fdw foreign
# table on the same hospital table, and how fast it answers when the
# hospital is down.  Prints one table; exits 0.  Not a test: it asserts
# nothing.
#
#   bash bench/federate/run.sh         (as root or as any user; ~3 minutes)
#
# Environment: ROWS (100000), REPEATS (3), PGBENCH_SECONDS (10).
#
# Two throwaway clusters (scripts/cluster.sh), "hospital" and "cloud", from a
# private install, stopped on exit; the cloud reaches the hospital over TCP
# on loopback.  The hospital has a tracked patients table of ROWS rows; the
# cloud a replica of it (copied, versions included), a postgres_fdw foreign
# table on it, and the federated view.  Each repeat runs every variant, in
# turn:
#   one patient   pgbench, 1 client, PGBENCH_SECONDS of SELECT * ... WHERE
#                 id = random (-M prepared): average latency;
#   all rows      every column of every row read (psql \timing);
#   count         count(*) (postgres_fdw pushes it down as an aggregate);
# then, with the hospital stopped, the federated view's one patient and all
# rows.  The table shows medians.
set -euo pipefail
cd "$(dirname "$0")/../.."

ROWS=${ROWS:-100000}
REPEATS=${REPEATS:-3}
PGBENCH_SECONDS=${PGBENCH_SECONDS:-10}

# Clusters and a private install of edgesync (the system is left untouched).
source scripts/cluster.sh
source bench/lib.sh
cluster_setup

cluster_start hospital
cluster_start cloud
cluster_psql hospital -d postgres -q >/dev/null <<SQL
CREATE EXTENSION edgesync;
CREATE TABLE hospital_patients (id int PRIMARY KEY, mrn text, name text, ward text, born date);
SELECT edgesync.track('hospital_patients', log_changes => false);
INSERT INTO hospital_patients (id, mrn, name, ward, born)
SELECT g, 'MRN' || g, 'Patient ' || g, 'ward-' || g % 20, date '1930-01-01' + g % 30000
  FROM generate_series(1, $ROWS) g;
VACUUM ANALYZE hospital_patients;
SQL
cluster_psql cloud -d postgres -q >/dev/null <<SQL
CREATE EXTENSION edgesync;
CREATE EXTENSION postgres_fdw;
CREATE SERVER hospital FOREIGN DATA WRAPPER postgres_fdw
  OPTIONS (host '127.0.0.1', port '$hospital_PORT', dbname 'postgres');
CREATE USER MAPPING FOR CURRENT_USER SERVER hospital;
CREATE FOREIGN TABLE patients_fdw (id int, mrn text, name text, ward text, born date,
    version bigint, created_at timestamptz, updated_at timestamptz)
  SERVER hospital OPTIONS (table_name 'hospital_patients');
CREATE TABLE hospital_patients (id int PRIMARY KEY, mrn text, name text, ward text, born date,
    version bigint NOT NULL, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL);
INSERT INTO hospital_patients SELECT * FROM patients_fdw;
VACUUM ANALYZE hospital_patients;
SELECT edgesync.federate('hospital_patients', 'hospital');
SQL

results=$CLUSTER_ROOT/results
: >"$results"
declare -A relation=([replica]=hospital_patients [postgres_fdw]=patients_fdw [federated]=hospital_patients_federated)

one_patient() { # variant, label
	local script=$CLUSTER_ROOT/$1.sql
	printf '\\set id random(1, %d)\nSELECT * FROM %s WHERE id = :id;\n' "$ROWS" "${relation[$1]}" |
		as_cluster_user tee "$script" >/dev/null
	as_cluster_user "$PG_BINDIR/pgbench" -n -M prepared -h "$CLUSTER_ROOT" -p "$cloud_PORT" -U postgres \
		-T "$PGBENCH_SECONDS" -f "$script" postgres 2>/dev/null |
		sed -nE "s/^latency average = ([0-9.]+) ms/$2 \1/p" >>"$results"
}
timed() { # label, SQL: records the milliseconds psql's \timing reports
	cluster_psql cloud -d postgres -At -c '\timing on' -c "$2" 2>/dev/null |
		sed -nE "s/^Time: ([0-9.]+) ms.*/$1 \1/p" >>"$results"
}

for ((r = 1; r <= REPEATS; r++)); do
	for v in replica postgres_fdw federated; do
		one_patient "$v" "$v|one patient (ms)"
		timed "$v|all rows, every column (ms)" \
			"SELECT sum(length(mrn || name || ward || born::text || updated_at::text)) FROM ${relation[$v]}"
		timed "$v|count(*) (ms)" "SELECT count(*) FROM ${relation[$v]}"
	done
done
as_cluster_user "$PG_BINDIR/pg_ctl" -D "$CLUSTER_ROOT/hospital" -m fast -w stop >/dev/null
for ((r = 1; r <= REPEATS; r++)); do
	one_patient federated "hospital down|one patient (ms)"
	timed "hospital down|all rows, every column (ms)" \
		"SELECT sum(length(mrn || name || ward || born::text || updated_at::text)) FROM hospital_patients_federated"
done

echo
echo "Federated view, $ROWS patients, medians of $REPEATS runs"
echo
echo "| query | replica | postgres_fdw | federated view | federated, hospital down |"
echo "| --- | ---: | ---: | ---: | ---: |"
# The median of the times on standard input, two decimals ("—" for none).
median_ms() { median | awk '{ if ($1 == "nan") print "—"; else printf "%.2f", $1 }'; }
for q in "one patient (ms)" "all rows, every column (ms)" "count(*) (ms)"; do
	row="| $q"
	for v in replica postgres_fdw federated "hospital down"; do
		row+=" | $( (grep -F "$v|$q " "$results" || true) | awk '{print $NF}' | median_ms)"
	done
	echo "$row |"
done
