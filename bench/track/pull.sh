#!/usr/bin/env bash
# Offline clients: pull() and push() against the plain SQL a hand-written
# sync server would run on the same rows, in one run.  Prints one table;
# exits 0.  Not a test.
#
#   bash bench/track/pull.sh        (as root or as any user; ~2 minutes)
#
# Environment: ROWS (100000) rows in the table, PAGE (1000) rows per page,
# CHANGED (50000) rows changed for the change pages, PUSHED (10000) rows
# pushed, BATCH (100) changes per push, REPEATS (5).  COUNT=1 times nothing:
# it runs the load and the change pages of pull() and of SELECT * once each
# and prints what does not move with the machine: the backend's minor page
# faults, then its instructions with the cluster restarted under valgrind
# --tool=callgrind (a few minutes).
#
# Each variant is a psql script of one statement per page (or per push),
# run by one psql whose output goes to /dev/null, timed from outside; the
# cursor (or the last key) goes from page to page through a temporary table,
# the same way for every variant.  Variants of one measure run in turns,
# alternating their order between repeats; medians are printed.
#
#   load            pull() from a NULL cursor to the end of the table: per
#                   row its key (jsonb), the row (json), version, deleted and
#                   the cursor after it
#   load rxdb       rxdb_pull() likewise: each page one json document
#                   {"documents": [...], "checkpoint": {...}}
#   load SELECT *   SELECT * ... WHERE id > last ORDER BY id LIMIT PAGE: the
#                   columns as they are (the cheapest answer, not JSON)
#   load to_json    the same rows as JSON: SELECT row_to_json(t) ..., what
#                   pull() returns in "row"
#   load json_agg   the same page as one JSON array: SELECT json_agg(t) ...,
#                   what rxdb_pull() returns in "documents"
#   load count(*)   pull() as in "load", but the statement returns only the
#                   count of its rows: pull()'s own work, without sending
#   changes ...     the same five from a cursor taken before CHANGED rows were
#                   updated (every other row, transactions of 1000), to the
#                   end; the plain SQL looks up the same pages' keys through
#                   the primary key (JOIN unnest(keys), an index scan)
#   push            push() of BATCH updates, each based on the row's version
#   push rxdb       rxdb_push() of the same, as RxDB sends them
#   push UPDATE     BATCH statements UPDATE ... WHERE id = ? AND version = ?,
#                   one transaction per batch
set -euo pipefail
cd "$(dirname "$0")/../.."

ROWS=${ROWS:-100000}
PAGE=${PAGE:-1000}
CHANGED=${CHANGED:-50000}
PUSHED=${PUSHED:-10000}
BATCH=${BATCH:-100}
REPEATS=${REPEATS:-5}

source scripts/cluster.sh
source bench/lib.sh
cluster_setup
cluster_start pull
sql() { cluster_psql pull -At -d bench "$@"; }

cluster_psql pull -d postgres -c 'CREATE DATABASE bench' >/dev/null
sql -v rows="$ROWS" >/dev/null <<'SQL'
\set ON_ERROR_STOP on
CREATE EXTENSION edgesync;
CREATE TABLE patients (id bigint PRIMARY KEY, hospital_id int NOT NULL, mrn text NOT NULL,
                       name text, ward text, admitted date);
INSERT INTO patients
SELECT g, 1 + g % 3, 'MRN-' || lpad(g::text, 8, '0'), 'patient ' || g, 'A', date '2026-01-01' + g % 300
  FROM generate_series(1, :rows) g;
SELECT edgesync.track('patients');
VACUUM ANALYZE patients;
-- An RxDB client reads the checkpoint out of the page it parses; here it is
-- cut from the end of the page's text, without parsing the documents.
CREATE FUNCTION checkpoint_of(page json) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT (regexp_match(right(page::text, 4000), '"checkpoint":(\{.*\})\}$'))[1]::jsonb
$$;
SQL

dir=$CLUSTER_ROOT/scripts
mkdir -p "$dir"
pages=$(((ROWS + PAGE - 1) / PAGE + 1))
change_pages=$(((CHANGED + PAGE - 1) / PAGE + 1))

