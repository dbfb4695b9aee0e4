# Demo chapter: a change arriving in a second, "cloud" cluster, carried by
# the stock pg_recvlogical in the output plugin's sql format and applied by
# psql (docs/replica.md).  Nothing of edgesync is installed on the cloud.
say "A second cluster: the cloud"
if [ -z "${cloud_PORT:-}" ]; then
	cluster_start cloud
	cluster_psql cloud -d postgres -c 'CREATE DATABASE cloud'
fi
echo "cloud: PostgreSQL on unix socket $CLUSTER_ROOT, port $cloud_PORT"
cloud_sql() { cluster_psql cloud -d cloud -e "$@"; }
# hospital_tool PROGRAM ARGS...: a client program against the hospital database.
hospital_tool() {
	local prog=$1; shift
	as_cluster_user "$PG_BINDIR/$prog" -h "$CLUSTER_ROOT" -p "$hospital_PORT" -U postgres -d hospital "$@"
}

say "1. On the hospital: the slot first, before anything is copied"
echo '$ pg_recvlogical -d hospital -S cloud --create-slot --plugin=edgesync'
hospital_tool pg_recvlogical -S cloud --create-slot --plugin=edgesync

say "2. On the cloud: nothing installed; the table as the stream would make it, and a copy of its rows (versions included)"
cloud_sql -c 'CREATE TABLE hospital_patients (id int PRIMARY KEY, hospital_id int NOT NULL, name text, ward text,
                                version bigint NOT NULL, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL)'
cols='id, hospital_id, name, ward, version, created_at, updated_at'
echo "\$ psql -d hospital -c '\\copy (SELECT $cols FROM hospital_patients) TO STDOUT' | psql -d cloud -c '\\copy hospital_patients ($cols) FROM pstdin'"
hospital_tool psql -X -q -c "\\copy (SELECT $cols FROM hospital_patients) TO STDOUT" |
	cluster_psql cloud -d cloud -c "\\copy hospital_patients ($cols) FROM pstdin"
cloud_sql -c 'SELECT id, name, ward, version FROM hospital_patients ORDER BY id'
cloud_sql -c "SELECT count(*) AS edgesync_objects FROM pg_extension WHERE extname = 'edgesync'"

say "3. Changes on the hospital"
hospital_sql <<'SQL'
UPDATE hospital_patients SET ward = 'Cardiology' WHERE id = 1;
INSERT INTO hospital_patients (id, hospital_id, name, ward) VALUES (30, 1, 'Chloé O''Neil', 'A');
SQL

say "4. pg_recvlogical -o format=sql | psql: the changes arrive in the cloud"
end=$(cluster_psql hospital -d hospital -At -c 'SELECT pg_current_wal_insert_lsn()')
echo "\$ pg_recvlogical -d hospital -S cloud --start -o format=sql -f - --endpos=$end | psql -d cloud"
hospital_tool pg_recvlogical -S cloud --start --no-loop --endpos="$end" -o format=sql -f - |
	as_cluster_user tee "$CLUSTER_ROOT/stream.sql" | cluster_psql cloud -d cloud -v ON_ERROR_STOP=1 >/dev/null
echo '-- what crossed the wire:'
cat "$CLUSTER_ROOT/stream.sql"
cloud_sql -c 'SELECT id, name, ward, version FROM hospital_patients ORDER BY id' \
	-c 'SELECT source, lsn FROM edgesync.applied_lsn'

say "The same stream applied again changes nothing: each transaction's guard finds it applied before"
echo '$ psql -d cloud -At < stream.sql'
cluster_psql cloud -d cloud -At -v ON_ERROR_STOP=1 <"$CLUSTER_ROOT/stream.sql"
cloud_sql -c 'SELECT id, name, ward, version FROM hospital_patients ORDER BY id'

# The slot would hold WAL back for a cloud that no longer listens.  The cloud
# cluster goes too: the shipping chapter sets up its own replica (with the
# shipper instead of pg_recvlogical) from scratch, and federation reuses it.
hospital_tool pg_recvlogical -S cloud --drop-slot
as_cluster_user "$PG_BINDIR/pg_ctl" -D "$CLUSTER_ROOT/cloud" -m fast -w stop >/dev/null
rm -rf "$CLUSTER_ROOT/cloud"
remaining=()
for c in "${CLUSTERS[@]}"; do [ "$c" = cloud ] || remaining+=("$c"); done
CLUSTERS=("${remaining[@]}")
unset cloud_PORT remaining c
