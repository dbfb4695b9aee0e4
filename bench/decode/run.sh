#!/usr/bin/env bash
# bench/decode/run.sh — the edgesync output plugin side by side with wal2json,
# test_decoding and pgoutput, all decoding the same WAL.
#
# A throwaway cluster (scripts/cluster.sh, as an unprivileged user) with a
# private install of edgesync (scripts/private-install.sh).  One slot per
# plugin is created before the workload, so every plugin decodes exactly the
# same WAL: INSERTS inserts, UPDATES updates and DELETES deletes on a
# patients-like tracked table, BATCH rows per transaction.  Each plugin is
# read REPEATS times, plugins interleaved within a repeat:
#
#   sql    pg_logical_slot_peek_changes(slot, END, ...) through the SQL
#          interface (peek_binary_changes for pgoutput): count and bytes;
#   recv   pg_recvlogical --start --endpos=END on a fresh copy of the slot
#          (pg_copy_logical_replication_slot), output piped into wc -c.
#
# It prints the medians: seconds, changes/s, output bytes per change, and
# ratios against wal2json (format-version 2 with include-xids, include-pk,
# include-lsn, include-timestamp).  Then the memory part: one transaction of
# each size in MEM_SIZES (bytes of WAL) decoded through pg_recvlogical while
# the walsender's /proc status is sampled; peak RssAnon and VmHWM must not
# grow with the size (the reorder buffer spills to disk past
# logical_decoding_work_mem).
#
# A benchmark prints a table; it is not a test and exits 0 whatever it finds.
#
# Usage: bench/decode/run.sh [--repeats N] [--mem-sizes "64MB 256MB"] [--no-speed] [--no-memory]
# Environment: INSERTS (200000), UPDATES (200000), DELETES (50000), BATCH (1000),
#              REPEATS (3), MEM_SIZES ("64MB 256MB 512MB"), MEM_PLUGINS
#              ("edgesync-json edgesync-sql wal2json"), WORK_MEM (logical_decoding_work_mem, 64MB),
#              PLUGINS (all: "edgesync-json edgesync-sql wal2json test_decoding pgoutput").
set -euo pipefail
cd "$(dirname "$0")/../.."

INSERTS=${INSERTS:-200000}
UPDATES=${UPDATES:-200000}
DELETES=${DELETES:-50000}
BATCH=${BATCH:-1000}
REPEATS=${REPEATS:-3}
MEM_SIZES=${MEM_SIZES:-64MB 256MB 512MB}
MEM_PLUGINS=${MEM_PLUGINS:-edgesync-json edgesync-sql wal2json}
WORK_MEM=${WORK_MEM:-64MB}
run_speed=1
run_memory=1
while [ $# -gt 0 ]; do
	case "$1" in
		--repeats) REPEATS=$2; shift 2 ;;
		--mem-sizes) MEM_SIZES=$2; shift 2 ;;
		--no-speed) run_speed=0; shift ;;
		--no-memory) run_memory=0; shift ;;
		*) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
	esac
done

# Clusters and a private install of edgesync (the system is left untouched).
source scripts/cluster.sh
source bench/lib.sh
cluster_setup

