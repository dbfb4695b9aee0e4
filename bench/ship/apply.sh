#!/usr/bin/env bash
# bench/ship/apply.sh — what it costs a replica to execute the sql format, as
# the shipper sends it, against a native-like floor for the same rows.
#
# One throwaway cluster (scripts/cluster.sh, private install of edgesync).
# Database src gets the shipping benchmark's table and workload
# (bench/ship/run.sh: INSERTS inserts then as many updates, ROWS_PER_TXN rows
# per transaction) after a slot was created; the sql stream is read once
# (pg_logical_slot_peek_changes, format sql) into a file.  From it, batch
# bodies are built the shipper's way (src/ship/batch.cpp): each transaction's
# BEGIN;/COMMIT; stripped, TXNS_PER_BATCH transactions wrapped in one replica
# transaction, all of a batch sent as ONE simple query (psql's \; joins the
# statements into one request).  Each variant is applied REPEATS times, the
# variants interleaved, into a fresh database copied from a template (the
# extension, the table with its edgesync triggers).  Two figures per batch
# kind (the stream holds all the inserts, then all the updates): the
# backend's CPU time (/proc/self/schedstat read by the backend before and
# after each batch: what the apply costs, little disturbed by other jobs on a
# shared machine) and the wall time of the batches (psql \timing: server time
# plus the round trip, without psql's own lexing of the file).  Every variant
# that writes rows must leave the replica equal to the source (row checksum).
#
#   current   the stream as this build of the plugin writes it
#   before    the same rows in the format and with the apply_begin() of
#             commit c742f6a: upsert runs as SELECT * FROM ROWS FROM
#             (unnest(..), ..) AS v, apply_begin() in PL/pgSQL (a copy in
#             schema edgesync_bench of the template)
#   replay    current applied a second time on top of itself: every
#             transaction recognised by apply_begin() and skipped (what
#             parsing, planning and the array literals cost)
#   begin     only the SELECT edgesync.apply_begin(...) statements of current
#             (the per-transaction bookkeeping; no rows, no check)
#   begin-before  the same calls to the PL/pgSQL copy
#   floor     native-like: INSERT ... SELECT unnest(..) and UPDATE ... FROM
#             ROWS FROM (unnest(..)) of the same arrays, no guard, no ON
#             CONFLICT, no apply_begin, session_replication_role = replica
#             for the session
#   staged    the same batches applied set-based from binary rows: one
#             apply_begin() per batch, the batch's rows (each key's last
#             version, as the source has them after the batch) loaded with
#             COPY (FORMAT binary) into a temporary staging table, then one
#             version-guarded INSERT ... SELECT ... ON CONFLICT from it (the
#             rows come from a server-side file written beforehand, standing
#             in for COPY FROM STDIN: what a binary apply would cost the
#             replica, without the sql format's literals to parse)
#
# A benchmark prints a table; it is not a test and exits 0 whatever it finds.
#
# Usage: bench/ship/apply.sh
# Environment: INSERTS (50000), ROWS_PER_TXN (100), TXNS_PER_BATCH (250),
#              REPEATS (5),
#              VARIANTS ("before current replay begin begin-before floor"),
#              STREAM_OPTS (extra plugin options, e.g. "'batch-rows', '1000'").
set -euo pipefail
cd "$(dirname "$0")/../.."

