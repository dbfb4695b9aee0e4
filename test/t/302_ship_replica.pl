# The shipper applying changes on a second cluster (postgresql:// target):
# the replica converges to the source (ordered row checksums) after a steady
# workload, an immediate shutdown of the hospital mid-batch, an immediate
# shutdown of the replica mid-apply, the replica down for a while, and a
# resync after the target's slot was lost: rows deleted on the hospital while
# the slot was lost are deleted on the replica too (a plain table, one left
# without rows, a partitioned one, one with a hashed key), a resync that
# fails half-way deletes nothing the source still has, and a second resync
# changes nothing.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);
use FindBin;
use lib "$FindBin::RealBin/../perl";
use EdgesyncTest;

my $cloud = edgesync_node('cloud');
my $hospital = edgesync_node('hospital', extra_conf => q{
edgesync.hash_key = 'tap-302-key'
edgesync.ship_databases = 'postgres'
edgesync.ship_naptime = 50ms
edgesync.ship_retry_min = 50ms
edgesync.ship_retry_max = 500ms
log_statement = none
});

my $schema = q{
	CREATE EXTENSION edgesync;
	CREATE TABLE hospital_patients (id int PRIMARY KEY, name text NOT NULL, ward text, notes text);
	SELECT edgesync.track('hospital_patients');
	CREATE TABLE hospital_wards (id int PRIMARY KEY, name text NOT NULL);
	SELECT edgesync.track('hospital_wards');
	CREATE TABLE hospital_stays (id int, ward text, PRIMARY KEY (id)) PARTITION BY RANGE (id);
	CREATE TABLE hospital_stays_1 PARTITION OF hospital_stays FOR VALUES FROM (0) TO (100);
	CREATE TABLE hospital_stays_2 PARTITION OF hospital_stays FOR VALUES FROM (100) TO (1000);
	SELECT edgesync.track('hospital_stays');
	CREATE TABLE hospital_mrns (mrn text PRIMARY KEY, n int NOT NULL);
	SELECT edgesync.track('hospital_mrns');
};
$hospital->safe_psql('postgres', $schema);
$cloud->safe_psql('postgres', $schema);
# The replica holds the mrn's HMAC (the column policy): the same text column.
$hospital->safe_psql('postgres', q{SELECT edgesync.set_column_policy('hospital_mrns', 'mrn', 'hash')});
$cloud->safe_psql('postgres', q{
	CREATE ROLE cloud_applier LOGIN PASSWORD 'pw-SECRET-42' IN ROLE edgesync_applier;
	GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE
	   ON hospital_patients, hospital_wards, hospital_stays, hospital_mrns TO cloud_applier;
	-- The replica's tables are tracked (edgesync's triggers): apply in replica mode.
	GRANT SET ON PARAMETER session_replication_role TO cloud_applier;
});
$cloud->safe_psql('postgres', edgesync_apply_audit('hospital_patients'));
$cloud->safe_psql('postgres', q{
	CREATE TRIGGER record_apply AFTER INSERT OR UPDATE OR DELETE ON hospital_wards
		FOR EACH ROW EXECUTE FUNCTION record_apply();
	ALTER TABLE hospital_wards ENABLE ALWAYS TRIGGER record_apply;
});
my $url = 'postgresql://cloud_applier:pw-SECRET-42@/postgres?host=' . $cloud->host . '&port=' . $cloud->port;
$hospital->safe_psql('postgres',
	"SELECT edgesync.add_target('cloud_db', '$url', batch_changes => 500, timeout_ms => 5000)");

my $next_id = 1;

# Transactions of inserts, updates and deletes.
sub workload
{
	my ($txns, $rows) = @_;
	my $sql = '';
	for (1 .. $txns)
	{
		my $first = $next_id;
		my $last = $first + $rows - 1;
		$next_id += $rows;
		$sql .= "BEGIN; INSERT INTO hospital_patients SELECT g, 'p' || g, 'A', repeat('x', g % 50) FROM generate_series($first, $last) g; ";
		$sql .= "UPDATE hospital_patients SET ward = 'B' WHERE id % 3 = 0 AND id BETWEEN $first - 30 AND $last; ";
		$sql .= "DELETE FROM hospital_patients WHERE id % 11 = 0 AND id BETWEEN $first - 40 AND $last; COMMIT;\n";
	}
	$hospital->safe_psql('postgres', $sql);
}

