# Demo chapter: the shipper pushes changes to an HTTP receiver and into a
# second "cloud" cluster; the receiver goes down, changes keep being made,
# and after it comes back nothing is missing (docs/shipping.md).
say "Shipping: a second cluster (the cloud replica) and an HTTP receiver on loopback"
if [ -z "${cloud_PORT:-}" ]; then
	cluster_start cloud
	cluster_psql cloud -d postgres -c 'CREATE DATABASE cloud'
fi
cloud_sql() { cluster_psql cloud -d cloud -e "$@"; }
cloud_sql -c 'CREATE EXTENSION edgesync'
as_cluster_user "$PG_BINDIR/pg_dump" -h "$CLUSTER_ROOT" -p "$hospital_PORT" -U postgres -d hospital \
	--schema-only -t hospital_patients | cluster_psql cloud -d cloud >/dev/null

receiver_port=$(free_port)
received=$CLUSTER_ROOT/received.ndjson
start_receiver() {
	perl bench/ship/receiver.pl "$receiver_port" "$received" >"$CLUSTER_ROOT/receiver.out" 2>&1 &
	receiver_pid=$!
	for _ in $(seq 50); do grep -q listening "$CLUSTER_ROOT/receiver.out" 2>/dev/null && break; sleep 0.1; done
}
start_receiver
echo "receiver: http://127.0.0.1:$receiver_port/ingest (pid $receiver_pid), writing $received"

say "Two targets; the replica gets the current rows first (resync), then the stream"
hospital_sql <<SQL
SELECT edgesync.add_target('cloud_api', 'http://127.0.0.1:$receiver_port/ingest',
                           bearer_token => 'demo-token', batch_changes => 100);
SELECT edgesync.add_target('cloud_db', 'postgresql://postgres@/cloud?host=$CLUSTER_ROOT&port=$cloud_PORT');
SELECT edgesync.resync('cloud_db');
SELECT name, kind, url, slot_name FROM edgesync.targets ORDER BY name;
SQL

say "The background worker ships the hospital database (edgesync.ship_databases, applied by a reload)"
hospital_sql <<'SQL'
ALTER SYSTEM SET edgesync.ship_databases = 'hospital';
ALTER SYSTEM SET edgesync.ship_retry_max = '2s';
SELECT pg_reload_conf();
SQL

# wait_shipped: until every target acknowledged all WAL written so far.
wait_shipped() {
	local end
	end=$(cluster_psql hospital -d hospital -At -c 'SELECT pg_current_wal_flush_lsn()')
	for _ in $(seq 150); do
		[ "$(cluster_psql hospital -d hospital -At -c "SELECT count(*) FROM edgesync.target_status
			WHERE confirmed_lsn < '$end' OR consecutive_failures > 0 OR resync_pending")" = 0 ] && return
		sleep 0.2
	done
	echo "(not everything shipped yet)"
}

say "Changes on the hospital arrive at both targets"
hospital_sql <<'SQL'
INSERT INTO hospital_patients (id, hospital_id, name, ward) VALUES (40, 1, 'Dana Ruiz', 'A'), (41, 1, 'Eli Wong', 'B');
UPDATE hospital_patients SET ward = 'ICU' WHERE id = 40;
SQL
wait_shipped
echo "-- what the HTTP receiver got (NDJSON, one change per line, begin/commit framing):"
grep '"id":4[01]' "$received" | head -3 || true
cloud_sql -c 'SELECT id, name, ward, version FROM hospital_patients ORDER BY id'

say "The receiver goes down; the hospital keeps working"
kill "$receiver_pid"; wait "$receiver_pid" 2>/dev/null || true
hospital_sql -c "INSERT INTO hospital_patients (id, hospital_id, name, ward)
                 SELECT g, 1, 'walk-in ' || g, 'ER' FROM generate_series(100, 149) g"
sleep 2
hospital_sql -c 'SELECT name, consecutive_failures, last_error, next_retry > now() AS backing_off,
                        pg_size_pretty(wal_held_bytes) AS wal_held
                   FROM edgesync.target_status ORDER BY name'

say "The receiver is back: the backlog arrives, nothing is missing"
start_receiver
wait_shipped
hospital_sql -c 'SELECT name, consecutive_failures, changes_shipped, last_success IS NOT NULL AS shipped
                   FROM edgesync.target_status ORDER BY name'
got=$(grep -o '"op":"insert","schema":"public","table":"hospital_patients","pk":{"id":1[0-4][0-9]}' "$received" | sort -u | wc -l || true)
echo "walk-ins inserted while the receiver was down: 50; distinct ones it has now: $got"
cloud_sql -c "SELECT count(*) AS walk_ins_on_replica FROM hospital_patients WHERE ward = 'ER'"
checksum() { cluster_psql "$1" -d "$2" -At -c "SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM hospital_patients t"; }
if [ "$(checksum hospital hospital)" = "$(checksum cloud cloud)" ]; then
	echo "replica = hospital (ordered row checksums match)"
else
	echo "replica differs from hospital"
fi

# Leave nothing behind: targets (and their slots), the worker, the receiver,
# the cloud cluster (later chapters build their own).
hospital_sql -q <<'SQL'
SELECT edgesync.drop_target(name) FROM edgesync.targets;
ALTER SYSTEM RESET edgesync.ship_databases;
ALTER SYSTEM RESET edgesync.ship_retry_max;
SELECT pg_reload_conf();
SQL
kill "$receiver_pid" 2>/dev/null; wait "$receiver_pid" 2>/dev/null || true
as_cluster_user "$PG_BINDIR/pg_ctl" -D "$CLUSTER_ROOT/cloud" -m fast -w stop >/dev/null
rm -rf "$CLUSTER_ROOT/cloud"
remaining=()
for c in "${CLUSTERS[@]}"; do [ "$c" = cloud ] || remaining+=("$c"); done
CLUSTERS=("${remaining[@]}")
unset cloud_PORT remaining c
