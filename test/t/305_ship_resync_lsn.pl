# A resync to a postgresql:// replica and the stream that follows it: the
# re-send's batches must not make the replica skip anything.
#
#  - A transaction committed on the hospital while the re-send runs (after
#    its snapshot: a delete and an update of rows the re-send already sent)
#    arrives through the new slot's stream and is applied: the replica ends
#    equal to the hospital.
#  - Two resyncs in a row, with little WAL between them: the second still
#    inserts the rows the replica lacks (a re-send records no applied LSN
#    that a later re-send could collide with).
#
# The shipper is run with edgesync.ship() (no background worker), so that
# each step happens exactly where the test puts it.  One row per batch
# (batch_changes 1) gives the re-send many batches.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use EdgesyncTest;

my $cloud = edgesync_node('cloud');
my $hospital = edgesync_node('hospital', extra_conf => q{
log_statement = none
});

# hospital_patients is created first: the re-send goes through tracked tables
# in oid order, so it has sent every patient before it opens hospital_wards.
my $schema = q{
	CREATE EXTENSION edgesync;
	CREATE TABLE hospital_patients (id int PRIMARY KEY, name text NOT NULL);
	SELECT edgesync.track('hospital_patients');
	CREATE TABLE hospital_wards (id int PRIMARY KEY, name text NOT NULL);
	SELECT edgesync.track('hospital_wards');
};
$hospital->safe_psql('postgres', $schema);
$cloud->safe_psql('postgres', $schema);
my $url = edgesync_applier_url($cloud, [qw(hospital_patients hospital_wards)]);
$hospital->safe_psql('postgres',
	"SELECT edgesync.add_target('cloud_db', '$url', batch_changes => 1, timeout_ms => 20000)");

my %checksum = (
	hospital_patients => q{SELECT count(*) || ':' || coalesce(md5(string_agg(id || '/' || name || '/' || version, ',' ORDER BY id)), '')
	                         FROM hospital_patients},
	hospital_wards => q{SELECT count(*) || ':' || coalesce(md5(string_agg(id || '/' || name || '/' || version, ',' ORDER BY id)), '')
	                      FROM hospital_wards},);

sub ship
{
	$hospital->safe_psql('postgres', q{SELECT edgesync.ship('cloud_db', 1000)});
	is($hospital->safe_psql('postgres',
			q{SELECT consecutive_failures || '|' || coalesce(last_error, '') || '|' || resync_pending
			    FROM edgesync.target_status}),
		'0||false', "$_[0]: shipped without failure");
}

sub same_as_source
{
	my ($what) = @_;
	for my $table (sort keys %checksum)
	{
		is($cloud->safe_psql('postgres', $checksum{$table}),
			$hospital->safe_psql('postgres', $checksum{$table}),
			"$what: $table on the replica equals the hospital's");
	}
}

$hospital->safe_psql('postgres', q{
	INSERT INTO hospital_patients SELECT g, 'p' || g FROM generate_series(1, 1500) g;
	INSERT INTO hospital_wards SELECT g, 'ward ' || g FROM generate_series(1, 5) g;
});
ship('stream');
same_as_source('stream');

# The slot is lost; resync().  The re-send is started in one session and
# held on hospital_wards by a lock another session took before; while it
# waits (every patient sent, from a snapshot taken before), that session
# deletes and updates patients and commits.  Its transaction is in the new
# slot's stream, committed after the re-send began: it must be applied.
$hospital->safe_psql('postgres', q{SELECT pg_drop_replication_slot('edgesync_cloud_db')});
$hospital->safe_psql('postgres', q{SELECT edgesync.resync('cloud_db')});
my $locker = $hospital->background_psql('postgres');
$locker->query_safe('BEGIN; LOCK TABLE hospital_wards IN ACCESS EXCLUSIVE MODE');
my $shipper = $hospital->background_psql('postgres');
$shipper->query_until(qr/started/, q{
	\echo started
	SELECT edgesync.ship('cloud_db', 1000);
});
$hospital->poll_query_until('postgres', q{
	SELECT count(*) = 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
	 WHERE c.relname = 'hospital_wards' AND NOT l.granted})
  or die 'the re-send does not wait for hospital_wards';
$locker->query_safe(q{
	DELETE FROM hospital_patients WHERE id IN (2, 3);
	UPDATE hospital_patients SET name = 'changed after the snapshot' WHERE id = 4;
	COMMIT});
$locker->quit;
$shipper->query_safe('SELECT 1');    # waits for ship() to end
$shipper->quit;
is($hospital->safe_psql('postgres',
		q{SELECT consecutive_failures || '|' || coalesce(last_error, '') || '|' || resync_pending
		    FROM edgesync.target_status}),
	'0||false', 'resync during a commit: shipped without failure');
ship('resync during a commit: the stream');
is($cloud->safe_psql('postgres', q{SELECT count(*) FROM hospital_patients WHERE id IN (2, 3)}), '0',
	'resync during a commit: the rows deleted after the snapshot are gone from the replica');
is($cloud->safe_psql('postgres', q{SELECT name FROM hospital_patients WHERE id = 4}),
	'changed after the snapshot', 'resync during a commit: the update after the snapshot arrived');
same_as_source('resync during a commit');

# Two resyncs in a row: between them, the replica loses rows (deleted there
# directly) that sit in the first batches of the re-send.  The second re-send
# starts a few hundred bytes of WAL after the first one began, far fewer than
# the first one had batches.
$hospital->safe_psql('postgres', q{SELECT edgesync.resync('cloud_db')});
ship('first of two resyncs');
same_as_source('first of two resyncs');
$cloud->safe_psql('postgres', q{
	SET session_replication_role = replica;
	DELETE FROM hospital_patients WHERE id BETWEEN 5 AND 15;
	DELETE FROM hospital_wards WHERE id = 1;
});
$hospital->safe_psql('postgres', q{SELECT edgesync.resync('cloud_db')});
ship('second of two resyncs');
is($cloud->safe_psql('postgres', q{SELECT count(*) FROM hospital_patients WHERE id BETWEEN 5 AND 15}), '11',
	'second of two resyncs: the rows the replica lacked are inserted');
same_as_source('second of two resyncs');

# The stream goes on, judged only against what the stream itself recorded.
$hospital->safe_psql('postgres', q{
	DELETE FROM hospital_patients WHERE id = 20;
	UPDATE hospital_patients SET name = 'later' WHERE id = 21;
	INSERT INTO hospital_wards VALUES (6, 'ward 6');
});
ship('stream after the resyncs');
same_as_source('stream after the resyncs');

$hospital->stop;
$cloud->stop;
done_testing();