my $checksum = q{SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, ',' ORDER BY id)), '')
                   FROM hospital_patients t};

sub wait_converged
{
	my ($what, $sql) = @_;
	$sql //= $checksum;
	my ($source, $replica);
	for (1 .. 900)
	{
		$source = $hospital->safe_psql('postgres', $sql);
		my ($rc, $out) = $cloud->psql('postgres', $sql);
		$replica = $out // '';
		last if $source eq $replica;
		sleep(0.1);
	}
	is($replica, $source, "$what: replica equals source");
}

# The other tables: rows in key order (hospital_mrns: its hashed keys differ
# between the two sides, its n are unique).
my %table_checksum = (
	hospital_wards => q{SELECT count(*) || ':' || coalesce(md5(string_agg(id || '/' || name, ',' ORDER BY id)), '')
	                      FROM hospital_wards},
	hospital_stays => q{SELECT count(*) || ':' || coalesce(md5(string_agg(id || '/' || ward, ',' ORDER BY id)), '')
	                      FROM hospital_stays},
	hospital_mrns => q{SELECT count(*) || ':' || count(DISTINCT mrn) || ':' || coalesce(md5(string_agg(n::text, ',' ORDER BY n)), '')
	                     FROM hospital_mrns},);

sub wait_all_converged
{
	my ($what) = @_;
	wait_converged("$what: hospital_patients");
	wait_converged("$what: $_", $table_checksum{$_}) for sort keys %table_checksum;
}

sub ids
{
	my ($node, $table) = @_;
	return map { $_ => 1 } split /\n/, $node->safe_psql('postgres', "SELECT id FROM $table");
}

sub status
{
	return $hospital->safe_psql('postgres',
		"SELECT consecutive_failures || '|' || coalesce(last_error, '') FROM edgesync.target_status");
}

$hospital->safe_psql('postgres', q{
	INSERT INTO hospital_wards SELECT g, 'ward ' || g FROM generate_series(1, 30) g;
	INSERT INTO hospital_stays SELECT g, 'W' || (g % 5) FROM generate_series(1, 300) g;
	INSERT INTO hospital_mrns SELECT 'MRN-' || g, g FROM generate_series(1, 200) g;
});
workload(20, 50);
wait_all_converged('steady workload');
is($cloud->safe_psql('postgres', 'SELECT count(*) FROM edgesync.applied_lsn'), '1',
	'the replica records the source\'s applied commit LSN');

# Many small transactions shipped in one call: the shipper lets the sql
# format's runs continue across transactions (one statement for many), so
# consecutive transactions with the same shape, the same key in consecutive
# transactions, and kinds alternating between them must all arrive.
$hospital->safe_psql('postgres', q{SELECT edgesync.alter_target('cloud_db', enabled => false)});
{
	my $sql = '';
	my $base = 100000;
	$sql .= "INSERT INTO hospital_patients VALUES ($base + $_, 'small $_', 'A', 'x');\n" for 1 .. 150;
	$sql .= "UPDATE hospital_patients SET ward = 'C' WHERE id = $base + $_;\n" for 1 .. 150;
	$sql .= "UPDATE hospital_patients SET ward = 'D' WHERE id = $base + $_;\n" for 1 .. 150;
	for (1 .. 50)
	{
		$sql .= "DELETE FROM hospital_patients WHERE id = $base + $_;\n";
		$sql .= "INSERT INTO hospital_patients VALUES ($base + 1000 + $_, 'late $_', 'A', 'y');\n";
	}
	$hospital->safe_psql('postgres', $sql);
}
# (The worker may still be in a round of the target: ship() refuses until it is done.)
my $shipped = '';
for (1 .. 100)
{
	my ($rc, $out) = $hospital->psql('postgres', q{SELECT edgesync.ship('cloud_db', 1000)});
	if ($rc == 0) { $shipped = $out; last }
	sleep(0.1);
}
is($shipped, '550', 'small transactions: all 550 changes shipped by ship() in one call');
$hospital->safe_psql('postgres', q{SELECT edgesync.alter_target('cloud_db', enabled => true)});
wait_converged('small transactions, runs across them');

