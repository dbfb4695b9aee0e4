#!/usr/bin/env bash
# Tracking benchmark (issue 3, "Speed"): what versioning, time-stamping and
# change-logging cost, edgesync's C++ path side by side with a bare table,
# the hand-written PL/pgSQL equivalent and the floor of any BEFORE ROW
# trigger.  Prints one table; exits 0.  Not a test: it asserts nothing.
#
#   bash bench/track/run.sh            (as root or as any user; ~8 minutes)
#
# Environment: ROWS (200000), REPEATS (5), PGBENCH_SECONDS (10),
# PGBENCH_CLIENTS (2), VARIANTS ("bare full nolog plpgsql floor floor2"),
# STEPS ("bulk pgbench": the bulk statements, then pgbench; either alone
# leaves the other's columns as nan).
#
# One throwaway cluster (scripts/cluster.sh) from a private install
# (scripts/private-install.sh), stopped on exit.  Variants are described in
# bench/track/setup.sql.  Each repeat measures every variant, in an order
# rotated from repeat to repeat so that drift of a shared machine spreads
# over all of them:
#   insert   INSERT ... SELECT of ROWS rows into the emptied table (timed by
#            psql, commit included);
#   update   after VACUUM and CHECKPOINT, one UPDATE of every row;
#   pgbench  after VACUUM, PGBENCH_SECONDS of single-row UPDATEs by primary
#            key with PGBENCH_CLIENTS clients (-M prepared), TPS;
#   WAL      pg_current_wal_insert_lsn() before and after, per row changed
#            (per transaction for pgbench).  full_page_writes is off, so the
#            figures are the records' own sizes, not when checkpoints fell.
# The table shows medians; "x bare" is the variant's median over bare's;
# "ovh/plpgsql" is (variant - bare) / (plpgsql - bare) of the medians.
set -euo pipefail
cd "$(dirname "$0")/../.."

ROWS=${ROWS:-200000}
REPEATS=${REPEATS:-5}
PGBENCH_SECONDS=${PGBENCH_SECONDS:-10}
PGBENCH_CLIENTS=${PGBENCH_CLIENTS:-2}
[ "$PGBENCH_SECONDS" -ge 3 ] || { echo "PGBENCH_SECONDS must be at least 3" >&2; exit 2; }
read -r -a variants <<<"${VARIANTS:-bare full nolog plpgsql floor floor2}"
STEPS=" ${STEPS:-bulk pgbench} "

# Clusters and a private install of edgesync (the system is left untouched).
source scripts/cluster.sh
source bench/lib.sh
cluster_setup

cluster_start bench
cluster_psql bench -d postgres <<'SQL' >/dev/null
ALTER SYSTEM SET shared_buffers = '512MB';
ALTER SYSTEM SET max_wal_size = '8GB';
ALTER SYSTEM SET checkpoint_timeout = '1h';
ALTER SYSTEM SET full_page_writes = off;
ALTER SYSTEM SET autovacuum = off;
ALTER SYSTEM SET jit = off;
CREATE DATABASE bench;
SQL
as_cluster_user "$PG_BINDIR/pg_ctl" -D "$CLUSTER_ROOT/bench" -l "$CLUSTER_ROOT/bench.log" -w restart >/dev/null
cluster_psql bench -d bench -f bench/track/setup.sql >/dev/null

results=$CLUSTER_ROOT/results
: >"$results"
sql() { cluster_psql bench -d bench -At "$@"; }

# Rows of one patients table: $1 the variant, $2 the first id.
insert_sql() {
	printf "INSERT INTO bench.patients_%s (id, hospital_id, mrn, first_name, last_name, birth_date, ward, notes)
SELECT g, g %% 20, 'MRN' || lpad(g::text, 9, '0'), 'First' || g %% 997, 'Last' || g %% 1009,
       date '1930-01-01' + g %% 30000, 'ward-' || g %% 40,
       repeat('allergies: none; ', 1 + g %% 4)
  FROM generate_series(%d, %d) g;" "$1" "$2" "$(($2 + ROWS - 1))"
}

