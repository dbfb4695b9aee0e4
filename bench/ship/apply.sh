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
# extension, the table with its edgesync triggers): the figure is the
# server's time for the batches (psql \timing, so psql's own lexing of the
# file is left out), split into the insert batches and the update batches.
# Every variant must leave the replica equal to the source (row checksum).
#
#   current   the stream as the plugin writes it
#   replay    the same stream applied a second time on top of current: every
#             transaction recognised by apply_begin() and skipped (what
#             parsing, planning and the array literals cost)
#   begin     only the SELECT edgesync.apply_begin(...) statements (what the
#             per-transaction bookkeeping costs; rows not applied, no check)
#   floor     native-like: INSERT ... SELECT unnest and UPDATE ... FROM
#             unnest of the same arrays, no guard, no ON CONFLICT, no
#             apply_begin, session_replication_role = replica for the session
#
# A benchmark prints a table; it is not a test and exits 0 whatever it finds.
#
# Usage: bench/ship/apply.sh
# Environment: INSERTS (50000), ROWS_PER_TXN (100), TXNS_PER_BATCH (250),
#              REPEATS (5), VARIANTS ("current replay begin floor"),
#              STREAM_OPTS (extra plugin options, e.g. "'batch-rows', '1000'").
set -euo pipefail
cd "$(dirname "$0")/../.."

INSERTS=${INSERTS:-50000}
ROWS_PER_TXN=${ROWS_PER_TXN:-100}
TXNS_PER_BATCH=${TXNS_PER_BATCH:-250}
REPEATS=${REPEATS:-5}
read -r -a variants <<<"${VARIANTS:-current replay begin floor}"
if [ $# -gt 0 ]; then
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
fi

source scripts/cluster.sh
cluster_setup

log() { printf '%s  %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
sq() { cluster_psql bench -v ON_ERROR_STOP=1 "$@"; }
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
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

TABLE_DDL="CREATE TABLE bench_patients (id bigint PRIMARY KEY, name text NOT NULL, ward text,
                                        admitted date, note text)"
checksum="SELECT count(*) || ':' || md5(string_agg(t::text, ',' ORDER BY id)) FROM bench_patients t"

log "workload: $INSERTS inserts, $INSERTS updates, $ROWS_PER_TXN rows per transaction"
sq -d src -c 'CREATE EXTENSION edgesync' -c "$TABLE_DDL" -c "SELECT edgesync.track('bench_patients')" \
	-c "SELECT pg_create_logical_replication_slot('apply', 'edgesync')" >/dev/null
sq -d src -c "DO \$\$
	BEGIN
	  FOR i IN 0 .. ($INSERTS - 1) / $ROWS_PER_TXN LOOP
	    INSERT INTO bench_patients (id, name, ward, admitted, note)
	    SELECT g, 'patient ' || g, 'ward ' || (g % 20), date '2026-01-01' + (g % 300), repeat('n', 60 + g % 40)
	      FROM generate_series(i * $ROWS_PER_TXN + 1, least((i + 1) * $ROWS_PER_TXN, $INSERTS)) g;
	    COMMIT;
	  END LOOP;
	  FOR i IN 0 .. ($INSERTS - 1) / $ROWS_PER_TXN LOOP
	    UPDATE bench_patients SET ward = ward || '+'
	     WHERE id BETWEEN i * $ROWS_PER_TXN + 1 AND (i + 1) * $ROWS_PER_TXN;
	    COMMIT;
	  END LOOP;
	END \$\$" >/dev/null
want=$(sq -d src -At -c "$checksum")

# The template of every replica: the extension and the tracked table
# (version and timestamps included, triggers on, as the replica has them).
as_cluster_user "$PG_BINDIR/pg_dump" -h "$CLUSTER_ROOT" -p "$bench_PORT" -U postgres -d src \
	--schema-only -t bench_patients >"$work/ddl.sql"
sq -d postgres -c 'CREATE DATABASE replica_template' >/dev/null
sq -d replica_template -c 'CREATE EXTENSION edgesync' >/dev/null
sq -d replica_template -f "$work/ddl.sql" >/dev/null

log "reading the sql stream"
start=$(date +%s.%N)
sq -d src -At -c "SELECT data FROM pg_logical_slot_peek_changes('apply', NULL, NULL, 'format', 'sql'${STREAM_OPTS:+, $STREAM_OPTS})" \
	>"$work/stream.sql"
decode_s=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')
stream_bytes=$(wc -c <"$work/stream.sql")
stream_lines=$(wc -l <"$work/stream.sql")

# Batch bodies the shipper's way, one psql request each: every statement of a
# batch joined by \; so psql sends them as one simple query.  The header line
# of each batch names its kind (insert/update: the stream holds all the
# inserts, then all the updates).
batches() { # variant -> psql script on stdout
	perl -e '
		use strict; use warnings;
		my ($variant, $per) = @ARGV[0, 1];
		my (@batch, $txns, $kind);
		sub flush {
			return unless @batch;
			print "\\echo batch $kind\n";
			print "BEGIN \\;\n", map({ "$_ \\;\n" } @batch), "COMMIT;\n";
			@batch = (); $txns = 0;
		}
		# floor: the upsert of a run without guard nor ON CONFLICT; an update
		# run as UPDATE ... FROM the same arrays.
		sub floor_stmt {
			my ($s, $k) = @_;
			$s =~ /^INSERT INTO (\S+) AS target \(([^)]*)\) SELECT \* FROM ROWS FROM \((.*)\) AS v WHERE edgesync\.applying\(\) ON CONFLICT \(([^)]*)\) DO UPDATE SET (.*) WHERE target\."version" < EXCLUDED\."version"$/
				or die "unexpected statement: " . substr($s, 0, 200);
			my ($t, $cols, $arrays, $key, $set) = ($1, $2, $3, $4, $5);
			return "INSERT INTO $t ($cols) SELECT * FROM ROWS FROM ($arrays) AS v" if $k eq "insert";
			$set =~ s/EXCLUDED\./v./g;
			return "UPDATE $t AS target SET $set FROM ROWS FROM ($arrays) AS v($cols) WHERE target.$key = v.$key";
		}
		# A transaction is buffered whole: its kind (insert/update) is known
		# from its rows, and a batch holds transactions of one kind.
		my (@txn, $txn_kind);
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
			my $k = $line =~ /^SELECT edgesync\.apply_begin/ ? "begin" : "row";
			$txn_kind = $line =~ /ward \d+\+/ ? "update" : "insert" if $k eq "row";
			if ($variant eq "begin") { push @txn, $line if $k eq "begin"; next; }
			if ($variant eq "floor") { push @txn, floor_stmt($line, $txn_kind) if $k eq "row"; next; }
			push @txn, $line;
		}
		flush();
	' "$1" "$TXNS_PER_BATCH" <"$work/stream.sql"
}
for v in "${variants[@]}"; do
	case $v in
		replay) ;;
		*) batches "$v" >"$work/$v.psql" ;;
	esac
