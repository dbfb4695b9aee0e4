#!/usr/bin/env bash
# Federated view benchmark (issues 6 and 15): what a query through a
# federated view costs next to the replica alone and a plain postgres_fdw
# foreign table on the same hospital table, for edgesync's wrapper
# (edgesync.federate()) and the plain-SQL variant for managed clouds
# (sql/cloud/federate.sql, over dblink); how fast each answers when the
# hospital is down; and the peak memory of the cloud's backend during a
# whole-table read at two table sizes.  Prints two tables; exits 0.  Not a
# test: it asserts nothing.
#
#   bash bench/federate/run.sh         (as root or as any user; ~6 minutes)
#
# Environment: ROWS (100000), MEMORY_ROWS (400000, the second size of the
# memory table), REPEATS (3), PGBENCH_SECONDS (10).
#
# Two throwaway clusters (scripts/cluster.sh), "hospital" and "cloud", from a
# private install, stopped on exit; the cloud reaches the hospital over TCP
# on loopback.  The hospital has a tracked patients table of ROWS rows (and
# one of MEMORY_ROWS); the cloud a replica of each (copied, versions
# included), a postgres_fdw foreign table on them, edgesync's federated view,
# and the plain-SQL one.  Each repeat runs every variant, in turn:
#   one patient   pgbench, 1 client, PGBENCH_SECONDS of a lookup by random id
#                 (-M prepared): average latency;
#   all rows      every column of every row read (psql \timing);
#   count         count(*);
# "federated, in memory" is edgesync's view with edgesync.federate_streaming
# off (how it merged whole reads before).  Then, with the hospital stopped,
# both federated variants again.  The tables show medians.  Peak memory:
# the most private memory (RssAnon) of the cloud backend during one whole
# read, sampled every few milliseconds, minus what it had before it.
set -euo pipefail
cd "$(dirname "$0")/../.."

ROWS=${ROWS:-100000}
MEMORY_ROWS=${MEMORY_ROWS:-400000}
REPEATS=${REPEATS:-3}
PGBENCH_SECONDS=${PGBENCH_SECONDS:-10}

# Clusters and a private install of edgesync (the system is left untouched).
source scripts/cluster.sh
source bench/lib.sh
cluster_setup

cluster_start hospital
cluster_start cloud
hospital_table() { # name, rows
	cat <<SQL
CREATE TABLE $1 (id int PRIMARY KEY, mrn text, name text, ward text, born date);
SELECT edgesync.track('$1', log_changes => false);
INSERT INTO $1 (id, mrn, name, ward, born)
SELECT g, 'MRN' || g, 'Patient ' || g, 'ward-' || g % 20, date '1930-01-01' + g % 30000
  FROM generate_series(1, $2) g;
VACUUM ANALYZE $1;
SQL
}
cloud_table() { # name: a foreign table <name>_fdw, the replica <name>, both federated views
	cat <<SQL
CREATE FOREIGN TABLE $1_fdw (id int, mrn text, name text, ward text, born date,
    version bigint, created_at timestamptz, updated_at timestamptz)
  SERVER hospital OPTIONS (table_name '$1');
CREATE TABLE $1 (id int PRIMARY KEY, mrn text, name text, ward text, born date,
    version bigint NOT NULL, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL);
INSERT INTO $1 SELECT * FROM $1_fdw;
VACUUM ANALYZE $1;
SELECT edgesync.federate('$1', 'hospital');
SELECT edgesync_cloud.federate('$1', 'hospital', view_name => '$1_cloudsql');
SQL
}
{
	echo 'CREATE EXTENSION edgesync;'
	hospital_table hospital_patients "$ROWS"
	hospital_table memory_patients "$MEMORY_ROWS"
} | cluster_psql hospital -d postgres -q >/dev/null
cluster_psql cloud -d postgres -q >/dev/null <<SQL
CREATE EXTENSION edgesync;
CREATE EXTENSION postgres_fdw;
CREATE EXTENSION dblink;
CREATE SERVER hospital FOREIGN DATA WRAPPER postgres_fdw
  OPTIONS (host '127.0.0.1', port '$hospital_PORT', dbname 'postgres');
CREATE USER MAPPING FOR CURRENT_USER SERVER hospital;
SQL
cluster_psql cloud -d postgres -q -v ON_ERROR_STOP=1 -f sql/cloud/federate.sql >/dev/null
{
	cloud_table hospital_patients
	cloud_table memory_patients
} | cluster_psql cloud -d postgres -q >/dev/null

results=$CLUSTER_ROOT/results
: >"$results"
# Per variant: the relation read, its one-patient query, and settings.
declare -A relation=([replica]=hospital_patients [postgres_fdw]=hospital_patients_fdw
	[federated]=hospital_patients_federated [in_memory]=hospital_patients_federated
	[cloud_sql]=hospital_patients_cloudsql)
declare -A lookup=([replica]='SELECT * FROM hospital_patients WHERE id = :id'
	[postgres_fdw]='SELECT * FROM hospital_patients_fdw WHERE id = :id'
	[federated]='SELECT * FROM hospital_patients_federated WHERE id = :id'
	[cloud_sql]='SELECT * FROM hospital_patients_cloudsql_get(:id)')