# Runs one timed statement ($2) on variant $1 and records "$1 $3 ms",
# "$1 $3_cpu ms" (the backend's CPU time, user + system, from
# log_statement_stats: what the statement cost, whatever else the machine
# was doing) and "$1 $3_wal bytes-per-row".
timed() {
	local variant=$1 statement=$2 metric=$3 pre='' post='' out
	if [[ $variant == floor* ]] && [ "$metric" = insert ]; then
		pre='SET session_replication_role = replica;'
		post='RESET session_replication_role;'
	fi
	out=$(sql 2>&1 <<-SQL
		CHECKPOINT;
		$pre
		SELECT pg_current_wal_insert_lsn() AS lsn0 \gset
		SET client_min_messages = log;
		SET log_statement_stats = on;
		\timing on
		$statement
		\timing off
		RESET log_statement_stats;
		RESET client_min_messages;
		$post
		SELECT 'wal ' || pg_wal_lsn_diff(pg_current_wal_insert_lsn(), :'lsn0') / $ROWS;
	SQL
	)
	awk -v v="$variant" -v m="$metric" '
		/^Time: / { print v, m, $2 }
		/ s user, .* s system/ && cpu == "" { cpu = ($2 + $5) * 1000 }
		/^wal / { print v, m "_wal", $2 }
		END { print v, m "_cpu", cpu }' <<<"$out" >>"$results"
}

reset() {
	sql <<-SQL >/dev/null
		TRUNCATE bench.patients_$1;
		TRUNCATE edgesync.sync_log_data, bench.plpgsql_log;
	SQL
}

bulk() {
	local v=$1
	reset "$v"
	timed "$v" "$(insert_sql "$v" 1)" insert
	sql -c "VACUUM (ANALYZE) bench.patients_$v" >/dev/null
	timed "$v" "UPDATE bench.patients_$v SET visits = visits + 1;" update
}

