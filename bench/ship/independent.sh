#!/usr/bin/env bash
# bench/ship/independent.sh — targets on their own (issue 18): what another
# target of the same database costs a replica target, and what the shipper's
# processes cost.
#
# Two throwaway clusters (scripts/cluster.sh): "hospital" ships database
# "lat" with the background workers (edgesync.ship_databases = 'lat', every
# shipping setting at its default: naptime 200ms, retries 1 s doubling to
# 60 s, timeout_ms 30000), "cloud" is the replica.  Parts:
#
#   latency    pgbench writes RATE one-row transactions a second for RUN_SECONDS
#              (each row stamped with clock_timestamp() at its insert); a
#              trigger on the replica records, per row, clock_timestamp()
#              at its apply minus that stamp.  Per variant, the replica's
#              p50, p90 and max; REPEATS runs, the variants alternating,
#              medians (max: the largest).  The variants name the second
#              target of the database, an HTTP one added before the run and
#              dropped after it:
#                alone     none
#                hung      a receiver that accepts and never answers
#                slow      a receiver that answers 1.5 s after each request
#                refused   nothing listens on its port
#                failing   a receiver that answers 500 at once
#   processes  TARGETS targets (the replica and HTTP targets to a receiver
#              that answers), the workload shipped, then each edgesync
#              process's private memory (RssAnon) and proportional share
#              (Pss, shared buffers split among the processes touching them)
#              from /proc.
#
# A benchmark prints tables; it is not a test and exits 0 whatever it finds.
#
# Usage: bench/ship/independent.sh [--no-latency] [--no-processes]
# Environment: RATE (20), RUN_SECONDS (20), REPEATS (3), TARGETS (4),
#              VARIANTS ("alone hung slow refused failing").
set -euo pipefail
cd "$(dirname "$0")/../.."

RATE=${RATE:-20}
RUN_SECONDS=${RUN_SECONDS:-20}
REPEATS=${REPEATS:-3}
TARGETS=${TARGETS:-4}
VARIANTS=${VARIANTS:-alone hung slow refused failing}
run_latency=1
run_processes=1
while [ $# -gt 0 ]; do
	case "$1" in
		--no-latency) run_latency=0; shift ;;
		--no-processes) run_processes=0; shift ;;
		*) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
	esac
done

source scripts/cluster.sh
source bench/lib.sh
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

# Starts a receiver on a port of its choosing (receiver_port): other jobs on
# the machine take free ports too.
start_receiver() { # MODE (ok, hang, slow, fail)
	local mode=$1
	[ "$mode" = ok ] && mode=
	rm -f "$CLUSTER_ROOT/receiver.out"
	perl bench/ship/receiver.pl 0 "$CLUSTER_ROOT/received.ndjson" $mode \
		>"$CLUSTER_ROOT/receiver.out" 2>&1 &
	receiver_pid=$!
	for _ in $(seq 50); do grep -q listening "$CLUSTER_ROOT/receiver.out" 2>/dev/null && break; sleep 0.1; done
	receiver_port=$(sed -n 's/^listening on //p' "$CLUSTER_ROOT/receiver.out")
}
stop_receiver() {
	[ -n "$receiver_pid" ] || return 0
	kill "$receiver_pid" 2>/dev/null
	wait "$receiver_pid" 2>/dev/null || true
	receiver_pid=
}

TABLE="CREATE TABLE lat_rows (id bigint PRIMARY KEY, note text NOT NULL DEFAULT 'n',
                              written_at timestamptz NOT NULL DEFAULT clock_timestamp())"
hsql postgres -c 'CREATE DATABASE lat' >/dev/null
csql postgres -c 'CREATE DATABASE lat' >/dev/null
for side in hsql csql; do
	$side lat -c 'CREATE EXTENSION edgesync' -c "$TABLE" -c "SELECT edgesync.track('lat_rows')" >/dev/null
done
hsql lat -c 'CREATE SEQUENCE ids' >/dev/null
csql lat >/dev/null <<-'SQL'
	CREATE TABLE latency (id bigint, ms float8);
	CREATE FUNCTION record_latency() RETURNS trigger LANGUAGE plpgsql SET search_path = public AS $$
	BEGIN
		INSERT INTO latency VALUES (NEW.id, extract(epoch FROM clock_timestamp() - NEW.written_at) * 1000);
		RETURN NULL;
	END $$;
	CREATE TRIGGER record_latency AFTER INSERT ON lat_rows FOR EACH ROW EXECUTE FUNCTION record_latency();
	ALTER TABLE lat_rows ENABLE ALWAYS TRIGGER record_latency;
SQL
hsql lat -c "SELECT edgesync.add_target('replica', 'postgresql://postgres@/lat?host=$CLUSTER_ROOT&port=$cloud_PORT')" \
	-c "ALTER SYSTEM SET edgesync.ship_databases = 'lat'" -c 'SELECT pg_reload_conf()' >/dev/null 2>&1
echo "INSERT INTO lat_rows (id) VALUES (nextval('ids'));" >"$CLUSTER_ROOT/insert.sql"
chmod 644 "$CLUSTER_ROOT/insert.sql"

echo "edgesync shipper, targets on their own: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