declare -A settings=([in_memory]='SET edgesync.federate_streaming = off;')

one_patient() { # variant, label
	local script=$CLUSTER_ROOT/$1.sql
	printf '\\set id random(1, %d)\n%s;\n' "$ROWS" "${lookup[$1]}" | as_cluster_user tee "$script" >/dev/null
	as_cluster_user "$PG_BINDIR/pgbench" -n -M prepared -h "$CLUSTER_ROOT" -p "$cloud_PORT" -U postgres \
		-T "$PGBENCH_SECONDS" -f "$script" postgres 2>/dev/null |
		sed -nE "s/^latency average = ([0-9.]+) ms/$2 \1/p" >>"$results"
}
timed() { # label, SQL: records the milliseconds psql's \timing reports
	cluster_psql cloud -d postgres -At -c '\timing on' -c "$2" 2>/dev/null |
		sed -nE "s/^Time: ([0-9.]+) ms.*/$1 \1/p" >>"$results"
}
all_rows() { # relation
	echo "SELECT sum(length(mrn || name || ward || born::text || updated_at::text)) FROM $1"
}

for ((r = 1; r <= REPEATS; r++)); do
	for v in replica postgres_fdw federated in_memory cloud_sql; do
		[ -n "${lookup[$v]:-}" ] && one_patient "$v" "$v|one patient (ms)"
		timed "$v|all rows, every column (ms)" "${settings[$v]:-} $(all_rows "${relation[$v]}")"
		[ "$v" != in_memory ] && timed "$v|count(*) (ms)" "SELECT count(*) FROM ${relation[$v]}"
	done
done

# Peak private memory of the cloud backend during one whole read (kB).
peak_memory() { # SQL
	local pidfile=$CLUSTER_ROOT/backend.pid pid base peak now
	as_cluster_user rm -f "$pidfile"
	printf 'SELECT pg_backend_pid() AS pid \\gset\n\\o %s\n\\qecho :pid\n\\o\nSELECT pg_sleep(0.3);\n%s;\n' \
		"$pidfile" "$1" | cluster_psql cloud -d postgres -At >/dev/null 2>&1 &
	local client=$!
	until [ -s "$pidfile" ]; do
		kill -0 "$client" 2>/dev/null || { echo 0; return; }
		sleep 0.01
	done
	pid=$(cat "$pidfile")
	base=$(awk '/^RssAnon/ { print $2 }' "/proc/$pid/status")
	peak=$base
	while kill -0 "$client" 2>/dev/null; do
		now=$(awk '/^RssAnon/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
		[ "${now:-0}" -gt "$peak" ] && peak=$now
		sleep 0.005
	done
	wait "$client" || true
	echo $((peak - base))
}
memory=$CLUSTER_ROOT/memory
: >"$memory"
for table in hospital_patients memory_patients; do
	for v in postgres_fdw federated in_memory cloud_sql; do
		rel=${relation[$v]/hospital_patients/$table}
		echo "$v|$table $(peak_memory "${settings[$v]:-} $(all_rows "$rel")")" >>"$memory"
	done
done

as_cluster_user "$PG_BINDIR/pg_ctl" -D "$CLUSTER_ROOT/hospital" -m fast -w stop >/dev/null
for ((r = 1; r <= REPEATS; r++)); do
	for v in federated cloud_sql; do
		one_patient "$v" "$v, hospital down|one patient (ms)"
		timed "$v, hospital down|all rows, every column (ms)" "$(all_rows "${relation[$v]}")"
	done
done

# The median of the times on standard input, two decimals ("—" for none).
median_ms() { median | awk '{ if ($1 == "nan") print "—"; else printf "%.2f", $1 }'; }
echo
echo "Federated views, $ROWS patients, medians of $REPEATS runs"
echo
echo "| query | replica | postgres_fdw | federated view | federated, in memory | cloud SQL (dblink) | federated, hospital down | cloud SQL, hospital down |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for q in "one patient (ms)" "all rows, every column (ms)" "count(*) (ms)"; do
	row="| $q"
	for v in replica postgres_fdw federated in_memory cloud_sql "federated, hospital down" "cloud_sql, hospital down"; do
		row+=" | $( (grep -F "$v|$q " "$results" || true) | awk '{print $NF}' | median_ms)"
	done
	echo "$row |"
done
echo
echo "Peak private memory of the cloud backend during a whole read (MB)"
echo
echo "| rows | postgres_fdw | federated view | federated, in memory | cloud SQL (dblink) |"
echo "| ---: | ---: | ---: | ---: | ---: |"
for table in hospital_patients memory_patients; do
	n=$ROWS
	[ "$table" = memory_patients ] && n=$MEMORY_ROWS
	row="| $n"
	for v in postgres_fdw federated in_memory cloud_sql; do
		row+=" | $(awk -v k="$v|$table" '$1 == k { printf "%.1f", $2 / 1024 }' "$memory")"
	done
	echo "$row |"
done