log() { printf '%s  %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
q() { PGOPTIONS="-c client_min_messages=warning" cluster_psql bench -d bench -At -v ON_ERROR_STOP=1 "$@"; }

# Every plugin under the name the tables use, with its options: SQL
# interface argument list, and pg_recvlogical -o list.
read -r -a plugins <<<"${PLUGINS:-edgesync-json edgesync-sql wal2json test_decoding pgoutput}"
declare -A plugin_lib=([edgesync-json]=edgesync [edgesync-sql]=edgesync [wal2json]=wal2json
	[test_decoding]=test_decoding [pgoutput]=pgoutput)
declare -A plugin_opts=(
	[edgesync-json]="format=json"
	[edgesync-sql]="format=sql"
	[wal2json]="format-version=2 include-xids=1 include-pk=1 include-lsn=1 include-timestamp=1"
	[test_decoding]="skip-empty-xacts=1"
	[pgoutput]="proto_version=1 publication_names=bench_pub"
)
# How many row changes one output row carries, per plugin (a sanity check:
# every plugin must report the same number).  The sql format writes a run of
# changes as one statement ending in /* N changes */.
declare -A plugin_change=(
	[edgesync-json]="(data ~ '\"op\":\"(insert|update|delete)\"')::int"
	[edgesync-sql]="CASE WHEN data ~ '/\\* [0-9]+ changes \\*/$' THEN substring(data from '/\\* ([0-9]+) changes \\*/$')::int WHEN data ~ '^(INSERT INTO|UPDATE|DELETE FROM) ' THEN 1 ELSE 0 END"
	[wal2json]="(data ~ '^\\{\"action\":\"[IUD]\"')::int"
	[test_decoding]="(data ~ '^table ')::int"
	[pgoutput]="(get_byte(data, 0) IN (73, 85, 68))::int"
)
sql_args() { # plugin -> ", 'k', 'v', ..." for the SQL interface
	local kv out=""
	for kv in ${plugin_opts[$1]}; do out+=", '${kv%%=*}', '${kv#*=}'"; done
	printf '%s' "$out"
}
recv_args() { # plugin -> -o k=v ...
	local kv
	for kv in ${plugin_opts[$1]}; do printf -- '-o\n%s\n' "$kv"; done
}
peek_fn() { [ "$1" = pgoutput ] && echo pg_logical_slot_peek_binary_changes || echo pg_logical_slot_peek_changes; }

log "starting a throwaway cluster"
cluster_start bench
cluster_psql bench -d postgres -v ON_ERROR_STOP=1 <<SQL >/dev/null
-- A list: one quoted string would be read as a single library name.
ALTER SYSTEM SET output_plugin_libraries = pgoutput, test_decoding, edgesync, wal2json;
ALTER SYSTEM SET logical_decoding_work_mem = '$WORK_MEM';
ALTER SYSTEM SET shared_buffers = '256MB';
ALTER SYSTEM SET max_wal_size = '16GB';
ALTER SYSTEM SET checkpoint_timeout = '30min';
ALTER SYSTEM SET work_mem = '256MB';
CREATE DATABASE bench;
SQL
as_cluster_user "$PG_BINDIR/pg_ctl" -D "$CLUSTER_ROOT/bench" -l "$CLUSTER_ROOT/bench.log" -w restart >/dev/null
q <<'SQL' >/dev/null
CREATE EXTENSION edgesync;
CREATE TABLE patients (
    id          bigint PRIMARY KEY,
    hospital_id int NOT NULL,
    mrn         text NOT NULL,
    name        text NOT NULL,
    birth_date  date,
    sex         char(1),
    ward        text,
    admitted_at timestamptz,
    weight_kg   numeric(5,1),
    notes       text
);
-- Versioned like every tracked table; no sync_log rows, so that every plugin
-- decodes the same changes (the others would also decode the log's table).
SELECT edgesync.track('patients', log_changes => false);
CREATE PUBLICATION bench_pub FOR TABLE patients;
SQL

machine() {
	printf '%s, %s cores, %s GB RAM; %s\n' \
		"$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)" "$(nproc)" \
		"$(awk '/MemTotal/ {printf "%.0f", $2 / 1048576}' /proc/meminfo)" \
		"$(q -c 'SELECT version()' | sed 's/ on .*//')"
}

speed() {
	local p
	log "creating one slot per plugin, then the workload"
	for p in "${plugins[@]}"; do
		q -c "SELECT pg_create_logical_replication_slot('t_${p//-/_}', '${plugin_lib[$p]}')" >/dev/null
	done
	q <<SQL >/dev/null
DO \$\$
BEGIN
    FOR b IN 0 .. ($INSERTS - 1) / $BATCH LOOP
        INSERT INTO patients (id, hospital_id, mrn, name, birth_date, sex, ward, admitted_at, weight_kg, notes)
        SELECT g, 1 + g % 7, 'MRN' || lpad(g::text, 9, '0'), 'Patient ' || md5(g::text),
               date '1940-01-01' + (g % 25000), CASE WHEN g % 2 = 0 THEN 'F' ELSE 'M' END,
               'ward ' || (g % 40), timestamptz '2026-01-01 00:00+00' + g * interval '1 minute',
               40 + (g % 800) / 10.0, 'allergies: none; ' || repeat(md5((g * 7)::text), 2)
          FROM generate_series(b * $BATCH + 1, least((b + 1) * $BATCH, $INSERTS)) g;
        COMMIT;
    END LOOP;
    FOR b IN 0 .. ($UPDATES - 1) / $BATCH LOOP
        UPDATE patients SET ward = 'ward ' || (id % 41), weight_kg = weight_kg + 0.5,
                            admitted_at = admitted_at + interval '1 day'
         WHERE id BETWEEN b * $BATCH + 1 AND least((b + 1) * $BATCH, $UPDATES);
        COMMIT;
    END LOOP;
    FOR b IN 0 .. ($DELETES - 1) / $BATCH LOOP
        DELETE FROM patients WHERE id BETWEEN b * $BATCH + 1 AND least((b + 1) * $BATCH, $DELETES);
        COMMIT;
    END LOOP;
END
\$\$;
SQL
	END_LSN=$(q -c 'SELECT pg_current_wal_insert_lsn()')
	local changes=$((INSERTS + UPDATES + DELETES))
	local wal
	wal=$(q -c "SELECT pg_wal_lsn_diff('$END_LSN', restart_lsn) FROM pg_replication_slots WHERE slot_name = 't_wal2json'")
	q -c 'CHECKPOINT' >/dev/null

	log "checking that every plugin sees $changes changes"
	local n counted="every plugin reported $changes changes"
	for p in "${plugins[@]}"; do
		n=$(q -c "SELECT coalesce(sum(${plugin_change[$p]}), 0) FROM $(peek_fn "$p")('t_${p//-/_}', '$END_LSN', NULL$(sql_args "$p"))")
		if [ "$n" != "$changes" ]; then
			log "WARNING: $p reports $n changes, not $changes"
			counted="WARNING: not every plugin reported $changes changes (see the log above)"
		fi
	done

	declare -A secs bytes
	local r out t b slot
	for r in $(seq 1 "$REPEATS"); do
		for p in "${plugins[@]}"; do
			log "repeat $r/$REPEATS: $p"
			# SQL interface: the server-side time of one peek (psql \timing).
			out=$(q -c '\timing on' -c "SELECT count(*), coalesce(sum(octet_length(data)), 0) FROM $(peek_fn "$p")('t_${p//-/_}', '$END_LSN', NULL$(sql_args "$p"))")
			b=$(echo "$out" | sed -n '1s/^[0-9]*|//p')
			t=$(echo "$out" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | awk '{print $1 / 1000}')
			secs[sql,$p]+="$t "
			bytes[sql,$p]=$b
			# pg_recvlogical: a fresh copy of the slot, everything up to END.
			slot="r_${p//-/_}"
			q -c "SELECT pg_copy_logical_replication_slot('t_${p//-/_}', '$slot')" >/dev/null
			local started ended
			started=$(date +%s.%N)
			b=$(as_cluster_user "$PG_BINDIR/pg_recvlogical" -h "$CLUSTER_ROOT" -p "$bench_PORT" -U postgres \
				-d bench -S "$slot" --start --endpos="$END_LSN" --no-loop -f - $(recv_args "$p") | wc -c)
			ended=$(date +%s.%N)
			q -c "SELECT pg_drop_replication_slot('$slot')" >/dev/null
			secs[recv,$p]+="$(echo "$started $ended" | awk '{print $2 - $1}') "
			bytes[recv,$p]=$b
		done
	done

	local w2j_sql w2j_recv w2j_bytes_sql w2j_bytes_recv
	w2j_sql=$(printf '%s\n' ${secs[sql,wal2json]} | median)
	w2j_recv=$(printf '%s\n' ${secs[recv,wal2json]} | median)
	echo
	echo "## Decoding speed: $changes changes ($INSERTS inserts, $UPDATES updates, $DELETES deletes," \
		"$BATCH rows per transaction), $(awk -v w="$wal" 'BEGIN {printf "%.0f", w / 1048576}') MB of WAL, median of $REPEATS"
	echo "$(machine); $counted"
	echo
	printf '| %-14s | %-14s | %8s | %10s | %12s | %16s | %16s |\n' plugin interface seconds changes/s bytes/change \
		"speed vs wal2json" "bytes vs wal2json"
	printf '| %-14s | %-14s | %8s | %10s | %12s | %16s | %16s |\n' --- --- ---: ---: ---: ---: ---:
	local iface m ref_t ref_b
	for iface in sql recv; do
		for p in "${plugins[@]}"; do
			m=$(printf '%s\n' ${secs[$iface,$p]} | median)
			ref_t=$([ "$iface" = sql ] && echo "$w2j_sql" || echo "$w2j_recv")
			ref_b=${bytes[$iface,wal2json]}
			awk -v p="$p" -v i="$([ "$iface" = sql ] && echo "SQL peek" || echo pg_recvlogical)" -v t="$m" \
				-v b="${bytes[$iface,$p]}" -v n="$changes" -v rt="$ref_t" -v rb="$ref_b" 'BEGIN {
				printf "| %-14s | %-14s | %8.2f | %10.0f | %12.1f | %15.2fx | %15.2fx |\n",
					p, i, t, n / t, b / n, rt / t, b / rb }'
		done
	done
	echo
	echo "(bytes: SQL interface = sum of octet_length(data); pg_recvlogical = bytes written, one newline per message)"
	for p in "${plugins[@]}"; do
		q -c "SELECT pg_drop_replication_slot('t_${p//-/_}')" >/dev/null
	done
	q -c 'TRUNCATE patients' -c 'CHECKPOINT' >/dev/null
}

# memory_one SIZE_BYTES ROWS PLUGIN: decode one transaction through
# pg_recvlogical while sampling the walsender; prints "seconds bytes rss_anon_kb hwm_kb".
memory_one() {
	local slot=$1 end=$2 p=$3
	local pid="" rss=0 hwm=0 v
	local fifo=$CLUSTER_ROOT/recv.$$.out
	local started ended
	started=$(date +%s.%N)
	as_cluster_user "$PG_BINDIR/pg_recvlogical" -h "$CLUSTER_ROOT" -p "$bench_PORT" -U postgres \
		-d bench -S "$slot" --start --endpos="$end" --no-loop -f - $(recv_args "$p") | wc -c >"$fifo" &
	local job=$!
	while kill -0 "$job" 2>/dev/null; do
		[ -z "$pid" ] && pid=$(q -c "SELECT active_pid FROM pg_replication_slots WHERE slot_name = '$slot'")
		if [ -n "$pid" ] && [ -r "/proc/$pid/status" ]; then
			v=$(awk '/^RssAnon:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
			[ -n "$v" ] && [ "$v" -gt "$rss" ] && rss=$v
			v=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
			[ -n "$v" ] && [ "$v" -gt "$hwm" ] && hwm=$v
		fi
		sleep 0.2
	done
	wait "$job" || true
	ended=$(date +%s.%N)
	echo "$(echo "$started $ended" | awk '{print $2 - $1}') $(cat "$fifo") $rss $hwm"
	rm -f "$fifo"
}

to_bytes() { numfmt --from=iec "${1%B}"; }

memory() {
	log "memory: calibrating WAL per row"
	q <<'SQL' >/dev/null
CREATE TABLE big (
    id bigint PRIMARY KEY, hospital_id int NOT NULL, mrn text NOT NULL, name text NOT NULL,
    ward text, notes text);
SELECT edgesync.track('big', log_changes => false);
SQL
	local insert="INSERT INTO big (id, hospital_id, mrn, name, ward, notes)
        SELECT g, 1 + g % 7, 'MRN' || g, 'Patient ' || md5(g::text), 'ward ' || (g % 40),
               repeat(md5(g::text), 12) FROM generate_series"
	local a b per_row
	a=$(q -c 'SELECT pg_current_wal_insert_lsn()')
	q -c "$insert(1, 20000) g" >/dev/null
	b=$(q -c 'SELECT pg_current_wal_insert_lsn()')
	per_row=$(q -c "SELECT pg_wal_lsn_diff('$b', '$a') / 20000")
	q -c 'TRUNCATE big' -c 'CHECKPOINT' >/dev/null

	local rows=() size p
	declare -A res
	for size in $MEM_SIZES; do
		local n
		n=$(awk -v s="$(to_bytes "$size")" -v r="$per_row" 'BEGIN {printf "%d", s / r}')
		for p in $MEM_PLUGINS; do
			q -c "SELECT pg_create_logical_replication_slot('m_${p//-/_}', '${plugin_lib[$p]}')" >/dev/null
		done
		log "memory: one transaction of $size of WAL ($n rows)"
		a=$(q -c 'SELECT pg_current_wal_insert_lsn()')
		q -c "$insert(1, $n) g" >/dev/null
		b=$(q -c 'SELECT pg_current_wal_insert_lsn()')
		local wal
		wal=$(q -c "SELECT pg_wal_lsn_diff('$b', '$a')")
		for p in $MEM_PLUGINS; do
			log "memory: $size through $p"
			res[$size,$p]="$(memory_one "m_${p//-/_}" "$b" "$p")"
			q -c "SELECT pg_drop_replication_slot('m_${p//-/_}')" >/dev/null
		done
		rows+=("$size $wal $n")
		q -c 'TRUNCATE big' -c 'CHECKPOINT' >/dev/null
	done
	echo
	echo "## Memory of the walsender decoding one transaction (pg_recvlogical; logical_decoding_work_mem = $WORK_MEM)"
	echo "$(machine)"
	echo
	printf '| %-14s | %8s | %9s | %8s | %10s | %14s | %10s |\n' plugin "WAL MB" rows seconds "output MB" "peak RssAnon MB" "VmHWM MB"
	printf '| %-14s | %8s | %9s | %8s | %10s | %14s | %10s |\n' --- ---: ---: ---: ---: ---: ---:
	local row
	for p in $MEM_PLUGINS; do
		for row in "${rows[@]}"; do
			set -- $row
			local r=(${res[$1,$p]})
			awk -v p="$p" -v w="$2" -v n="$3" -v t="${r[0]}" -v o="${r[1]}" -v a="${r[2]}" -v h="${r[3]}" 'BEGIN {
				printf "| %-14s | %8.0f | %9d | %8.1f | %10.0f | %14.1f | %10.1f |\n",
					p, w / 1048576, n, t, o / 1048576, a / 1024, h / 1024 }'
		done
	done
	echo
	echo "(RssAnon: the walsender's private memory, sampled every 0.2 s; VmHWM: its peak resident set, shared buffers it touched included)"
}

[ "$run_speed" = 1 ] && speed
[ "$run_memory" = 1 ] && memory
exit 0
