# The unattended recipe of docs/replica.md: pg_recvlogical writes the sql
# stream to a spool file it fsyncs before acknowledging; a separate applier,
# the systemd unit's command `psql -f <(tail -n +1 -F spool)`, applies it to
# the replica as a role that is neither superuser nor owner (edgesync_applier
# plus table grants, and SET on session_replication_role).  The applier fails
# when the hospital adds a column to a replica table the applier does not own
# (the stream would add it, but only the table's owner may); the failing
# transaction is acknowledged to the hospital (it is in the spool) but not
# lost: once the DBA added the column, the restarted applier replays the whole
# spool, skips what was applied and applies the rest.  Replica = source, and
# no row version is written twice.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(usleep);
use FindBin;
use lib "$FindBin::RealBin/../perl";
use EdgesyncTest;

my $source = edgesync_node('source');
my $replica = edgesync_node('replica');
my $timeout = $PostgreSQL::Test::Utils::timeout_default;
my $tmp = PostgreSQL::Test::Utils::tempdir;
my $spool = "$tmp/cloud.sql";
my ($receiver, $applier);
# Stop what this test started, also when it dies half-way.
END { stop_applier(); $receiver->kill_kill if $receiver; }

for my $node ($source, $replica)
{
	$node->safe_psql('postgres',
		q{CREATE DATABASE hospital ENCODING 'UTF8' LOCALE 'C' TEMPLATE template0});
	$node->safe_psql('hospital', 'CREATE EXTENSION edgesync');
}
$source->safe_psql('hospital', q{
	CREATE TABLE patients (id int PRIMARY KEY, name text);
	SELECT edgesync.track('patients');
	CREATE ROLE cloud_feed LOGIN REPLICATION;
});
my ($out, $err);
IPC::Run::run([ 'pg_dump', '--schema-only', '-t', 'patients', '-d', $source->connstr('hospital') ],
	'|', [ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $replica->connstr('hospital') ],
	'>', \$out, '2>', \$err)
  or die "schema copy failed: $err";
$replica->safe_psql('hospital', q{
	CREATE ROLE hospital_feed LOGIN;
	GRANT edgesync_applier TO hospital_feed;
	GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON patients TO hospital_feed;
	-- The copied table has edgesync's triggers: the feed applies in replica
	-- mode, which the stream's guard enters only for a role that may set it.
	GRANT SET ON PARAMETER session_replication_role TO hospital_feed;
});
# Every row write, so that a change applied twice shows.
$replica->safe_psql('hospital', edgesync_apply_audit('patients'));

my $feed_conn = $source->connstr('hospital') . ' user=cloud_feed';
IPC::Run::run([ 'pg_recvlogical', '-d', $feed_conn, '-S', 'cloud', '--create-slot',
		'--plugin=edgesync' ], '>', \$out, '2>', \$err)
  or die "could not create the slot: $err";

# The receiver: a spool file, fsynced every second, acknowledged when fsynced.
$receiver = IPC::Run::start(
	[ 'pg_recvlogical', '-d', $feed_conn, '-S', 'cloud', '--start', '-o', 'format=sql',
		'-f', $spool, '--fsync-interval=1', '--status-interval=1' ],
	'>', \$out, '2>', "$tmp/receiver.err");
# The applier, the command of the systemd unit: psql reading the spool
# through tail -F.  In a session of its own (setsid), so that stopping it
# stops tail too, as systemd does with the unit's control group.
my $apply_conn = $replica->connstr('hospital') . ' user=hospital_feed';
sub start_applier
{
	unlink "$tmp/applier.pid";
	my $h = IPC::Run::start(
		[ 'setsid', 'bash', '-c',
			qq{echo \$\$ > '$tmp/applier.pid'; exec psql -X -q -v ON_ERROR_STOP=1 -d '$apply_conn' -f <(exec tail -n +1 -F '$spool')} ],
		'>', \$out, '2>', "$tmp/applier.err");
	for (1 .. 10 * $timeout)
	{
		last if -s "$tmp/applier.pid";
		usleep(100_000);
	}
	return $h;
}
# stop_applier: psql and tail, by their process group.
sub stop_applier
{
	return unless $applier;
	my ($pgid) = slurp_file("$tmp/applier.pid") =~ /(\d+)/;
	kill 'TERM', -$pgid if $pgid;
	eval { $applier->finish; };
	$applier = undef;
}
$applier = start_applier();
sub apply_err { return -e "$tmp/applier.err" ? slurp_file("$tmp/applier.err") : ''; }

sub checksum
{
	my ($node, $cols) = @_;
	return $node->safe_psql('hospital',
		"SELECT count(*) || ' ' || coalesce(md5(string_agg(($cols)::text, ',' ORDER BY id)), '') FROM patients");
}
# converged(COLUMNS): waits until the replica's rows equal the source's.
sub converged
{
	my ($cols) = @_;
	my $want = checksum($source, $cols);
	for (1 .. 10 * $timeout)
	{
		return 1 if checksum($replica, $cols) eq $want;
		usleep(100_000);
	}
	diag('applier: ' . apply_err());
	return 0;
}

$source->safe_psql('hospital', q{
	INSERT INTO patients SELECT g, 'p' || g FROM generate_series(1, 200) g;
	UPDATE patients SET name = name || '+' WHERE id % 3 = 0;
	DELETE FROM patients WHERE id % 5 = 0;
});
ok(converged('id, name, version, created_at, updated_at'), 'the spool applier keeps the replica equal to the source');

# A column the replica does not have yet, on a table the applier does not
# own: the applier stops at that transaction.
$source->safe_psql('hospital', q{
	ALTER TABLE patients ADD COLUMN ward text;
	INSERT INTO patients (id, name, ward) VALUES (1000, 'needs ward', 'ICU');
	UPDATE patients SET name = 'after the failure' WHERE id = 1;
});
my $end = $source->lsn('insert');
my $acked = 0;
for (1 .. 10 * $timeout)
{
	$acked = $source->safe_psql('hospital',
		qq{SELECT confirmed_flush_lsn >= '$end' FROM pg_replication_slots WHERE slot_name = 'cloud'}) eq 't';
	last if $acked && apply_err() =~ /must be owner/;
	usleep(100_000);
}
ok($acked, 'the hospital has the failing transaction acknowledged (it is in the spool)');
like(apply_err(), qr/edgesync: could not change replica table public\.patients: must be owner of table patients/,
	'the applier stopped on the column it may not add (the table is not its own)');
is($replica->safe_psql('hospital', 'SELECT count(*) FROM patients WHERE id = 1000'), '0',
	'the failing transaction is not on the replica');

# The DBA adds the column; the applier restarts and replays the whole spool.
stop_applier();
$replica->safe_psql('hospital', 'ALTER TABLE patients ADD COLUMN ward text');
unlink "$tmp/applier.err";
$applier = start_applier();
ok(converged('id, name, ward, version, created_at, updated_at'),
	'after the column is added, the restarted applier converges: nothing lost');
is($replica->safe_psql('hospital', q{
	SELECT count(*) FROM (SELECT op, id, version FROM applied GROUP BY 1, 2, 3 HAVING count(*) > 1) d}),
	'0', 'replaying the spool from its start applied nothing twice');
is($replica->safe_psql('hospital', q{SELECT ward FROM patients WHERE id = 1000}), 'ICU',
	'the transaction that failed is applied');

stop_applier();
$receiver->kill_kill;
$receiver = undef;
$source->stop;
$replica->stop;
done_testing();
