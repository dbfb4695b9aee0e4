# Failover slots (PostgreSQL 17 and later).  A target's slot is created with
# failover => true; a physical standby that synchronizes slots
# (sync_replication_slots) keeps a copy of it; while the primary lists that
# standby in synchronized_standby_slots, the shipper sends nothing the
# standby has not received; and after the standby is promoted, its own
# shipper goes on from where the old primary's stopped, without resync().
# Before 17 the same assertions are skipped, so every version counts the
# same tests.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);
use FindBin;
use lib "$FindBin::RealBin/../perl";
use EdgesyncTest;
use EdgesyncReceiver;

my $shipper_conf = q{
edgesync.ship_databases = 'postgres'
edgesync.ship_naptime = 50ms
edgesync.ship_retry_min = 50ms
edgesync.ship_retry_max = 400ms
log_statement = none
};
my $receiver = EdgesyncReceiver->new;
my $primary = edgesync_node('primary', extra_conf => $shipper_conf);
my $has_failover_slots =
  $primary->safe_psql('postgres', 'SHOW server_version_num') >= 170000;

# The ids the receiver got, in order.
sub received_ids
{
	my @ids;
	for my $batch ($receiver->deliveries)
	{
		push @ids, map { /"id":(\d+)/ ? $1 : () } @{ $batch->{lines} };
	}
	return @ids;
}

sub wait_for_ids
{
	my ($n, $what) = @_;
	for (1 .. 600)
	{
		return 1 if scalar(received_ids()) >= $n;
		sleep(0.1);
	}
	diag("$what: " . scalar(received_ids()) . " of $n ids arrived");
	return 0;
}

SKIP:
{
	skip 'failover slots need PostgreSQL 17', 8 unless $has_failover_slots;

	$primary->safe_psql('postgres', q{
		SELECT pg_create_physical_replication_slot('standby1');
		CREATE EXTENSION edgesync;
		CREATE TABLE hospital_patients (id int PRIMARY KEY, n int NOT NULL);
		SELECT edgesync.track('hospital_patients');
	});
	$primary->safe_psql('postgres',
		"SELECT edgesync.add_target('cloud', '" . $receiver->url . "', batch_changes => 10)");
	is( $primary->safe_psql('postgres',
			"SELECT failover FROM pg_replication_slots WHERE slot_name = 'edgesync_cloud'"),
		't', 'the target slot is a failover slot');

	$primary->backup('base');
	my $standby = PostgreSQL::Test::Cluster->new('standby');
	$standby->init_from_backup($primary, 'base', has_streaming => 1);
	$standby->append_conf('postgresql.conf', q{
primary_slot_name = 'standby1'
hot_standby_feedback = on
sync_replication_slots = on
} . "primary_conninfo = 'port=" . $primary->port . ' host=' . $primary->host
		  . " dbname=postgres application_name=standby'\n");
	$standby->start;
	$primary->append_conf('postgresql.conf', "synchronized_standby_slots = 'standby1'");
	$primary->reload;

	$primary->safe_psql('postgres',
		'INSERT INTO hospital_patients SELECT g, 0 FROM generate_series(1, 20) g');
	ok(wait_for_ids(20, 'before failover'), 'the primary ships');
	$primary->wait_for_replay_catchup($standby);
	ok( $standby->poll_query_until('postgres', q{
			SELECT synced AND NOT temporary AND confirmed_flush_lsn IS NOT NULL
			  FROM pg_replication_slots WHERE slot_name = 'edgesync_cloud'}),
		'the standby keeps a synchronized copy of the slot');

	# A standby that has not received the WAL holds the shipper back.
	$standby->stop;
	$primary->safe_psql('postgres',
		'INSERT INTO hospital_patients SELECT g, 0 FROM generate_series(21, 30) g');
	sleep(1.5);
	is(scalar(received_ids()), 20,
		'with the standby down, nothing it lacks is shipped (synchronized_standby_slots)');
	$standby->start;
	ok(wait_for_ids(30, 'standby back'), 'the standby back, the shipper goes on');
	$primary->wait_for_replay_catchup($standby);
	# The standby's copy moves with the primary's slot: wait until it has
	# passed every change shipped so far.
	my $shipped = $primary->safe_psql('postgres',
		"SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'edgesync_cloud'");
	ok( $standby->poll_query_until('postgres', qq{
			SELECT confirmed_flush_lsn >= '$shipped'
			  FROM pg_replication_slots WHERE slot_name = 'edgesync_cloud'}),
		'the synchronized slot follows the shipped position');

	# Failover: the primary goes away, the standby is promoted and ships.
	$primary->stop('immediate');
	$standby->promote;
	$standby->safe_psql('postgres',
		'INSERT INTO hospital_patients SELECT g, 0 FROM generate_series(31, 40) g');
	ok(wait_for_ids(40, 'after promotion'), 'the promoted standby ships the new changes');
	my %got = map { $_ => 1 } received_ids();
	is(join(',', grep { !$got{$_} } 1 .. 40), '',
		'every change arrived, none lost across the failover, no resync');
	$standby->stop;
}

done_testing();