# Backend CPU time (ns) of the sessions named pgbench, read from /proc.
pgbench_cpu_ns() {
	local pid total=0
	for pid in $(sql -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgbench'"); do
		total=$((total + $(cut -d' ' -f1 "/proc/$pid/schedstat")))
	done
	echo "$total"
}

pgbench_run() {
	local v=$1 script out tps n lsn0 wal cpu0 cpu1 t0 t1
	script=$CLUSTER_ROOT/pgbench_$v.sql
	printf '\\set id random(1, %d)\nUPDATE bench.patients_%s SET visits = visits + 1 WHERE id = :id;\n' \
		"$ROWS" "$v" >"$script"
	chmod 644 "$script"
	sql -c "VACUUM bench.patients_$v" -c CHECKPOINT >/dev/null
	lsn0=$(sql -c 'SELECT pg_current_wal_insert_lsn()')
	as_cluster_user "$PG_BINDIR/pgbench" -h "$CLUSTER_ROOT" -p "$bench_PORT" -U postgres -n \
		-M prepared -c "$PGBENCH_CLIENTS" -j "$PGBENCH_CLIENTS" -T "$PGBENCH_SECONDS" -f "$script" bench \
		>"$CLUSTER_ROOT/pgbench.out" 2>&1 &
	# The backends' CPU time over the middle of the run, per transaction.
	sleep 1
	t0=$(date +%s%N) cpu0=$(pgbench_cpu_ns)
	sleep $((PGBENCH_SECONDS - 2))
	t1=$(date +%s%N) cpu1=$(pgbench_cpu_ns)
	wait $!
	out=$(cat "$CLUSTER_ROOT/pgbench.out")
	tps=$(awk '/^tps = / { print $3; exit }' <<<"$out")
	n=$(awk '/number of transactions actually processed/ { print $NF }' <<<"$out")
	wal=$(sql -c "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '$lsn0') / $n")
	echo "$v pgbench $tps" >>"$results"
	echo "$v pgbench_wal $wal" >>"$results"
	awk -v v="$v" -v c="$((cpu1 - cpu0))" -v t="$((t1 - t0))" -v tps="$tps" \
		'BEGIN { print v, "pgbench_cpu", c / 1000 / (tps * t / 1e9) }' >>"$results"
}

nvar=${#variants[@]}
# pgbench alone updates the rows a bulk step would have left.
if [[ $STEPS != *" bulk "* ]]; then
	for v in "${variants[@]}"; do
		reset "$v"
		sql -c "$(insert_sql "$v" 1)" -c "VACUUM (ANALYZE) bench.patients_$v" >/dev/null
	done
fi
echo "tracking benchmark: $ROWS rows, $REPEATS repeats, pgbench ${PGBENCH_SECONDS}s x $PGBENCH_CLIENTS clients" >&2
for ((r = 0; r < REPEATS; r++)); do
	[[ $STEPS == *" bulk "* ]] && for ((i = 0; i < nvar; i++)); do
		v=${variants[$(((i + r) % nvar))]}
		bulk "$v"
		echo "  repeat $((r + 1)) $v: $(awk -v v="$v" '$1 == v { x[$2] = $3 } END { printf "insert %s ms, update %s ms", x["insert"], x["update"] }' "$results")" >&2
	done
	[[ $STEPS == *" pgbench "* ]] && for ((i = 0; i < nvar; i++)); do
		v=${variants[$(((i + r) % nvar))]}
		pgbench_run "$v"
		echo "  repeat $((r + 1)) $v: pgbench $(awk -v v="$v" '$1 == v && $2 == "pgbench" { x = $3 } END { print x }' "$results") tps" >&2
	done
done

# Medians, then the table.
median_of() { awk -v v="$1" -v m="$2" '$1 == v && $2 == m { print $3 }' "$results" | median; }
declare -A med
for v in "${variants[@]}"; do
	for m in insert update pgbench insert_cpu update_cpu pgbench_cpu insert_wal update_wal pgbench_wal; do
		med[$v.$m]=$(median_of "$v" "$m")
	done
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == "nan" || a == "nan" || b == 0) print "-"; else printf "%.2f", a / b }'; }
overhead() { # variant bare plpgsql
	awk -v a="$1" -v b="$2" -v p="$3" 'BEGIN { if (a == "nan" || b == "nan" || p == "nan" || p == b) print "-"; else printf "%.2f", (a - b) / (p - b) }'
}
row() { # variant, then the metric suffix: "" (wall clock) or _cpu
	local v=$1 s=$2 pgb
	if [ -z "$s" ]; then
		pgb=$(printf '%8.0f %6s' "${med[$v.pgbench]}" "$(ratio "${med[$v.pgbench]}" "${med[bare.pgbench]}")")
	else # CPU per transaction; "x bare" as a throughput ratio, bare / variant
		pgb=$(printf '%8.1f %6s' "${med[$v.pgbench_cpu]}" "$(ratio "${med[bare.pgbench_cpu]}" "${med[$v.pgbench_cpu]}")")
	fi
	printf '%-8s | %9.0f %6s %6s | %9.0f %6s %6s | %s' "$v" \
		"${med[$v.insert$s]}" "$(ratio "${med[$v.insert$s]}" "${med[bare.insert$s]}")" \
		"$(overhead "${med[$v.insert$s]}" "${med[bare.insert$s]}" "${med[plpgsql.insert$s]:-nan}")" \
		"${med[$v.update$s]}" "$(ratio "${med[$v.update$s]}" "${med[bare.update$s]}")" \
		"$(overhead "${med[$v.update$s]}" "${med[bare.update$s]}" "${med[plpgsql.update$s]:-nan}")" "$pgb"
	if [ -n "$s" ]; then
		printf ' | %7.0f %7.0f %7.0f' "${med[$v.insert_wal]}" "${med[$v.update_wal]}" "${med[$v.pgbench_wal]}"
	fi
	echo
}
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
printf '\n%s; %s cores; PostgreSQL %s; %d rows; medians of %d repeats; pgbench %ss x %s clients\n' "$cpu" \
	"$(nproc)" "$(sql -c 'SHOW server_version')" "$ROWS" "$REPEATS" "$PGBENCH_SECONDS" "$PGBENCH_CLIENTS"
echo
echo "Wall clock (statement time as psql sees it, commit included; pgbench TPS):"
printf '%-8s | %9s %6s %6s | %9s %6s %6s | %8s %6s\n' variant 'insert ms' 'x bare' 'ovh/pl' \
	'update ms' 'x bare' 'ovh/pl' 'pgb tps' 'x bare'
for v in "${variants[@]}"; do row "$v" ""; done
echo
echo "Backend CPU time (user + system; pgbench: us per transaction, x bare = bare / variant):"
printf '%-8s | %9s %6s %6s | %9s %6s %6s | %8s %6s | %7s %7s %7s\n' variant 'insert ms' 'x bare' 'ovh/pl' \
	'update ms' 'x bare' 'ovh/pl' 'pgb us' 'x bare' 'WAL ins' 'WAL upd' 'WAL pgb'
for v in "${variants[@]}"; do row "$v" _cpu; done
echo
echo "ovh/pl: (variant - bare) / (plpgsql - bare).  WAL: bytes per row changed (per transaction for pgbench)."
