#!/usr/bin/env bash
# bench/ship/fan_in.sh — many hospitals, one cloud (issue 12, point 5):
# changes/s applied into one cloud database from 1, 2 and 3 hospital
# clusters shipping at once, each its own postgresql:// target.
#
# Throwaway clusters (scripts/cluster.sh): "cloud" and "h1" .. "hN".  The
# cloud holds one table keyed by (hospital_id, id); each hospital tracks a
# table of the same shape holding only its own hospital_id.  For each count
# of sources, every hospital first writes its backlog (INSERTS inserts then as
# many updates, ROWS_PER_TXN rows per transaction, the workload of
# bench/ship/workload.sh with a hospital column), then all of them drain it
# at once (edgesync.ship(target, 1000000) in parallel), and the wall time
# from the first start to the last end gives the cloud's changes/s.  The
# cloud's rows of each hospital are then checked equal to that hospital's.
# Repeated REPEATS times per count; medians.
#
# All clusters share this machine's cores: the figure is what one cloud
# server takes in while the hospitals' decoding competes with it for CPU,
# a lower bound of what a cloud of its own would take.
#
# Usage: bench/ship/fan_in.sh
# Environment: SOURCES ("1 2 3"), INSERTS (20000 per hospital), ROWS_PER_TXN
#              (100), BATCH_CHANGES (1000), REPEATS (3).
set -euo pipefail
cd "$(dirname "$0")/../.."

SOURCES=${SOURCES:-1 2 3}
INSERTS=${INSERTS:-20000}
ROWS_PER_TXN=${ROWS_PER_TXN:-100}
BATCH_CHANGES=${BATCH_CHANGES:-1000}
REPEATS=${REPEATS:-3}

source scripts/cluster.sh
source bench/lib.sh
cluster_setup

max=0
for n in $SOURCES; do [ "$n" -gt "$max" ] && max=$n; done

TABLE_DDL="CREATE TABLE visits (hospital_id int NOT NULL, id bigint NOT NULL, name text NOT NULL,
                                ward text, admitted date, note text, PRIMARY KEY (hospital_id, id))"
checksum() { # hospital id
	echo "SELECT count(*) || ':' || md5(string_agg(t::text, ',' ORDER BY id)) FROM visits t WHERE hospital_id = $1"
}
workload() { # hospital id, first id
	cat <<SQL
DO \$\$
BEGIN
  FOR i IN 0 .. ($INSERTS - 1) / $ROWS_PER_TXN LOOP
    INSERT INTO visits (hospital_id, id, name, ward, admitted, note)
    SELECT $1, $2 + g, 'patient ' || g, 'ward ' || (g % 20), date '2026-01-01' + (g % 300), repeat('n', 60 + g % 40)
      FROM generate_series(i * $ROWS_PER_TXN + 1, least((i + 1) * $ROWS_PER_TXN, $INSERTS)) g;
    COMMIT;
  END LOOP;
  FOR i IN 0 .. ($INSERTS - 1) / $ROWS_PER_TXN LOOP
    UPDATE visits SET ward = ward || '+'
     WHERE id BETWEEN $2 + i * $ROWS_PER_TXN + 1 AND $2 + (i + 1) * $ROWS_PER_TXN;
    COMMIT;
  END LOOP;
END \$\$
SQL
}

cluster_start cloud
csql() { cluster_psql cloud -d postgres "$@"; }
csql -c 'CREATE EXTENSION edgesync' >/dev/null
for h in $(seq "$max"); do
	cluster_start "h$h"
	cluster_psql "h$h" -d postgres -c "ALTER SYSTEM SET logical_decoding_work_mem = '64MB'" \
		-c 'SELECT pg_reload_conf()' -c 'CREATE EXTENSION edgesync' -c "$TABLE_DDL" \
		-c "SELECT edgesync.track('visits')" >/dev/null
done
# The cloud's copy of the tracked table's definition (version and timestamps).
as_cluster_user "$PG_BINDIR/pg_dump" -h "$CLUSTER_ROOT" -p "$h1_PORT" -U postgres -d postgres \
	--schema-only -t visits >"$CLUSTER_ROOT/visits.sql"
csql -f "$CLUSTER_ROOT/visits.sql" >/dev/null
csql -c 'ALTER TABLE visits DISABLE TRIGGER USER' >/dev/null

echo "edgesync fan-in benchmark: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $INSERTS inserts and $INSERTS updates per hospital, $ROWS_PER_TXN rows per transaction"
declare -A rates
round=0
for r in $(seq "$REPEATS"); do
	for n in $SOURCES; do
		round=$((round + 1))
		base=$((round * INSERTS * 10))
		for h in $(seq "$n"); do
			cluster_psql "h$h" -d postgres -c "SELECT edgesync.add_target('cloud', 'postgresql://postgres@/postgres?host=$CLUSTER_ROOT&port=$cloud_PORT', batch_changes => $BATCH_CHANGES)" >/dev/null 2>&1
			cluster_psql "h$h" -d postgres -c "$(workload "$h" "$base")" >/dev/null
		done
		t0=$(date +%s.%N)
		pids=()
		for h in $(seq "$n"); do
			cluster_psql "h$h" -d postgres -At -c "SELECT edgesync.ship('cloud', 1000000)" >"$CLUSTER_ROOT/shipped.$h" &
			pids+=($!)
		done
		for p in "${pids[@]}"; do wait "$p"; done
		t1=$(date +%s.%N)
		ok=yes
		total=0
		for h in $(seq "$n"); do
			total=$((total + $(cat "$CLUSTER_ROOT/shipped.$h")))
			[ "$(cluster_psql "h$h" -d postgres -At -c "$(checksum "$h")")" = "$(csql -At -c "$(checksum "$h")")" ] || ok=NO
			cluster_psql "h$h" -d postgres -c "SELECT edgesync.drop_target('cloud')" >/dev/null
		done
		rate=$(awk -v c="$total" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", c / (b - a) }')
		echo "run $r, $n sources: $total changes in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s, $rate changes/s, cloud = hospitals: $ok (load $(cut -d' ' -f1 /proc/loadavg))"
		rates[$n]+="$rate "
	done
done

echo
echo "## Fan-in: changes/s into one cloud database, all sources draining at once (medians of $REPEATS)"
echo
echo "| sources | changes/s into the cloud (runs) | median | per source | vs 1 source |"
echo "| ---: | --- | ---: | ---: | ---: |"
one=
for n in $SOURCES; do
	m=$(printf '%s\n' ${rates[$n]} | median)
	[ -z "$one" ] && one=$m
	printf '| %d | %s | %.0f | %.0f | %.2fx |\n' "$n" "$(echo ${rates[$n]} | sed 's/ /, /g')" "$m" \
		"$(awk -v m="$m" -v n="$n" 'BEGIN { print m / n }')" "$(awk -v m="$m" -v o="$one" 'BEGIN { print m / o }')"
done