# Immediate shutdown of the hospital while it ships a large backlog.
workload(40, 200);
$hospital->stop('immediate');
$hospital->start;
wait_converged('hospital shut down mid-batch');

# Immediate shutdown of the replica while it applies.
workload(40, 200);
sleep(0.3);
$cloud->stop('immediate');
# The backlog may have been applied before the stop (the sql format's runs
# apply fast): more changes, so the worker has something to fail on.
workload(2, 10);
for (1 .. 300)
{
	last if status() =~ /^[1-9]\d*\|/;
	sleep(0.1);
}
like(status(), qr/^[1-9]\d*\|/, 'replica down: failures recorded');
$cloud->start;
wait_converged('replica shut down mid-apply');

# The slot is lost (say, dropped by max_slot_wal_keep_size): status says so,
# and resync() rebuilds the replica's copy with a full re-send.
$hospital->safe_psql('postgres', q{
	ALTER SYSTEM SET edgesync.ship_databases = '';
	SELECT pg_reload_conf();
});
$hospital->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'edgesync shipper'") or die;
$hospital->safe_psql('postgres', q{SELECT pg_drop_replication_slot('edgesync_cloud_db')});
workload(5, 100);
$hospital->safe_psql('postgres', q{SELECT edgesync.ship('cloud_db')});
like(status(), qr/does not exist.*resync/, 'lost slot: status points to resync');
is($hospital->safe_psql('postgres', 'SELECT slot_exists FROM edgesync.target_status'), 'f',
	'lost slot: slot_exists is false');

# While the slot is lost, rows the replica has are deleted and changed; one
# table is left without rows.
my %patients_before = ids($cloud, 'hospital_patients');
my %stays_before = ids($cloud, 'hospital_stays');
$hospital->safe_psql('postgres', q{
	DELETE FROM hospital_patients WHERE id % 7 = 3 AND id < 3000;
	UPDATE hospital_patients SET ward = 'C' WHERE id % 13 = 5 AND id < 3000;
	DELETE FROM hospital_wards;
	DELETE FROM hospital_stays WHERE id % 4 = 1;
	UPDATE hospital_stays SET ward = 'moved' WHERE id % 10 = 2;
	DELETE FROM hospital_mrns WHERE n % 3 = 0;
	INSERT INTO hospital_mrns SELECT 'MRN-' || g, g FROM generate_series(1000, 1010) g;
});
my %patients_source = ids($hospital, 'hospital_patients');
my %stays_source = ids($hospital, 'hospital_stays');
my $gone = grep { !$patients_source{$_} } keys %patients_before;
ok($gone > 50, "lost slot: $gone rows the replica has were deleted on the hospital");

# A resync that fails half-way (the replica refuses one row of the middle of
# the table) deletes nothing the source still has, in any table.
my $refused = $hospital->safe_psql('postgres', q{
	SELECT id FROM hospital_patients ORDER BY ctid OFFSET (SELECT count(*) / 2 FROM hospital_patients) LIMIT 1});
$cloud->safe_psql('postgres', qq{
	CREATE FUNCTION refuse_row() RETURNS trigger LANGUAGE plpgsql AS \$\$
	BEGIN
		IF NEW.id = $refused THEN RAISE EXCEPTION 'replica refuses row $refused'; END IF;
		RETURN NEW;
	END \$\$;
	CREATE TRIGGER refuse_row BEFORE INSERT ON hospital_patients FOR EACH ROW EXECUTE FUNCTION refuse_row();
	ALTER TABLE hospital_patients ENABLE ALWAYS TRIGGER refuse_row;
});
$hospital->safe_psql('postgres', q{SELECT edgesync.alter_target('cloud_db', batch_changes => 40)});
$hospital->safe_psql('postgres', q{SELECT edgesync.resync('cloud_db')});
$hospital->safe_psql('postgres', q{
	ALTER SYSTEM RESET edgesync.ship_databases;
	SELECT pg_reload_conf();
});
# The replica's own words are for edgesync_admin (target_state); target_status
# says what kind of error it was.
sub status_detail
{
	return $hospital->safe_psql('postgres',
		"SELECT consecutive_failures || '|' || coalesce(last_error_detail, '') FROM edgesync.target_state");
}
for (1 .. 600)
{
	last if status_detail() =~ /^[1-9]\d*\|.*replica refuses row/;
	sleep(0.1);
}
like(status_detail(), qr/^[1-9]\d*\|.*replica refuses row $refused/, 'resync failing half-way: failure recorded');
like(status(), qr/^[1-9]\d*\|replica rejected batch: an error raised by a function on the replica \(SQLSTATE P0001\)$/,
	'resync failing half-way: target_status shows its SQLSTATE, not its text');
