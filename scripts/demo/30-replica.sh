# Demo chapter: a change arriving in a second, "cloud" cluster, carried by
# the stock pg_recvlogical in the output plugin's sql format and applied by
# psql (docs/replica.md).
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

say "2. On the cloud: the extension, the table, and a copy of its rows (versions included)"
cloud_sql -c 'CREATE EXTENSION edgesync'
echo '$ pg_dump -d hospital --schema-only -t hospital_patients | psql -d cloud'
hospital_tool pg_dump --schema-only -t hospital_patients | cluster_psql cloud -d cloud >/dev/null
echo '$ pg_dump -d hospital --data-only --disable-triggers -t hospital_patients | psql -d cloud'
hospital_tool pg_dump --data-only --disable-triggers -t hospital_patients | cluster_psql cloud -d cloud >/dev/null
cloud_sql -c 'SELECT id, name, ward, version FROM hospital_patients ORDER BY id'

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

say "The same stream applied again changes nothing: apply_begin() says f (applied before) for each transaction"
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
