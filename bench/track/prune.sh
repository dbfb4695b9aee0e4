#!/usr/bin/env bash
# prune() on a log that has been pruned before, side by side with the naive
# loop it replaced (each batch asks the whole table for "the next batch_size
# rows older than the cutoff").  Prints one table; exits 0.  Not a test.
#
#   bash bench/track/prune.sh        (as root or as any user; ~2 minutes)
#
# Environment: OLD_ROWS (100000) log rows to prune, NEW_ROWS (100000) log
# rows to keep, BATCH (100) log rows per commit, REPEATS (3).
#
# The log is built the way a year of pruning leaves it: NEW_ROWS rows of a
# first period are written, then the OLD_ROWS rows to prune now; the first
# period is deleted (as an earlier prune would) and VACUUMed, and the kept
# rows are then written into the pages that freed.  So the kept rows sit in
# front of the old ones, in block ranges whose BRIN summary still remembers
# the first period's times.  Each repeat copies that database twice
# (CREATE DATABASE ... TEMPLATE) and prunes one copy with each procedure.
# One row per change (the shape one-row transactions give the log).
set -euo pipefail
cd "$(dirname "$0")/../.."

OLD_ROWS=${OLD_ROWS:-100000}
NEW_ROWS=${NEW_ROWS:-100000}
BATCH=${BATCH:-100}
REPEATS=${REPEATS:-3}

source scripts/cluster.sh
source bench/lib.sh
cluster_setup
cluster_start prune
sql() { cluster_psql prune -At "$@"; }

sql -d postgres -c 'CREATE DATABASE prune_template' >/dev/null
sql -d prune_template -v old="$OLD_ROWS" -v new="$NEW_ROWS" >/dev/null <<'SQL'
\set ON_ERROR_STOP on
CREATE EXTENSION edgesync;
ALTER TABLE edgesync.sync_log_data SET (autovacuum_enabled = off);
CREATE FUNCTION log_rows(first bigint, n bigint, age interval) RETURNS void LANGUAGE sql AS $$
    INSERT INTO edgesync.sync_log_data
    SELECT g * 1000, 1000 + g, now() - age, 'pg_class'::regclass, 10,
           '{U}', ARRAY[1::bigint], ARRAY['{"id": ' || g || '}'], 'ward-tablet'
      FROM generate_series(first, first + n - 1) g
$$;
SELECT log_rows(1, :new, '400 days');                   -- the first period
SELECT log_rows(:new + 1, :old, '40 days');              -- to prune now
SELECT brin_summarize_new_values('edgesync.sync_log_data_xid_brin');
DELETE FROM edgesync.sync_log_data WHERE changed_at < now() - interval '300 days';
VACUUM edgesync.sync_log_data;
SELECT log_rows(:new + :old + 1, :new, '0 days');        -- kept, into the freed pages
VACUUM ANALYZE edgesync.sync_log_data;

-- The loop prune() used before it went range by range.
CREATE PROCEDURE naive_prune(older_than interval, batch_size integer, INOUT deleted bigint DEFAULT 0)
LANGUAGE plpgsql AS $$
DECLARE
    cutoff timestamptz := now() - older_than;
    n      bigint;
    top    bigint;
BEGIN
    LOOP
        WITH victims AS (
            SELECT d.ctid FROM edgesync.sync_log_data d WHERE d.changed_at < cutoff LIMIT batch_size
        ), gone AS (
            DELETE FROM edgesync.sync_log_data d USING victims v WHERE d.ctid = v.ctid
            RETURNING d.xid, cardinality(d.pks) AS changes
        )
        SELECT sum(g.changes), max(g.xid) INTO n, top FROM gone g;
        EXIT WHEN n IS NULL;
        UPDATE edgesync.sync_log_state SET pruned_xid = greatest(pruned_xid, top);
        deleted := deleted + n;
        COMMIT;
    END LOOP;
END
$$;
SQL
pages=$(sql -d prune_template -c "SELECT pg_relation_size('edgesync.sync_log_data') / 8192")
kept_in_front=$(sql -d prune_template -c \
	"SELECT count(*) FROM edgesync.sync_log_data WHERE changed_at > now() - interval '1 day'
	    AND ctid < (SELECT min(ctid) FROM edgesync.sync_log_data WHERE changed_at < now() - interval '30 days')")

results=$CLUSTER_ROOT/results
: >"$results"
run() { # variant procedure
	local db=prune_$1 out
	sql -d postgres -c "CREATE DATABASE $db TEMPLATE prune_template" >/dev/null
	out=$(sql -d "$db" <<-SQL
		\timing on
		CALL $2('30 days', $BATCH);
		\timing off
		SELECT 'left ' || count(*) FROM edgesync.sync_log_data;
	SQL
	)
	sql -d postgres -c "DROP DATABASE $db" >/dev/null
	awk -v v="$1" '/^Time: / { print v, "ms", $2 } /^left / { print v, "left", $2 } /^[0-9]+$/ { print v, "deleted", $1 }' \
		<<<"$out" >>"$results"
}

echo "prune benchmark: $OLD_ROWS rows to prune behind $NEW_ROWS kept ($kept_in_front in front of them), $pages pages, batch $BATCH" >&2
for ((r = 0; r < REPEATS; r++)); do
	if ((r % 2 == 0)); then order="naive edgesync"; else order="edgesync naive"; fi
	for v in $order; do
		if [ "$v" = naive ]; then run naive naive_prune; else run edgesync edgesync.prune; fi
		echo "  repeat $((r + 1)) $v: $(awk -v v="$v" '$1 == v && $2 == "ms" { x = $3 } END { print x }' "$results") ms" >&2
	done
done

median_of() { awk -v v="$1" -v m="$2" '$1 == v && $2 == m { print $3 }' "$results" | median; }
naive_ms=$(median_of naive ms)
printf '\nprune of %d log rows (%d kept, %d of them in front), batch_size %d; medians of %d repeats\n' \
	"$OLD_ROWS" "$NEW_ROWS" "$kept_in_front" "$BATCH" "$REPEATS"
printf '%-9s | %10s | %8s | %8s | %s\n' procedure 'ms' 'x naive' deleted 'rows left'
for v in naive edgesync; do
	ms=$(median_of "$v" ms)
	printf '%-9s | %10.0f | %8s | %8s | %s\n' "$v" "$ms" \
		"$(awk -v a="$ms" -v b="$naive_ms" 'BEGIN { printf "%.3f", a / b }')" \
		"$(median_of "$v" deleted)" "$(median_of "$v" left)"
done
