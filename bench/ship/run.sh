#!/usr/bin/env bash
# bench/ship/run.sh — the shipper (issue 5): throughput to a loopback HTTP
# receiver and to a loopback replica, against native logical replication on
# the same workload; commit-to-acknowledgement latency at a steady rate; and
# what a dead target costs hospital writes.
#
# Two throwaway clusters (scripts/cluster.sh): "hospital" and "cloud", with a
# private install of edgesync.  Parts:
#
#   throughput  Targets (HTTP to bench/ship/receiver.pl, postgresql:// to
#               database "edge" on the cloud, which has nothing of edgesync
#               installed: plain-SQL apply, binary runs; the same to
#               database "edge_text" with edgesync.ship_binary_runs off, the
#               runs as array literals) and a native subscription
#               (CREATE PUBLICATION / CREATE SUBSCRIPTION, disabled, into
#               database "native" on the cloud) are created first, so all
#               three read the same WAL: INSERTS inserts then as many updates
#               on a patients-like tracked table, ROWS_PER_TXN rows per
#               transaction.  Then each drains the backlog in turn:
#               edgesync.ship(target) for the two targets, ALTER SUBSCRIPTION
#               ... ENABLE and polling (every 50 ms) until the replica's
#               ordered row checksum equals the source's for native.
#               Replicas are checked equal to the source.
#   latency     The background workers ship to the HTTP receiver and to a
#               replica (database "lat" on the cloud) while pgbench inserts
#               RATE_CHANGES changes/s (10-row transactions) for
#               LATENCY_SECONDS; per change, the receiver's arrival time
#               minus commit_time, and the replica's apply time (a trigger)
#               minus the source transaction's start: p50, p99, max.  Every
#               setting at its default, with workers woken at commit
#               (edgesync.ship_wakeup on) and polling (off).
#   tps         pgbench (tpcb-like, scale 10, pgbench_accounts tracked)
#               PGBENCH_CLIENTS clients for PGBENCH_SECONDS, alternately with
#               no target and with a dead target (connection refused, worker
#               retrying, slot holding WAL), REPEATS times each; medians.
#
# A benchmark prints a table; it is not a test and exits 0 whatever it finds.
#
# Usage: bench/ship/run.sh [--no-throughput] [--no-latency] [--no-tps]
# Environment: INSERTS (50000), ROWS_PER_TXN (100), RATE_CHANGES (1000),
#              LATENCY_SECONDS (20), PGBENCH_SECONDS (15), PGBENCH_CLIENTS (2), REPEATS (3),
#              BATCH_CHANGES (target batch_changes, 1000),
#              WORK_MEM (the hospital's logical_decoding_work_mem, 64MB, PostgreSQL's default).
set -euo pipefail
cd "$(dirname "$0")/../.."

INSERTS=${INSERTS:-50000}
ROWS_PER_TXN=${ROWS_PER_TXN:-100}
RATE_CHANGES=${RATE_CHANGES:-1000}
LATENCY_SECONDS=${LATENCY_SECONDS:-20}
PGBENCH_SECONDS=${PGBENCH_SECONDS:-15}
PGBENCH_CLIENTS=${PGBENCH_CLIENTS:-2}
REPEATS=${REPEATS:-3}
BATCH_CHANGES=${BATCH_CHANGES:-1000}
WORK_MEM=${WORK_MEM:-64MB}
run_throughput=1
run_latency=1
run_tps=1
while [ $# -gt 0 ]; do
	case "$1" in
		--no-throughput) run_throughput=0; shift ;;
		--no-latency) run_latency=0; shift ;;
		--no-tps) run_tps=0; shift ;;
		*) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
	esac
done

source scripts/cluster.sh
source bench/lib.sh
source bench/ship/workload.sh
cluster_setup
receiver_pid=
stop_all() {
	[ -n "$receiver_pid" ] && kill "$receiver_pid" 2>/dev/null
	cluster_stop_all
}
trap stop_all EXIT