my %patients_now = ids($cloud, 'hospital_patients');
my %stays_now = ids($cloud, 'hospital_stays');
my @wrong = grep { $patients_source{$_} && !$patients_now{$_} } keys %patients_before;
push @wrong, grep { $stays_source{$_} && !$stays_now{$_} } keys %stays_before;
is(scalar(@wrong), 0, 'resync failing half-way: no row the source has was deleted');
ok((grep { !$patients_source{$_} && $patients_now{$_} } keys %patients_before) > 0,
	'resync failing half-way: the table was not swept');
$cloud->safe_psql('postgres', 'DROP TRIGGER refuse_row ON hospital_patients');
workload(3, 10);
wait_all_converged('after resync');
$hospital->poll_query_until('postgres', 'SELECT NOT resync_pending FROM edgesync.target_status')
  or die 'resync not done';
is($hospital->safe_psql('postgres', 'SELECT resync_pending FROM edgesync.target_status'), 'f',
	'resync done');

# A second resync changes nothing: no row written on the replica.
my $applied = $cloud->safe_psql('postgres', 'SELECT count(*) FROM applied');
$hospital->safe_psql('postgres', q{SELECT edgesync.resync('cloud_db')});
$hospital->poll_query_until('postgres', 'SELECT NOT resync_pending FROM edgesync.target_status')
  or die 'second resync not done';
is($cloud->safe_psql('postgres', 'SELECT count(*) FROM applied'), $applied,
	'a second resync writes no row on the replica');
wait_all_converged('after a second resync');
$hospital->safe_psql('postgres', q{SELECT edgesync.alter_target('cloud_db', batch_changes => 500)});

# SIGTERM while the replica hangs (a lock holds the batch's apply): the
# worker is gone within about a second, not at its 5 s timeout; the batch
# arrives after the lock goes, and no session of the worker lingers.
my $locker = $cloud->background_psql('postgres');
$locker->query_safe('BEGIN; LOCK TABLE hospital_patients IN ACCESS EXCLUSIVE MODE');
workload(2, 10);
$cloud->poll_query_until('postgres', q{
	SELECT count(*) > 0 FROM pg_stat_activity
	 WHERE application_name = 'edgesync shipper' AND wait_event_type = 'Lock'})
  or die 'the batch is not waiting for the lock';
my $shipper = $hospital->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'edgesync shipper'");
my $t0 = Time::HiRes::time();
$hospital->safe_psql('postgres', "SELECT pg_terminate_backend($shipper)");
for (1 .. 100)
{
	last if $hospital->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE pid = $shipper") eq '0';
	sleep(0.02);
}
my $elapsed = Time::HiRes::time() - $t0;
cmp_ok($elapsed, '<', 1.5, 'SIGTERM during a hung replica: the worker exits promptly');
$locker->query_safe('COMMIT');
$locker->quit;
wait_converged('SIGTERM during a hung replica');
ok($cloud->poll_query_until('postgres', q{
	SELECT count(*) <= 1 FROM pg_stat_activity WHERE application_name = 'edgesync shipper'}),
	'no session of the terminated worker lingers on the replica');

unlike(slurp_file($hospital->logfile), qr/SECRET/, 'replica password not in the server log');
unlike($hospital->safe_psql('postgres', 'SELECT s::text FROM edgesync.target_status s'), qr/SECRET/,
	'replica password not in target_status');

$hospital->stop;
$cloud->stop;
done_testing();