# pull() and rxdb_pull() scripts, from a NULL cursor or from :'cursor'.
pull_script() { # count, first cursor[, select list]
	echo "CREATE TEMP TABLE at (c text); INSERT INTO at VALUES ($2);"
	for ((i = 0; i < $1; i++)); do
		echo "WITH p AS (SELECT * FROM edgesync.pull('patients', (SELECT c FROM at), $PAGE) WITH ORDINALITY AS p),"
		echo "     s AS (UPDATE at SET c = coalesce((SELECT next_cursor FROM p ORDER BY ordinality DESC LIMIT 1), c))"
		echo "SELECT ${3:-pk, \"row\", version, deleted, next_cursor} FROM p;"
	done
}
rxdb_script() { # count, first checkpoint
	echo "CREATE TEMP TABLE at (c jsonb); INSERT INTO at VALUES ($2);"
	for ((i = 0; i < $1; i++)); do
		echo "WITH p AS (SELECT edgesync.rxdb_pull('patients', (SELECT c FROM at), $PAGE) AS page),"
		echo "     s AS (UPDATE at SET c = (SELECT checkpoint_of(page) FROM p))"
		echo "SELECT page FROM p;"
	done
}
pull_script "$pages" NULL >"$dir/load.sql"
pull_script "$pages" NULL 'count(*)' >"$dir/load_count.sql"
rxdb_script "$pages" NULL >"$dir/load_rxdb.sql"
pull_script "$change_pages" ":'cursor'" >"$dir/changes.sql"
rxdb_script "$change_pages" "jsonb_build_object('cursor', :'cursor')" >"$dir/changes_rxdb.sql"

# The plain SQL of the load: keyset paging, the last key in a temp table.
load_select() { # select list of the page p
	echo "CREATE TEMP TABLE at (last bigint); INSERT INTO at VALUES (0);"
	for ((i = 0; i < pages; i++)); do
		echo "WITH p AS (SELECT * FROM patients WHERE id > (SELECT last FROM at) ORDER BY id LIMIT $PAGE),"
		echo "     s AS (UPDATE at SET last = coalesce((SELECT max(id) FROM p), last))"
		echo "SELECT $1 FROM p;"
	done
}
load_select '*' >"$dir/load_select.sql"
load_select 'row_to_json(p)' >"$dir/load_to_json.sql"
load_select 'json_agg(p ORDER BY id)' >"$dir/load_json_agg.sql"

# The plain SQL of the change pages: the same pages' keys, through the index.
changes_select() { # select list of the rows t
	for ((first = 2; first <= 2 * CHANGED; first += 2 * PAGE)); do
		last=$((first + 2 * PAGE - 2))
		((last > 2 * CHANGED)) && last=$((2 * CHANGED))
		echo "SELECT $1 FROM unnest('{$(seq -s, "$first" 2 "$last")}'::bigint[]) AS k(id) JOIN patients t USING (id);"
	done
}
changes_select 't.*' >"$dir/changes_select.sql"
changes_select 'row_to_json(t)' >"$dir/changes_to_json.sql"
changes_select 'json_agg(t ORDER BY id)' >"$dir/changes_json_agg.sql"

# Pushes: BATCH updates per call, each based on version 1 (reset before each run).
{
	for ((first = 1; first <= PUSHED; first += BATCH)); do
		printf "SELECT count(*) FROM edgesync.push('patients', '["
		for ((id = first; id < first + BATCH && id <= PUSHED; id++)); do
			((id > first)) && printf ','
			printf '{"op":"update","row":{"id":%d,"ward":"W"},"version":1}' "$id"
		done
		printf "]') WHERE status = 'applied';\n"
	done
} >"$dir/push.sql"
{
	for ((first = 1; first <= PUSHED; first += BATCH)); do
		printf "SELECT jsonb_array_length(edgesync.rxdb_push('patients', '["
		for ((id = first; id < first + BATCH && id <= PUSHED; id++)); do
			((id > first)) && printf ','
			printf '{"newDocumentState":{"id":%d,"hospital_id":%d,"ward":"W","_deleted":false},' "$id" $((1 + id % 3))
			printf '"assumedMasterState":{"id":%d,"hospital_id":%d,"ward":"A","version":1,"_deleted":false}}' "$id" $((1 + id % 3))
		done
		printf "]'));\n"
	done
} >"$dir/push_rxdb.sql"
{
	for ((first = 1; first <= PUSHED; first += BATCH)); do
		echo "BEGIN;"
		for ((id = first; id < first + BATCH && id <= PUSHED; id++)); do
			echo "UPDATE patients SET ward = 'W' WHERE id = $id AND version = 1;"
		done
		echo "COMMIT;"
	done
} >"$dir/push_update.sql"
chmod -R a+r "$dir"