cluster_start hospital
cluster_start cloud
hsql() { cluster_psql hospital -d "$@"; }
csql() { cluster_psql cloud -d "$@"; }
# The test clusters' 64kB makes every transaction spill; measure with a real setting.
hsql postgres -c "ALTER SYSTEM SET logical_decoding_work_mem = '$WORK_MEM'" -c 'SELECT pg_reload_conf()' >/dev/null
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
calc() { awk "BEGIN { printf \"%.4f\", $1 }"; }

receiver_port=$(free_port)
start_receiver() { # FILE [stamp]
	perl bench/ship/receiver.pl "$receiver_port" "$@" >"$CLUSTER_ROOT/receiver.out" 2>&1 &
	receiver_pid=$!
	for _ in $(seq 50); do grep -q listening "$CLUSTER_ROOT/receiver.out" 2>/dev/null && break; sleep 0.1; done
}
stop_receiver() { kill "$receiver_pid" 2>/dev/null; wait "$receiver_pid" 2>/dev/null || true; receiver_pid=; }


echo "edgesync shipper benchmark: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), logical_decoding_work_mem $WORK_MEM"

if [ "$run_throughput" = 1 ]; then
	hsql postgres -c 'CREATE DATABASE bench'
	csql postgres -c 'CREATE DATABASE edge' -c 'CREATE DATABASE edge_text' -c 'CREATE DATABASE native'
	hsql bench -c 'CREATE EXTENSION edgesync' -c "$SHIP_TABLE_DDL" -c "SELECT edgesync.track('bench_patients')" >/dev/null
	# The replicas get the tracked table's definition (version and timestamps included).
	as_cluster_user "$PG_BINDIR/pg_dump" -h "$CLUSTER_ROOT" -p "$hospital_PORT" -U postgres -d bench \
		--schema-only -t bench_patients >"$CLUSTER_ROOT/ddl.sql"
	# The edgesync replica has nothing of edgesync: the table without the
	# hospital's triggers (their functions are not there), applied in plain SQL.
	grep -v 'TRIGGER' "$CLUSTER_ROOT/ddl.sql" >"$CLUSTER_ROOT/ddl_plain.sql"
	csql edge -v ON_ERROR_STOP=1 -f "$CLUSTER_ROOT/ddl_plain.sql" >/dev/null
	csql edge_text -v ON_ERROR_STOP=1 -f "$CLUSTER_ROOT/ddl_plain.sql" >/dev/null
	csql native -c 'CREATE EXTENSION edgesync' >/dev/null
	csql native -f "$CLUSTER_ROOT/ddl.sql" >/dev/null
	csql native -c 'ALTER TABLE bench_patients DISABLE TRIGGER USER' >/dev/null

	start_receiver "$CLUSTER_ROOT/http.ndjson"
	hsql bench -c "SELECT edgesync.add_target('http', 'http://127.0.0.1:$receiver_port/ingest', batch_changes => $BATCH_CHANGES)" \
		-c "SELECT edgesync.add_target('replica', 'postgresql://postgres@/edge?host=$CLUSTER_ROOT&port=$cloud_PORT', batch_changes => $BATCH_CHANGES)" \
		-c "SELECT edgesync.add_target('replica_text', 'postgresql://postgres@/edge_text?host=$CLUSTER_ROOT&port=$cloud_PORT', batch_changes => $BATCH_CHANGES)" \
		-c 'CREATE PUBLICATION bench_pub FOR TABLE bench_patients' >/dev/null
	csql native -c "CREATE SUBSCRIPTION bench_sub CONNECTION 'host=$CLUSTER_ROOT port=$hospital_PORT dbname=bench user=postgres'
	                PUBLICATION bench_pub WITH (copy_data = false, enabled = false)" >/dev/null

	hsql bench -c "$(ship_workload_sql)" >/dev/null
	changes=$((INSERTS * 2))
	source_sum=$(hsql bench -At -c "$SHIP_CHECKSUM")

	declare -A seconds hospital_cpu cloud_cpu
	for target in http replica replica_text; do
		binary=on
		[ "$target" = replica_text ] && binary=off
		h0=$(cluster_cpu_ms hospital) c0=$(cluster_cpu_ms cloud)
		t0=$(now)
		shipped=$(hsql bench -At -c "SET edgesync.ship_binary_runs = $binary" -c "SELECT edgesync.ship('$target', 1000000)" | tail -1)
		t1=$(now)
		seconds[$target]=$(elapsed "$t0" "$t1")
		hospital_cpu[$target]=$(($(cluster_cpu_ms hospital) - h0))
		cloud_cpu[$target]=$(($(cluster_cpu_ms cloud) - c0))
		echo "edgesync $target: $shipped changes in ${seconds[$target]} s"
	done
	[ "$(csql edge -At -c "$SHIP_CHECKSUM")" = "$source_sum" ] && replica_ok=yes || replica_ok=NO
	[ "$(csql edge_text -At -c "$SHIP_CHECKSUM")" = "$source_sum" ] && replica_text_ok=yes || replica_text_ok=NO
	[ "$(csql edge -At -c "SELECT count(*) FROM pg_extension WHERE extname = 'edgesync'")" = 0 ] ||
		replica_ok="$replica_ok (but edgesync is installed there)"
	http_lines=$(grep -c '"op":"\(insert\|update\)"' "$CLUSTER_ROOT/http.ndjson" || true)

	h0=$(cluster_cpu_ms hospital) c0=$(cluster_cpu_ms cloud)
	t0=$(now)
	csql native -c 'ALTER SUBSCRIPTION bench_sub ENABLE' >/dev/null
	# Done when the last transaction (an update of the highest ids) is there.
	while [ "$(csql native -At -c "SELECT count(*) FROM bench_patients WHERE id > $INSERTS - $ROWS_PER_TXN AND ward LIKE '%+'")" != "$ROWS_PER_TXN" ]; do
		sleep 0.05
	done
	t1=$(now)
	seconds[native]=$(elapsed "$t0" "$t1")
	hospital_cpu[native]=$(($(cluster_cpu_ms hospital) - h0))
	cloud_cpu[native]=$(($(cluster_cpu_ms cloud) - c0))
	[ "$(csql native -At -c "$SHIP_CHECKSUM")" = "$source_sum" ] && native_ok=yes || native_ok=NO
	echo "native logical replication: ${seconds[native]} s"
	stop_receiver

	echo
	echo "## Throughput: $changes changes ($INSERTS inserts, $INSERTS updates, $ROWS_PER_TXN rows per transaction), batch_changes $BATCH_CHANGES"
	echo
	echo "| path | seconds | changes/s | vs native | hospital CPU ms | cloud CPU ms | checked |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: | --- |"
	for p in http replica replica_text native; do
		s=${seconds[$p]}
		case $p in
			http) name="edgesync → HTTP receiver (NDJSON)"; check="$http_lines change lines received" ;;
			replica) name="edgesync → replica (postgresql://), binary runs"; check="replica = source: $replica_ok" ;;
			replica_text) name="edgesync → replica, text runs (ship_binary_runs off)"; check="replica = source: $replica_text_ok" ;;
			native) name="native logical replication (pgoutput, subscription)"; check="replica = source: $native_ok" ;;
		esac
		printf '| %s | %.2f | %.0f | %.2fx | %d | %d | %s |\n' "$name" "$s" "$(calc "$changes / $s")" \
			"$(calc "${seconds[native]} / $s")" "${hospital_cpu[$p]}" "${cloud_cpu[$p]}" "$check"
	done
	hsql bench -c "SELECT edgesync.drop_target(name) FROM edgesync.targets" >/dev/null
	csql native -c 'DROP SUBSCRIPTION bench_sub' >/dev/null