# Adds the second target of a variant, after starting its receiver.
add_partner() {
	case $1 in
		hung) start_receiver hang ;;
		slow) start_receiver slow ;;
		failing) start_receiver fail ;;
		refused) receiver_port=$(free_port) ;;
	esac
	hsql lat -c "SELECT edgesync.add_target('partner', 'http://127.0.0.1:$receiver_port/ingest')" >/dev/null 2>&1
}

# Drops it (once its worker let go of its slot: an older build's worker
# may hold it for its timeout).
drop_partner() {
	hsql lat -c "SELECT edgesync.alter_target('partner', enabled => false)" >/dev/null 2>&1 || true
	for _ in $(seq 120); do
		hsql lat -c "SELECT edgesync.drop_target('partner')" >/dev/null 2>&1 && break
		sleep 0.5
	done
	stop_receiver
}

if [ "$run_latency" = 1 ]; then
	declare -A p50 p90 top state
	for r in $(seq "$REPEATS"); do
		for variant in $VARIANTS; do
			[ "$variant" = alone ] || add_partner "$variant"
			sleep 2
			first=$(hsql lat -At -c "SELECT nextval('ids') + 1")
			as_cluster_user "$PG_BINDIR/pgbench" -h "$CLUSTER_ROOT" -p "$hospital_PORT" -U postgres -n \
				-f "$CLUSTER_ROOT/insert.sql" -R "$RATE" -T "$RUN_SECONDS" lat >/dev/null 2>&1
			last=$(hsql lat -At -c "SELECT last_value FROM ids")
			for _ in $(seq 1200); do
				[ "$(csql lat -At -c "SELECT count(*) FROM latency WHERE id BETWEEN $first AND $last")" = \
					$((last - first + 1)) ] && break
				sleep 0.1
			done
			read -r a b c < <(csql lat -At -F ' ' -c "
				SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1),
				       round(percentile_cont(0.9) WITHIN GROUP (ORDER BY ms)::numeric, 1),
				       round(max(ms)::numeric, 1)
				  FROM latency WHERE id BETWEEN $first AND $last")
			p50[$variant]="${p50[$variant]:-} $a"
			p90[$variant]="${p90[$variant]:-} $b"
			top[$variant]="${top[$variant]:-} $c"
			if [ "$variant" != alone ]; then
				# (An older build has no state column: its failures tell.)
				state[$variant]=$(hsql lat -At -c "SELECT state || ', ' || consecutive_failures || ' failures'
				                                     FROM edgesync.target_status WHERE name = 'partner'" 2>/dev/null ||
					hsql lat -At -c "SELECT consecutive_failures || ' failures'
					                   FROM edgesync.target_status WHERE name = 'partner'")
				drop_partner
			fi
		done
	done
	echo
	echo "## Replica latency beside another target: $RATE one-row transactions/s for ${RUN_SECONDS} s, median of $REPEATS runs"
	echo
	echo "| the database's other target | replica p50 ms | p90 ms | max ms | other target at the end of a run |"
	echo "| --- | ---: | ---: | ---: | --- |"
	for variant in $VARIANTS; do
		case $variant in
			alone) name='none (the replica alone)' ;;
			hung) name='HTTP, accepts and never answers' ;;
			slow) name='HTTP, answers after 1.5 s' ;;
			refused) name='HTTP, connection refused' ;;
			failing) name='HTTP, answers 500' ;;
		esac
		printf '| %s | %s | %s | %s | %s |\n' "$name" \
			"$(printf '%s\n' ${p50[$variant]} | median)" "$(printf '%s\n' ${p90[$variant]} | median)" \
			"$(printf '%s\n' ${top[$variant]} | sort -g | tail -1)" "${state[$variant]:--}"
	done
fi

if [ "$run_processes" = 1 ]; then
	start_receiver ok
	for i in $(seq 2 "$TARGETS"); do
		hsql lat -c "SELECT edgesync.add_target('http_$i', 'http://127.0.0.1:$receiver_port/ingest')" >/dev/null 2>&1
	done
	sleep 2
	as_cluster_user "$PG_BINDIR/pgbench" -h "$CLUSTER_ROOT" -p "$hospital_PORT" -U postgres -n \
		-f "$CLUSTER_ROOT/insert.sql" -R "$RATE" -T 10 lat >/dev/null 2>&1
	hsql lat -c "SELECT pg_sleep(2)" >/dev/null
	echo
	echo "## The shipper's processes: $TARGETS targets (1 replica, $((TARGETS - 1)) HTTP) in one database, after 10 s of $RATE transactions/s"
	echo
	echo "| process (backend_type) | count | RssAnon kB, each (median) | Pss kB, each (median) |"
	echo "| --- | ---: | ---: | ---: |"
	hsql lat -At -F '|' -c "SELECT backend_type, string_agg(pid::text, ' ') FROM pg_stat_activity
	                         WHERE backend_type LIKE 'edgesync%' GROUP BY 1 ORDER BY 1" |
		while IFS='|' read -r kind pids; do
			rss=$(for p in $pids; do awk '/^RssAnon:/ { print $2 }' "/proc/$p/status"; done | median)
			pss=$(for p in $pids; do awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup"; done | median)
			printf '| %s | %d | %s | %s |\n' "$kind" "$(echo "$pids" | wc -w)" "$rss" "$pss"
		done
	stop_receiver
fi
