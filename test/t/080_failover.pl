# Failover (issue 13): a physical standby made with pg_basebackup is
# promoted with pg_ctl promote.  Logical slots are not copied by
# pg_basebackup nor kept by a standby without failover slots (PostgreSQL 15;
# on 17 only when the standby synchronizes them), so the promoted server has
# the targets but not their slots.  target_status shows it (slot_exists
# false, and after a shipping attempt the error that names resync()), no
# shipping attempt claims success, and the documented resync() brings every
# target back: a replica and an HTTP receiver end with every row the
# promoted server has, including the changes made before the failover that
# were never shipped, those made after it, and its deletes; then the stream
# goes on.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use EdgesyncTest;
use EdgesyncReceiver;

my $receiver = EdgesyncReceiver->new;
my $cloud = edgesync_node('cloud');
my $primary = edgesync_node('primary', extra_conf => "log_statement = none\n");

my $schema = q{
	CREATE EXTENSION edgesync;
	CREATE TABLE patients (id int PRIMARY KEY, name text NOT NULL);
	SELECT edgesync.track('patients');
	CREATE TABLE stays (id int, ward text, PRIMARY KEY (id, ward)) PARTITION BY LIST (ward);
	CREATE TABLE stays_a PARTITION OF stays FOR VALUES IN ('A');
	CREATE TABLE stays_b PARTITION OF stays FOR VALUES IN ('B');
	SELECT edgesync.track('stays');
};
$primary->safe_psql('postgres', $schema);
$cloud->safe_psql('postgres', $schema);
my $url = edgesync_applier_url($cloud, [qw(patients stays stays_a stays_b)]);
$primary->safe_psql('postgres', "SELECT edgesync.add_target('cloud_db', '$url')");
$primary->safe_psql('postgres', "SELECT edgesync.add_target('archive', '" . $receiver->url . "')");

my %checksum = (
	patients => q{SELECT count(*) || ':' || coalesce(md5(string_agg(id || '/' || name || '/' || version, ',' ORDER BY id)), '') FROM patients},
	stays => q{SELECT count(*) || ':' || coalesce(md5(string_agg(id || '/' || ward || '/' || version, ',' ORDER BY id)), '') FROM stays});

sub ship_all
{
	my ($node) = @_;
	$node->safe_psql('postgres', q{SELECT edgesync.ship('cloud_db', 1000), edgesync.ship('archive', 1000)});
}

sub same_as
{
	my ($node, $what) = @_;
	for my $table (sort keys %checksum)
	{
		is($cloud->safe_psql('postgres', $checksum{$table}), $node->safe_psql('postgres', $checksum{$table}),
			"$what: $table on the replica equals the hospital's");
	}
}

$primary->safe_psql('postgres', q{
	INSERT INTO patients SELECT g, 'patient ' || g FROM generate_series(1, 200) g;
	INSERT INTO stays SELECT g, CASE WHEN g % 2 = 0 THEN 'A' ELSE 'B' END FROM generate_series(1, 50) g;
});
ship_all($primary);
same_as($primary, 'before the failover');

# The standby, from pg_basebackup, streaming from the primary.
$primary->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->start;

# Changes the primary commits and never ships: they reach the standby.
$primary->safe_psql('postgres', q{
	UPDATE patients SET name = 'renamed before the failover' WHERE id <= 20;
	DELETE FROM patients WHERE id BETWEEN 190 AND 200;
	UPDATE stays SET ward = 'A' WHERE id = 1;
	INSERT INTO patients VALUES (500, 'admitted before the failover');
});
$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres', q{SELECT count(*) FROM edgesync.target_status WHERE NOT slot_exists}),
	'2', 'on the standby: the targets are there, their slots are not');

# The primary is lost; the standby is promoted.
$primary->stop('immediate');
$standby->promote;
$standby->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()') or die 'standby not promoted';
is($standby->safe_psql('postgres', q{SELECT count(*) FROM pg_replication_slots}), '0',
	'the promoted server has no slot');
is($standby->safe_psql('postgres', q{SELECT string_agg(name || ' ' || slot_exists, ', ' ORDER BY name) FROM edgesync.target_status}),
	'archive false, cloud_db false', 'target_status shows every target without its slot');

# Shipping fails, and says what to do; nothing is claimed shipped.
my $deliveries = scalar $receiver->deliveries;
ship_all($standby);
is($standby->safe_psql('postgres', q{
	SELECT string_agg(name || ' ' || (consecutive_failures > 0) || ' ' || (last_error LIKE '%does not exist; call edgesync.resync(''' || name || ''')%'), ', ' ORDER BY name)
	  FROM edgesync.target_status}),
	'archive true true, cloud_db true true', 'a shipping attempt fails and names resync()');
is(scalar $receiver->deliveries, $deliveries, 'the receiver got nothing');

# Life goes on at the promoted server before the DBA acts.
$standby->safe_psql('postgres', q{
	UPDATE patients SET name = 'renamed after the failover' WHERE id BETWEEN 15 AND 30;
	DELETE FROM patients WHERE id BETWEEN 100 AND 110;
	UPDATE stays SET ward = 'B' WHERE id = 2;
	INSERT INTO patients VALUES (600, 'admitted after the failover');
});

# The documented way back: resync() every target (each in its own
# transaction: it creates a slot).
$standby->safe_psql('postgres', "SELECT edgesync.resync('$_')") for qw(cloud_db archive);
ship_all($standby);
is($standby->safe_psql('postgres', q{
	SELECT string_agg(name || ' ' || slot_exists || ' ' || consecutive_failures || ' ' || resync_pending, ', ' ORDER BY name)
	  FROM edgesync.target_status}),
	'archive true 0 false, cloud_db true 0 false', 'after resync() every target has its slot and has shipped');
same_as($standby, 'after resync');
my @lines = map { @{ $_->{lines} } } ($receiver->deliveries)[ $deliveries .. scalar($receiver->deliveries) - 1 ];
my $patients = $standby->safe_psql('postgres', 'SELECT count(*) FROM patients');
is(scalar(grep { /"op":"insert","schema":"public","table":"patients"/ } @lines), $patients,
	'the HTTP receiver got every patient of the promoted server');
ok((grep { /"op":"resync_end","schema":"public","table":"patients","rows":$patients/ } @lines),
	'... closed by resync_end with the count, so it can drop the rows it did not get');

# And the stream goes on from the promoted server.
$standby->safe_psql('postgres', q{
	UPDATE patients SET name = 'later' WHERE id = 1;
	DELETE FROM patients WHERE id = 2;
	UPDATE stays SET ward = 'A' WHERE id = 3;
});
ship_all($standby);
same_as($standby, 'the stream after resync');

$standby->stop;
$cloud->stop;
done_testing();