fi

if [ "$run_latency" = 1 ]; then
	hsql postgres -c 'CREATE DATABASE lat'
	csql postgres -c 'CREATE DATABASE lat'
	hsql lat -c 'CREATE EXTENSION edgesync' -c 'CREATE SEQUENCE ids' -c "$SHIP_TABLE_DDL" \
		-c "SELECT edgesync.track('bench_patients')" >/dev/null
	as_cluster_user "$PG_BINDIR/pg_dump" -h "$CLUSTER_ROOT" -p "$hospital_PORT" -U postgres -d lat \
		--schema-only -t bench_patients >"$CLUSTER_ROOT/lat_ddl.sql"
	grep -v 'TRIGGER' "$CLUSTER_ROOT/lat_ddl.sql" >"$CLUSTER_ROOT/lat_ddl_plain.sql"
	csql lat -v ON_ERROR_STOP=1 -f "$CLUSTER_ROOT/lat_ddl_plain.sql" >/dev/null
	# Per row applied on the replica: its apply time minus the source
	# transaction's start (updated_at; a 10-row insert commits well within a
	# millisecond of it).  ALWAYS: the shipper applies in replica mode.
	csql lat >/dev/null <<-'SQL'
		CREATE TABLE latency (id bigint, ms float8);
		CREATE FUNCTION record_latency() RETURNS trigger LANGUAGE plpgsql SET search_path = public AS $$
		BEGIN
			INSERT INTO latency VALUES (NEW.id, extract(epoch FROM clock_timestamp() - NEW.updated_at) * 1000);
			RETURN NULL;
		END $$;
		CREATE TRIGGER record_latency AFTER INSERT ON bench_patients FOR EACH ROW EXECUTE FUNCTION record_latency();
		ALTER TABLE bench_patients ENABLE ALWAYS TRIGGER record_latency;
	SQL
	cat >"$CLUSTER_ROOT/insert10.sql" <<-'SQL'
		INSERT INTO bench_patients (id, name, ward, note)
		SELECT nextval('ids'), 'p', 'w', repeat('n', 80) FROM generate_series(1, 10);
	SQL
	chmod 644 "$CLUSTER_ROOT/insert10.sql"
	echo
	echo "## Latency: commit to acknowledgement (HTTP) and to applied (replica) at $RATE_CHANGES changes/s (10-row transactions), ${LATENCY_SECONDS} s, every setting at its default"
	echo
	echo "| worker wakes | target | changes | p50 ms | p99 ms | max ms |"
	echo "| --- | --- | ---: | ---: | ---: | ---: |"
	for mode in commit poll; do
		rm -f "$CLUSTER_ROOT/lat.ndjson"
		csql lat -c 'TRUNCATE latency' >/dev/null
		start_receiver "$CLUSTER_ROOT/lat.ndjson" stamp
		wakeup=on
		[ "$mode" = poll ] && wakeup=off
		hsql lat -c "SELECT edgesync.add_target('lat_http', 'http://127.0.0.1:$receiver_port/ingest')" \
			-c "SELECT edgesync.add_target('lat_db', 'postgresql://postgres@/lat?host=$CLUSTER_ROOT&port=$cloud_PORT')" \
			-c "ALTER SYSTEM SET edgesync.ship_databases = 'lat'" \
			-c "ALTER SYSTEM SET edgesync.ship_wakeup = $wakeup" -c 'SELECT pg_reload_conf()' >/dev/null 2>&1
		sleep 2
		as_cluster_user "$PG_BINDIR/pgbench" -h "$CLUSTER_ROOT" -p "$hospital_PORT" -U postgres -n \
			-f "$CLUSTER_ROOT/insert10.sql" -R $((RATE_CHANGES / 10)) -T "$LATENCY_SECONDS" lat >/dev/null 2>&1
		sleep 2
		name="at commit (\`ship_wakeup\` on)"
		[ "$mode" = poll ] && name="by polling every \`ship_naptime\` (\`ship_wakeup\` off)"
		perl -MTime::Local=timegm -e '
			my ($arrived, @lat);
			while (<>) {
				if (/^#ARRIVED (\S+)/) { $arrived = $1; next }
				next unless /"op":"insert".*"commit_time":"(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)(\.\d+)?\+00:00"/;
				my $t = timegm($6, $5, $4, $3, $2 - 1, $1) + ($7 // 0);
				push @lat, ($arrived - $t) * 1000;
			}
			@lat = sort { $a <=> $b } @lat;
			my $q = sub { $lat[int($_[0] * $#lat)] };
			printf "HTTP | %d | %.1f | %.1f | %.1f |\n", scalar(@lat), $q->(0.5), $q->(0.99), $lat[-1];
		' "$CLUSTER_ROOT/lat.ndjson" | while read -r line; do printf '| %s | %s\n' "$name" "$line"; done
		csql lat -At -F ' ' -c "SELECT count(*), round(percentile_disc(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1),
		                               round(percentile_disc(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1),
		                               round(max(ms)::numeric, 1) FROM latency" |
			while read -r n p50 p99 top; do
				printf '| %s | replica | %d | %s | %s | %s |\n' "$name" "$n" "$p50" "$p99" "$top"
			done
		hsql lat -c "SELECT edgesync.drop_target('lat_http')" -c "SELECT edgesync.drop_target('lat_db')" \
			-c 'ALTER SYSTEM RESET edgesync.ship_databases' -c 'ALTER SYSTEM RESET edgesync.ship_wakeup' \
			-c 'SELECT pg_reload_conf()' >/dev/null
		stop_receiver
	done
fi

if [ "$run_tps" = 1 ]; then
	hsql postgres -c 'CREATE DATABASE tps'
	as_cluster_user "$PG_BINDIR/pgbench" -h "$CLUSTER_ROOT" -p "$hospital_PORT" -U postgres -i -q -s 10 tps >/dev/null 2>&1
	hsql tps -c 'CREATE EXTENSION edgesync' -c "SELECT edgesync.track('pgbench_accounts')" \
		-c "ALTER SYSTEM SET edgesync.ship_databases = 'tps'" -c 'SELECT pg_reload_conf()' >/dev/null
	declare -A runs
	for r in $(seq "$REPEATS"); do
		for variant in none dead; do
			if [ "$variant" = dead ]; then
				hsql tps -c "SELECT edgesync.add_target('dead', 'http://127.0.0.1:9/ingest')" >/dev/null
			fi
			hsql tps -c 'CHECKPOINT' >/dev/null
			tps=$(as_cluster_user "$PG_BINDIR/pgbench" -h "$CLUSTER_ROOT" -p "$hospital_PORT" -U postgres -n \
				-c "$PGBENCH_CLIENTS" -j "$PGBENCH_CLIENTS" -T "$PGBENCH_SECONDS" tps 2>/dev/null |
				sed -n 's/^tps = \([0-9.]*\).*/\1/p')
			runs[$variant]="${runs[$variant]:-} $tps"
			if [ "$variant" = dead ]; then
				held=$(hsql tps -At -c "SELECT pg_size_pretty(wal_held_bytes) || ', ' || consecutive_failures || ' failures'
				                          FROM edgesync.target_status WHERE name = 'dead'")
				hsql tps -c "SELECT edgesync.drop_target('dead')" >/dev/null
			fi
		done
	done
	none=$(printf '%s\n' ${runs[none]} | median)
	dead=$(printf '%s\n' ${runs[dead]} | median)
	echo
	echo "## Hospital writes with a dead target: pgbench tpcb-like, scale 10, pgbench_accounts tracked, $PGBENCH_CLIENTS clients, ${PGBENCH_SECONDS} s, median of $REPEATS"
	echo
	echo "| variant | TPS runs | median TPS | vs none |"
	echo "| --- | --- | ---: | ---: |"
	printf '| no target | %s | %.0f | 1.00x |\n' "${runs[none]# }" "$none"
	printf '| dead target (refused, worker retrying; held after a run: %s) | %s | %.0f | %.2fx |\n' \
		"$held" "${runs[dead]# }" "$dead" "$(calc "$dead / $none")"
fi
