#!/usr/bin/env bash
# Instructions per single-row UPDATE (or per row of a bulk INSERT/UPDATE),
# counted by valgrind --tool=callgrind in a single-user backend: unlike
# times, the counts do not move with whatever else the machine is running,
# so small differences between variants (bench/track/setup.sql) show.
#
#   bash bench/track/callgrind.sh [VARIANT...]      (default: bare full nolog floor floor2)
#
# A variant is a table of bench/track/setup.sql, optionally with one setting
# for its backend: full@edgesync.ship_wakeup=off runs variant full with the
# shipper's wake-up at commit switched off (the default run has it on).
#
# Environment: N (2000) transactions per variant; OP=update (default:
# UPDATE one random row by key, as pgbench does) or OP=insert (INSERT one
# new row).  Keeps the callgrind files in $KEEP (if set) for
# callgrind_annotate.  Prints Ir per transaction and the ratio to bare.
# shared_buffers is 1GB, so that every variant's table stays in it: counts
# are comparable between runs only with the same variants loaded.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-2000}
OP=${OP:-update}
ROWS=${ROWS:-200000}
variants=("$@")
[ ${#variants[@]} -eq 0 ] && variants=(bare full nolog floor floor2)
command -v valgrind >/dev/null || apt-get install -y -q --no-install-recommends valgrind >/dev/null

# Clusters and a private install of edgesync (the system is left untouched).
source scripts/cluster.sh
cluster_setup

cluster_start cg
cluster_psql cg -d postgres -c 'ALTER SYSTEM SET autovacuum = off' -c 'CREATE DATABASE bench' >/dev/null
cluster_psql cg -d bench -f bench/track/setup.sql >/dev/null
for v in $(printf '%s\n' "${variants[@]}" | sed 's/@.*//' | sort -u); do
	cluster_psql cg -d bench -c "INSERT INTO bench.patients_$v (id, hospital_id, mrn, first_name, last_name, birth_date, ward, notes)
		SELECT g, g % 20, 'MRN' || lpad(g::text, 9, '0'), 'First' || g % 997, 'Last' || g % 1009,
		       date '1930-01-01' + g % 30000, 'ward-' || g % 40, repeat('allergies: none; ', 1 + g % 4)
		  FROM generate_series(1, $ROWS) g" -c "VACUUM ANALYZE bench.patients_$v" >/dev/null
done
as_cluster_user "$PG_BINDIR/pg_ctl" -D "$CLUSTER_ROOT/cg" -m fast -w stop >/dev/null
CLUSTERS=() # stopped: the exit trap has only the directory to remove
# Every variant starts from this copy: a variant's table as loaded, whatever
# ran before it (two variants of one table would otherwise see each other's
# dead rows, or keys).
as_cluster_user cp -a "$CLUSTER_ROOT/cg" "$CLUSTER_ROOT/cg.loaded"

# A script of N single-row statements (prepared, as pgbench -M prepared).
script() { # table variant, count
	if [ "$OP" = insert ]; then
		echo "PREPARE s(bigint) AS INSERT INTO bench.patients_$1 (id, hospital_id, mrn, first_name, last_name, birth_date, ward, notes)
			VALUES (\$1, \$1 % 20, 'MRN' || \$1, 'First' || \$1 % 997, 'Last' || \$1 % 1009, date '1980-01-01', 'ward-1', 'allergies: none; ');" | tr -d '\n\t'
		echo
		[[ $1 == floor* ]] && echo "SET session_replication_role = replica;"
		awk -v n="$2" -v rows="$ROWS" 'BEGIN { for (i = 1; i <= n; i++) printf "EXECUTE s(%d);\n", rows + i }'
	else
		echo "PREPARE s(bigint) AS UPDATE bench.patients_$1 SET visits = visits + 1 WHERE id = \$1;"
		awk -v n="$2" -v rows="$ROWS" 'BEGIN { srand(1); for (i = 0; i < n; i++) printf "EXECUTE s(%d);\n", 1 + int(rand() * rows) }'
	fi
}
ir() { # variant, count: total instructions of a single-user backend running script
	local out=$CLUSTER_ROOT/callgrind.${1//[^a-z0-9_]/_}.$2 table=${1%%@*} opts=()
	rm -rf "$CLUSTER_ROOT/cg"
	as_cluster_user cp -a "$CLUSTER_ROOT/cg.loaded" "$CLUSTER_ROOT/cg"
	[[ $1 == *@* ]] && opts=(-c "${1#*@}")
	script "$table" "$2" >"$CLUSTER_ROOT/script.sql"
	chmod 644 "$CLUSTER_ROOT/script.sql"
	as_cluster_user valgrind --tool=callgrind --callgrind-out-file="$out" \
		"$PG_BINDIR/postgres" --single -D "$CLUSTER_ROOT/cg" -c shared_buffers=1GB "${opts[@]}" bench \
		<"$CLUSTER_ROOT/script.sql" >/dev/null 2>&1
	[ -n "${KEEP:-}" ] && { mkdir -p "$KEEP"; cp "$out" "$KEEP/"; }
	awk '/^summary:/ { print $2 }' "$out"
}
declare -A per_txn
for v in "${variants[@]}"; do
	base=$(ir "$v" 0)
	total=$(ir "$v" "$N")
	per_txn[$v]=$(((total - base) / N))
	echo "  $v: $((per_txn[$v])) Ir per transaction" >&2
done
echo "callgrind: instructions per single-row $OP transaction ($N)"
printf '%-32s %14s %7s\n' variant 'Ir per txn' 'x bare'
for v in "${variants[@]}"; do
	printf '%-32s %14d %7s\n' "$v" "${per_txn[$v]}" \
		"$(awk -v a="${per_txn[$v]}" -v b="${per_txn[bare]:-0}" 'BEGIN { if (b) printf "%.3f", a / b; else print "-" }')"
done