INSERTS=${INSERTS:-50000}
ROWS_PER_TXN=${ROWS_PER_TXN:-100}
TXNS_PER_BATCH=${TXNS_PER_BATCH:-250}
REPEATS=${REPEATS:-5}
read -r -a variants <<<"${VARIANTS:-before current replay begin begin-before floor}"
if [ $# -gt 0 ]; then
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
fi

source scripts/cluster.sh
source bench/lib.sh
source bench/ship/workload.sh
cluster_setup

log() { printf '%s  %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
sq() { cluster_psql bench -v ON_ERROR_STOP=1 "$@"; }
work=$CLUSTER_ROOT/apply
mkdir -p "$work"
chmod 777 "$work"

log "starting a throwaway cluster"
cluster_start bench
sq -d postgres <<'SQL' >/dev/null
ALTER SYSTEM SET shared_buffers = '256MB';
ALTER SYSTEM SET max_wal_size = '8GB';
ALTER SYSTEM SET checkpoint_timeout = '30min';
CREATE DATABASE src;
SQL
as_cluster_user "$PG_BINDIR/pg_ctl" -D "$CLUSTER_ROOT/bench" -l "$CLUSTER_ROOT/bench.log" -w restart >/dev/null


log "workload: $INSERTS inserts, $INSERTS updates, $ROWS_PER_TXN rows per transaction"
sq -d src -c 'CREATE EXTENSION edgesync' -c "$SHIP_TABLE_DDL" -c "SELECT edgesync.track('bench_patients')" \
	-c "SELECT pg_create_logical_replication_slot('apply', 'edgesync')" >/dev/null
sq -d src -c "$(ship_workload_sql)" >/dev/null
want=$(sq -d src -At -c "$SHIP_CHECKSUM")

# The template of every replica: the extension and the tracked table
# (version and timestamps included, triggers on, as the replica has them),
# and for variant before the PL/pgSQL apply_begin() of commit c742f6a.
as_cluster_user "$PG_BINDIR/pg_dump" -h "$CLUSTER_ROOT" -p "$bench_PORT" -U postgres -d src \
	--schema-only -t bench_patients >"$work/ddl.sql"
sq -d postgres -c 'CREATE DATABASE replica_template' >/dev/null
sq -d replica_template -c 'CREATE EXTENSION edgesync' >/dev/null
sq -d replica_template -f "$work/ddl.sql" >/dev/null
sq -d replica_template <<'SQL' >/dev/null
CREATE SCHEMA edgesync_bench;
CREATE FUNCTION edgesync_bench.apply_begin(source text, commit_lsn pg_lsn) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    fresh boolean;
BEGIN
    IF $1 IS NULL OR $2 IS NULL THEN
        RAISE EXCEPTION 'edgesync.apply_begin() arguments must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    INSERT INTO edgesync.applied_lsn AS a (source, lsn) VALUES ($1, $2)
    ON CONFLICT (source) DO UPDATE SET lsn = EXCLUDED.lsn, applied_at = now()
        WHERE a.lsn < EXCLUDED.lsn
    RETURNING true INTO fresh;
    fresh := coalesce(fresh, false);
    PERFORM set_config('edgesync_internal.apply_skip', CASE WHEN fresh THEN 'off' ELSE 'on' END, true);
    PERFORM set_config('session_replication_role', 'replica', true);
    RETURN fresh;
END
$$;
SQL

log "reading the sql stream"
start=$(date +%s.%N)
sq -d src -At -c "SELECT data FROM pg_logical_slot_peek_changes('apply', NULL, NULL, 'format', 'sql'${STREAM_OPTS:+, $STREAM_OPTS})" \
	>"$work/stream.sql"
decode_s=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')
stream_bytes=$(wc -c <"$work/stream.sql")
stream_lines=$(wc -l <"$work/stream.sql")

# Batch bodies the shipper's way, one psql request each: every statement of a
# batch joined by \; so psql sends them as one simple query.  Before each
# batch, and at the end, the backend reports its CPU time so far
# ("cpu|<ns>"); "\echo batch <kind>" names the kind of the batch that
# follows.  A batch holds transactions of one kind (insert or update).
batches() { # variant -> psql script on stdout
	perl -e '
		use strict; use warnings;
		my ($variant, $per) = @ARGV[0, 1];
		my $cpu = "SELECT \x27cpu\x27, pg_catalog.split_part(pg_catalog.pg_read_file(\x27/proc/self/schedstat\x27), \x27 \x27, 1);\n";
		my (@batch, @txn, $txns, $kind, $txn_kind);
		sub flush {
			return unless @batch;
			print $cpu, "\\echo batch $kind\n";
			print "BEGIN \\;\n", map({ "$_ \\;\n" } @batch), "COMMIT;\n";
			@batch = (); $txns = 0;
		}
		# (The condition: edgesync.applying() of an installed edgesync, or
		# the plain-SQL one comparing the commit LSN with the guard setting.)
		my $run = qr/^INSERT INTO (\S+) AS target \(([^)]*)\)(?: OVERRIDING SYSTEM VALUE)? SELECT (pg_catalog\.unnest\(.*\)) WHERE (?:edgesync\.applying\(\)|\x27[^\x27]*\x27::pg_catalog\.pg_lsn OPERATOR\(pg_catalog\.>\) pg_catalog\.current_setting\(\x27edgesync_apply\.skip_through\x27\)::pg_catalog\.pg_lsn) ON CONFLICT \(([^)]*)\) DO UPDATE SET (.*) WHERE target\."version" OPERATOR\(pg_catalog\.<\) EXCLUDED\."version"$/;
		# floor: the upsert of a run without guard nor ON CONFLICT; an update
		# run as UPDATE ... FROM the same arrays.
		sub floor_stmt {
			my ($s, $k) = @_;
			$s =~ $run or die "unexpected statement: " . substr($s, 0, 200);
			my ($t, $cols, $arrays, $key, $set) = ($1, $2, $3, $4, $5);
			return "INSERT INTO $t ($cols) SELECT $arrays" if $k eq "insert";
			$set =~ s/EXCLUDED\./v./g;
			return "UPDATE $t AS target SET $set FROM ROWS FROM ($arrays) AS v($cols) WHERE target.$key = v.$key";
		}
		# before: the shape of commit c742f6a and its PL/pgSQL apply_begin().
		sub before_stmt {
			my ($s) = @_;
			$s =~ s/^SELECT edgesync\.apply_begin\(/SELECT edgesync_bench.apply_begin(/;
			$s =~ s/^(INSERT INTO \S+ AS target \([^)]*\)) SELECT (pg_catalog\.unnest\(.*\)) WHERE edgesync\.applying\(\) (ON CONFLICT .*)$/$1 SELECT * FROM ROWS FROM ($2) AS v WHERE edgesync.applying() $3/;
			return $s;
		}
		# A transaction is buffered whole: its kind is known from its rows.
		$txns = 0; $kind = "insert"; $txn_kind = "insert";
		while (my $line = <STDIN>) {
			chomp $line;
			next if $line eq "BEGIN;";
			if ($line eq "COMMIT;") {
				flush() if $txn_kind ne $kind;
				$kind = $txn_kind;
				push @batch, @txn;
				@txn = ();
				flush() if ++$txns >= $per;
				next;
			}
			$line =~ s{; /\* \d+ changes \*/$}{};
			$line =~ s/;$//;
			# begin: the guard (apply_begin() or the plain-SQL one); setup:
			# the setup of the session and table blocks (DO), which floor skips.
			my $k = $line =~ /^(?:SELECT edgesync\.apply_begin|WITH edgesync_guard AS \()/ ? "begin"
			      : $line =~ /^DO / ? "setup" : "row";
			$txn_kind = $line =~ /ward \d+\+/ ? "update" : "insert" if $k eq "row";
			if ($variant =~ /^begin/) {
				push @txn, $variant eq "begin" ? $line : before_stmt($line) if $k eq "begin";
			} elsif ($variant eq "floor") {
				push @txn, floor_stmt($line, $txn_kind) if $k eq "row";
			} elsif ($variant eq "before") {
				push @txn, before_stmt($line);
			} else {
				push @txn, $line;
			}
		}
		flush();
		print $cpu;
	' "$1" "$TXNS_PER_BATCH" <"$work/stream.sql"
}
# staged: per batch of TXNS_PER_BATCH source transactions, the rows it
# leaves (an insert batch: the rows as inserted, version 1; an update batch:
# as the source has them now) in a binary COPY file, and a script that
# applies each from a staging table.
staged() {
	local per=$((ROWS_PER_TXN * TXNS_PER_BATCH)) first kind n=0 set
	set=$(sq -d src -At -c "SELECT string_agg(format('%I = EXCLUDED.%I', attname, attname), ', ' ORDER BY attnum)
	                          FROM pg_attribute WHERE attrelid = 'bench_patients'::regclass AND attnum > 0
	                           AND NOT attisdropped AND attname <> 'id'")
	for kind in insert update; do
		for ((first = 1; first <= INSERTS; first += per)); do
			n=$((n + 1))
			if [ "$kind" = insert ]; then
				sq -d src -c "COPY (SELECT id, name, rtrim(ward, '+'), admitted, note, 1::bigint, created_at, created_at
				                      FROM bench_patients WHERE id BETWEEN $first AND $((first + per - 1)) ORDER BY id)
				                TO '$work/stage_$n.bin' (FORMAT binary)" >/dev/null
			else
				sq -d src -c "COPY (SELECT * FROM bench_patients WHERE id BETWEEN $first AND $((first + per - 1)) ORDER BY id)
				                TO '$work/stage_$n.bin' (FORMAT binary)" >/dev/null
			fi
			echo "SELECT 'cpu', pg_catalog.split_part(pg_catalog.pg_read_file('/proc/self/schedstat'), ' ', 1);"
			echo "\\echo batch $kind"
			echo "BEGIN \\; SELECT edgesync.apply_begin('staged', '0/$n') \\;"
			echo "CREATE TEMP TABLE IF NOT EXISTS stage (LIKE bench_patients) ON COMMIT DELETE ROWS \\;"
			echo "COPY stage FROM '$work/stage_$n.bin' (FORMAT binary) \\;"
			echo "INSERT INTO bench_patients AS target SELECT * FROM stage WHERE edgesync.applying()" \
				"ON CONFLICT (id) DO UPDATE SET $set WHERE target.version OPERATOR(pg_catalog.<) EXCLUDED.version \\;"
			echo "COMMIT;"
		done
	done
	echo "SELECT 'cpu', pg_catalog.split_part(pg_catalog.pg_read_file('/proc/self/schedstat'), ' ', 1);"
}
for v in "${variants[@]}" current; do
	case $v in
		replay) ;;
		staged) staged >"$work/$v.psql" ;;
		*) batches "$v" >"$work/$v.psql" ;;
	esac
