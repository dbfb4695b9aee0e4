# The shipper applying changes on a second cluster (postgresql:// target):
# the replica converges to the source (ordered row checksums) after a steady
# workload, an immediate shutdown of the hospital mid-batch, an immediate
# shutdown of the replica mid-apply, the replica down for a while, and a
# resync after the target's slot was lost.
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
};
$hospital->safe_psql('postgres', $schema);
$cloud->safe_psql('postgres', $schema);
$cloud->safe_psql('postgres', q{
	CREATE ROLE cloud_applier LOGIN PASSWORD 'pw-SECRET-42' IN ROLE edgesync_applier;
	GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON hospital_patients TO cloud_applier;
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
	my ($what) = @_;
	my ($source, $replica);
	for (1 .. 900)
	{
		$source = $hospital->safe_psql('postgres', $checksum);
		my ($rc, $out) = $cloud->psql('postgres', $checksum);
		$replica = $out // '';
		last if $source eq $replica;
		sleep(0.1);
	}
	is($replica, $source, "$what: replica equals source");
}

sub status
{
	return $hospital->safe_psql('postgres',
		"SELECT consecutive_failures || '|' || coalesce(last_error, '') FROM edgesync.target_status");
}

workload(20, 50);
wait_converged('steady workload');
is($cloud->safe_psql('postgres', 'SELECT count(*) FROM edgesync.applied_lsn'), '1',
	'the replica records the source\'s applied commit LSN');

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
$hospital->safe_psql('postgres', q{SELECT edgesync.resync('cloud_db')});
$hospital->safe_psql('postgres', q{
	ALTER SYSTEM RESET edgesync.ship_databases;
	SELECT pg_reload_conf();
});
workload(3, 10);
wait_converged('after resync');
is($hospital->safe_psql('postgres', 'SELECT resync_pending FROM edgesync.target_status'), 'f',
	'resync done');

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
my $gone;
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