# CHANGED rows updated (every other row, transactions of 1000); cursor: from before them.
fresh_changes() {
	cursor=$(sql -c "SELECT edgesync.current_cursor('patients')")
	sql -v changed="$CHANGED" >/dev/null <<-'SQL'
		SET bench.changed = :changed;
		DO $$
		BEGIN
		    FOR b IN 0 .. (current_setting('bench.changed')::int - 1) / 1000 LOOP
		        UPDATE patients SET admitted = admitted + 1
		         WHERE id % 2 = 0 AND id BETWEEN b * 2000 + 1 AND (b + 1) * 2000;
		        COMMIT;
		    END LOOP;
		END
		$$;
	SQL
}

if [ "${COUNT:-0}" = 1 ]; then
	fresh_changes
	sql -c 'SELECT count(*) FROM patients' >/dev/null # hint bits set before any variant reads
	counted=(load load_select changes changes_select)
	# counted_run SCRIPT [psql args]: runs it in one session, prints the backend's pid first.
	counted_run() {
		local script=$1
		shift
		{ echo 'SELECT pg_backend_pid();'; cat "$dir/$script.sql"; } |
			sql -q -v ON_ERROR_STOP=1 -v cursor="$cursor" "$@" >"$CLUSTER_ROOT/out"
		head -1 "$CLUSTER_ROOT/out"
	}
	printf '\noffline clients, counted: %d rows, pages of %d, %d changed rows; one run each\n' \
		"$ROWS" "$PAGE" "$CHANGED"
	printf '%-16s | %12s | %s\n' what 'page faults' 'instructions (M)'
	declare -A faults
	for v in "${counted[@]}"; do
		{ cat "$dir/$v.sql"; echo "\\o $CLUSTER_ROOT/faults"
		  echo "SELECT split_part(pg_read_file('/proc/self/stat'), ' ', 10);"; } |
			sql -q -v ON_ERROR_STOP=1 -v cursor="$cursor" >/dev/null
		faults[$v]=$(cat "$CLUSTER_ROOT/faults")
	done
	command -v valgrind >/dev/null || apt-get install -y -q --no-install-recommends valgrind >/dev/null
	as_cluster_user "$PG_BINDIR/pg_ctl" -D "$CLUSTER_ROOT/pull" -w stop >/dev/null
	as_cluster_user valgrind --tool=callgrind --trace-children=yes \
		--callgrind-out-file="$CLUSTER_ROOT/cg.%p" "$PG_BINDIR/postgres" -D "$CLUSTER_ROOT/pull" \
		>"$CLUSTER_ROOT/valgrind.log" 2>&1 &
	for ((i = 0; i < 300; i++)); do sql -c 'SELECT 1' >/dev/null 2>&1 && break; sleep 1; done
	for v in "${counted[@]}"; do
		pid=$(counted_run "$v")
		for ((i = 0; i < 120; i++)); do
			grep -qs '^totals:\|^summary:' "$CLUSTER_ROOT/cg.$pid" && break
			sleep 1
		done
		printf '%-16s | %12s | %s\n' "$v" "${faults[$v]}" \
			"$(awk '/^(totals|summary):/ { printf "%.1f", $2 / 1e6; exit }' "$CLUSTER_ROOT/cg.$pid")"
	done
	as_cluster_user "$PG_BINDIR/pg_ctl" -D "$CLUSTER_ROOT/pull" -w stop >/dev/null
	wait
	exit 0
fi

results=$CLUSTER_ROOT/results
: >"$results"
# timed NAME ROWS SCRIPT [psql args]: runs the script, records rows per second.
timed() {
	local name=$1 rows=$2 script=$3 start end
	shift 3
	start=$(date +%s.%N)
	sql -q -v ON_ERROR_STOP=1 "$@" -f "$script" >/dev/null
	end=$(date +%s.%N)
	awk -v n="$name" -v r="$rows" -v s="$start" -v e="$end" 'BEGIN { printf "%s\t%.1f\t%.1f\n", n, r / (e - s), (e - s) * 1000 }' >>"$results"
}
# in_turns ORDER...: the variants of one measure, reversed on odd repeats.
in_turns() {
	if ((r % 2 == 0)); then echo "$@"; else echo "$@" | tr ' ' '\n' | tac | tr '\n' ' '; fi
}
# The rows back as they were before pushes (no trigger, so no new versions or log rows).
reset_pushed() {
	sql -c "SET session_replication_role = replica; UPDATE patients SET ward = 'A', version = 1 WHERE id <= $PUSHED" >/dev/null
}