done
[ -e "$work/current.psql" ] || batches current >"$work/current.psql"
chmod 644 "$work"/*.psql

# Applies one variant into a fresh database; prints "insert_ms update_ms".
apply_once() { # variant repeat
	local v=$1 db=r_$1_$2 file=$v.psql opts=
	sq -d postgres -c "CREATE DATABASE $db TEMPLATE replica_template" >/dev/null
	[ "$v" = floor ] && opts="-c session_replication_role=replica"
	if [ "$v" = replay ]; then
		file=current.psql
		sq -d "$db" -f "$work/$file" >/dev/null
	fi
	sq -d "$db" -c 'CHECKPOINT' >/dev/null
	PGOPTIONS=$opts sq -d "$db" -c '\timing on' -f "$work/$file" >"$work/out" 2>&1 ||
		{ cat "$work/out" >&2; return 1; }
	if [ "$v" != begin ]; then
		got=$(sq -d "$db" -At -c "$checksum")
		[ "$got" = "$want" ] || log "variant $v: replica differs from the source ($got vs $want)"
	fi
	awk '/^batch / {k = $2} /^Time: / && k {t[k] += $2} /^Time: / {k = ""}
	     END {printf "%.1f %.1f\n", t["insert"], t["update"]}' "$work/out"
	sq -d postgres -c "DROP DATABASE $db" >/dev/null
}

declare -A ins upd
for r in $(seq "$REPEATS"); do
	for v in "${variants[@]}"; do
		log "repeat $r: $v"
		read -r i u < <(apply_once "$v" "$r")
		ins[$v]+="$i "
		upd[$v]+="$u "
	done
done

echo "edgesync replica apply benchmark: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "stream: $stream_lines lines, $stream_bytes bytes, decoded in ${decode_s} s (one peek);" \
	"$INSERTS inserts + $INSERTS updates, $ROWS_PER_TXN rows per source transaction," \
	"$TXNS_PER_BATCH transactions per replica transaction; medians of $REPEATS"
base=$(for x in ${ins[current]:-0}; do echo "$x"; done | median)
baseu=$(for x in ${upd[current]:-0}; do echo "$x"; done | median)
printf '| %-8s | %10s | %10s | %10s | %12s |\n' variant "insert ms" "update ms" "total ms" "vs current"
printf '| %-8s | %10s | %10s | %10s | %12s |\n' --- ---: ---: ---: ---:
for v in "${variants[@]}"; do
	i=$(for x in ${ins[$v]}; do echo "$x"; done | median)
	u=$(for x in ${upd[$v]}; do echo "$x"; done | median)
	printf '| %-8s | %10.0f | %10.0f | %10.0f | %11.2fx |\n' "$v" "$i" "$u" "$(awk "BEGIN {print $i + $u}")" \
		"$(awk "BEGIN {b = $base + $baseu; print (b > 0 ? ($i + $u) / b : 0)}")"
done