done
chmod 644 "$work"/*.psql

# Applies one variant into a fresh database; prints "insert_wall update_wall
# insert_cpu update_cpu" in ms.
apply_once() { # variant repeat
	local v=$1 db=r_${1//-/_}_$2 file=$1.psql opts= got
	sq -d postgres -c "CREATE DATABASE $db TEMPLATE replica_template" >/dev/null
	[ "$v" = floor ] && opts="-c session_replication_role=replica"
	if [ "$v" = replay ]; then
		file=current.psql
		sq -d "$db" -f "$work/$file" >/dev/null
	fi
	sq -d "$db" -c 'CHECKPOINT' >/dev/null
	PGOPTIONS=$opts sq -d "$db" -At -c '\timing on' -f "$work/$file" >"$work/out" 2>&1 ||
		{ cat "$work/out" >&2; return 1; }
	case $v in begin*) ;; *)
		got=$(sq -d "$db" -At -c "$SHIP_CHECKSUM")
		[ "$got" = "$want" ] || log "variant $v: replica differs from the source ($got vs $want)" ;;
	esac
	awk '/^batch / {k = $2; next}
	     /^Time: / {if (k != "") {t[k] += $2; done = k}; k = ""; next}
	     /^cpu\|/ {split($0, a, "|"); if (last != "" && done != "") c[done] += (a[2] - last) / 1e6
	               last = a[2]; done = ""; next}
	     END {printf "%.1f %.1f %.1f %.1f\n", t["insert"], t["update"], c["insert"], c["update"]}' "$work/out"
	sq -d postgres -c "DROP DATABASE $db" >/dev/null
}

declare -A wi wu ci cu
loads=()
for r in $(seq "$REPEATS"); do
	loads+=("$(cut -d' ' -f1 /proc/loadavg)")
	for v in "${variants[@]}"; do
		log "repeat $r: $v"
		read -r a b c d < <(apply_once "$v" "$r")
		wi[$v]+="$a " wu[$v]+="$b " ci[$v]+="$c " cu[$v]+="$d "
	done
done
med() { for x in $1; do echo "$x"; done | median; }

echo "edgesync replica apply benchmark: $(nproc) cores, load average at each repeat: ${loads[*]}; now $(cut -d' ' -f1-3 /proc/loadavg)"
echo "stream: $stream_lines lines, $stream_bytes bytes, decoded in ${decode_s} s (one peek); $INSERTS inserts +" \
	"$INSERTS updates, $ROWS_PER_TXN rows per source transaction, $TXNS_PER_BATCH source transactions per" \
	"replica transaction; medians of $REPEATS; ms"
base=$(awk "BEGIN {print $(med "${ci[current]:-0}") + $(med "${cu[current]:-0}")}")
printf '| %-12s | %9s | %9s | %9s | %10s | %9s | %9s | %9s |\n' variant "cpu ins" "cpu upd" "cpu total" \
	"vs current" "wall ins" "wall upd" "wall total"
printf '| %-12s | %9s | %9s | %9s | %10s | %9s | %9s | %9s |\n' --- ---: ---: ---: ---: ---: ---: ---:
for v in "${variants[@]}"; do
	a=$(med "${ci[$v]}") b=$(med "${cu[$v]}") c=$(med "${wi[$v]}") d=$(med "${wu[$v]}")
	printf '| %-12s | %9.0f | %9.0f | %9.0f | %9.2fx | %9.0f | %9.0f | %9.0f |\n' "$v" "$a" "$b" \
		"$(awk "BEGIN {print $a + $b}")" "$(awk "BEGIN {print ($base > 0 ? ($a + $b) / $base : 0)}")" \
		"$c" "$d" "$(awk "BEGIN {print $c + $d}")"
done