echo "pull benchmark: $ROWS rows, pages of $PAGE, $CHANGED changed, $PUSHED pushed in batches of $BATCH" >&2
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for ((r = 0; r < REPEATS; r++)); do
	# Load.
	for v in $(in_turns select pull to_json rxdb json_agg count); do
		case $v in
		pull) timed "load" "$ROWS" "$dir/load.sql" ;;
		rxdb) timed "load rxdb" "$ROWS" "$dir/load_rxdb.sql" ;;
		select) timed "load SELECT *" "$ROWS" "$dir/load_select.sql" ;;
		to_json) timed "load to_json" "$ROWS" "$dir/load_to_json.sql" ;;
		json_agg) timed "load json_agg" "$ROWS" "$dir/load_json_agg.sql" ;;
		count) timed "load count(*)" "$ROWS" "$dir/load_count.sql" ;;
		esac
	done
	# Changes: a fresh window of CHANGED updates each repeat.
	fresh_changes
	for v in $(in_turns select pull to_json rxdb json_agg); do
		case $v in
		pull) timed "changes" "$CHANGED" "$dir/changes.sql" -v cursor="$cursor" ;;
		rxdb) timed "changes rxdb" "$CHANGED" "$dir/changes_rxdb.sql" -v cursor="$cursor" ;;
		select) timed "changes SELECT *" "$CHANGED" "$dir/changes_select.sql" ;;
		to_json) timed "changes to_json" "$CHANGED" "$dir/changes_to_json.sql" ;;
		json_agg) timed "changes json_agg" "$CHANGED" "$dir/changes_json_agg.sql" ;;
		esac
	done
	# Pushes.
	for v in $(in_turns update push rxdb); do
		reset_pushed
		case $v in
		push) timed "push" "$PUSHED" "$dir/push.sql" ;;
		rxdb) timed "push rxdb" "$PUSHED" "$dir/push_rxdb.sql" ;;
		update) timed "push UPDATE" "$PUSHED" "$dir/push_update.sql" ;;
		esac
	done
	sql -c "VACUUM patients" >/dev/null
	echo "  repeat $((r + 1)) done" >&2
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# Checks: the variants did what they claim (one more run of each, counted).
loaded=$(sql -c "SELECT count(*) FROM edgesync.pull('patients', NULL, $((ROWS + 10)))")
loaded_rxdb=$(sql -c "SELECT json_array_length(edgesync.rxdb_pull('patients', NULL, $((ROWS + 10)))->'documents')")
pushed=$(reset_pushed; sql -f "$dir/push.sql" | awk '{ s += $1 } END { print s }')

median_of() { awk -F'\t' -v n="$1" -v c="$2" '$1 == n { print $c }' "$results" | median; }
ratio() { awk -v a="$(median_of "$1" 2)" -v b="$(median_of "$2" 2)" 'BEGIN { printf "%.2f", a / b }'; }
printf '\noffline clients: %d rows, pages of %d, %d changed rows, %d pushed in batches of %d; medians of %d repeats\n' \
	"$ROWS" "$PAGE" "$CHANGED" "$PUSHED" "$BATCH" "$REPEATS"
printf '(checks: one pull of the whole table returned %d rows, one rxdb_pull %d documents; one push run applied %d of %d)\n' \
	"$loaded" "$loaded_rxdb" "$pushed" "$PUSHED"
printf '%-17s | %9s | %7s | %-16s | %s\n' what 'rows/s' 'ms' '× same as JSON' '× SELECT * (or UPDATE)'
for line in "load:load to_json:load SELECT *" "load rxdb:load json_agg:load SELECT *" \
	"load SELECT *::load SELECT *" "load to_json::load SELECT *" "load json_agg::load SELECT *" \
	"load count(*)::load SELECT *" \
	"changes:changes to_json:changes SELECT *" "changes rxdb:changes json_agg:changes SELECT *" \
	"changes SELECT *::changes SELECT *" "changes to_json::changes SELECT *" \
	"changes json_agg::changes SELECT *" \
	"push::push UPDATE" "push rxdb::push UPDATE" "push UPDATE::push UPDATE"; do
	IFS=: read -r name json plain <<<"$line"
	printf '%-17s | %9.0f | %7.0f | %-16s | %s\n' "$name" "$(median_of "$name" 2)" "$(median_of "$name" 3)" \
		"$([ -n "$json" ] && ratio "$json" "$name" || echo '')" "$(ratio "$plain" "$name")"
done
