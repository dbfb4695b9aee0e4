#!/usr/bin/env bash
# bench/decode/profile.sh — where the decoding time goes: perf samples of the
# backend running one SQL-interface peek, for edgesync json and for wal2json
# (format-version 2 with include-xids, include-pk, include-lsn,
# include-timestamp), on the same WAL (ROWS inserts in transactions of 1000
# on the patients-like table of run.sh).  Prints, per plugin, the share of
# each shared object and the top symbols.  Needs perf (Debian: linux-perf)
# and the right to attach to the backend (run as root).  Not a test.
#
# Usage: bench/decode/profile.sh      Environment: ROWS (200000), TOP (15)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROWS=${ROWS:-200000}
TOP=${TOP:-15}
command -v perf >/dev/null || { echo "perf not found: apt-get install linux-perf" >&2; exit 1; }

# Clusters and a private install of edgesync (the system is left untouched).
source scripts/cluster.sh
cluster_setup
cluster_start prof
q() { PGOPTIONS="-c client_min_messages=warning" cluster_psql prof -d postgres -At -v ON_ERROR_STOP=1 "$@"; }

q <<SQL >/dev/null
ALTER SYSTEM SET output_plugin_libraries = pgoutput, test_decoding, edgesync, wal2json;
SELECT pg_reload_conf();
CREATE EXTENSION edgesync;
CREATE TABLE patients (
    id bigint PRIMARY KEY, hospital_id int NOT NULL, mrn text NOT NULL, name text NOT NULL,
    birth_date date, sex char(1), ward text, admitted_at timestamptz, weight_kg numeric(5,1), notes text);
SELECT edgesync.track('patients', log_changes => false);
SELECT pg_create_logical_replication_slot('edgesync_json', 'edgesync');
SELECT pg_create_logical_replication_slot('wal2json', 'wal2json');
DO \$\$
BEGIN
    FOR b IN 0 .. ($ROWS - 1) / 1000 LOOP
        INSERT INTO patients
        SELECT g, 1 + g % 7, 'MRN' || lpad(g::text, 9, '0'), 'Patient ' || md5(g::text),
               date '1940-01-01' + (g % 25000), 'F', 'ward ' || (g % 40),
               timestamptz '2026-01-01 00:00+00' + g * interval '1 minute', 40 + (g % 800) / 10.0,
               'allergies: none; ' || repeat(md5((g * 7)::text), 2)
          FROM generate_series(b * 1000 + 1, least((b + 1) * 1000, $ROWS)) g;
        COMMIT;
    END LOOP;
END
\$\$;
SQL
end=$(q -c 'SELECT pg_current_wal_insert_lsn()')
declare -A opts=(
	[edgesync_json]="'format', 'json'"
	[wal2json]="'format-version', '2', 'include-xids', '1', 'include-pk', '1', 'include-lsn', '1', 'include-timestamp', '1'"
)
for slot in edgesync_json wal2json; do
	peek="SELECT count(*) FROM pg_logical_slot_peek_changes('$slot', '$end', NULL, ${opts[$slot]});"
	q -c "$peek" >/dev/null # warm the caches
	# One session: its pid first, then the peek while perf samples it.
	coproc PSQL { as_cluster_user "$PG_BINDIR/psql" -X -At -h "$CLUSTER_ROOT" -p "$prof_PORT" -U postgres -d postgres; }
	echo 'SELECT pg_backend_pid();' >&"${PSQL[1]}"
	read -r pid <&"${PSQL[0]}"
	data=$CLUSTER_ROOT/perf.$slot.data
	perf record -F 999 -g -p "$pid" -o "$data" 2>/dev/null &
	perf_pid=$!
	sleep 1
	echo "$peek" >&"${PSQL[1]}"
	read -r n <&"${PSQL[0]}"
	kill -INT "$perf_pid"
	wait "$perf_pid" || true
	echo '\q' >&"${PSQL[1]}"
	wait "$PSQL_PID" 2>/dev/null || true
	echo
	echo "## $slot: one peek of $n rows (backend $pid)"
	echo "### by shared object"
	perf report -i "$data" --no-children --sort dso --stdio -g none 2>/dev/null | grep '%' | grep -v '^#' | head -6 || true
	echo "### top $TOP symbols"
	perf report -i "$data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null | grep '%' | grep -v '^#' |
		head -"$TOP" | sed 's/ *- *- *$//' || true # (head closes the pipe early)
done
exit 0
