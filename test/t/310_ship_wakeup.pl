# Woken at commit (issue 12): a target's worker does not wait for its next
# poll when a transaction that changed tracked tables commits.
#
# With edgesync.ship_naptime at 60 s, so that polling cannot be what ships
# them, a committed insert, update, delete and truncate reach the replica
# and the HTTP receiver within seconds; so does a change of a table tracked
# without its change log (log_changes => false).  A transaction that changes
# only untracked tables wakes nobody (nor, having no trigger of edgesync, a
# TRUNCATE alone of a table tracked without its change log: the next poll
# ships it).  With edgesync.ship_wakeup off, a
# commit waits for the poll; switched on again, the next commit ships both.
# The replica's connection is kept from round to round (one backend on the
# replica for all the rounds).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep time);
use FindBin;
use lib "$FindBin::RealBin/../perl";
use EdgesyncTest;
use EdgesyncReceiver;

my $receiver = EdgesyncReceiver->new;
my $cloud = edgesync_node('cloud');
my $hospital = edgesync_node('hospital', extra_conf => q{log_statement = none});

my $schema = q{
	CREATE EXTENSION edgesync;
	CREATE TABLE patients (id int PRIMARY KEY, name text NOT NULL);
	SELECT edgesync.track('patients');
	CREATE TABLE notes (id int PRIMARY KEY, note text);
	SELECT edgesync.track('notes', log_changes => false);
};
$hospital->safe_psql('postgres', $schema . 'CREATE TABLE scratch (id int);');
$cloud->safe_psql('postgres', $schema);
my $url = 'postgresql:///postgres?host=' . $cloud->host . '&port=' . $cloud->port
  . '&application_name=wakeup_test';
$hospital->safe_psql('postgres', qq{
	SELECT edgesync.add_target('cloud_db', '$url');
	SELECT edgesync.add_target('api', '} . $receiver->url . q{');
});
# Workers start with the server; then they sleep a minute between polls.
$hospital->append_conf('postgresql.conf', q{
edgesync.ship_databases = 'postgres'
edgesync.ship_naptime = 60s
});
$hospital->restart;
ok($hospital->poll_query_until('postgres',
		q{SELECT count(*) = 2 FROM edgesync.target_status WHERE state = 'idle'}),
	'both workers started and are idle');
sleep(1);

sub replica_has
{
	my ($sql, $want, $within) = @_;
	my $t0 = time;
	while (time - $t0 < $within)
	{
		return time - $t0 if $cloud->safe_psql('postgres', $sql) eq $want;
		sleep(0.02);
	}
	return undef;
}

sub received
{
	my ($pattern) = @_;
	return scalar grep { /$pattern/ } map { @{ $_->{lines} } } $receiver->deliveries;
}

sub receiver_has
{
	my ($pattern, $within) = @_;
	my $t0 = time;
	while (time - $t0 < $within)
	{
		return time - $t0 if received($pattern);
		sleep(0.02);
	}
	return undef;
}

my $took;
$hospital->safe_psql('postgres', q{INSERT INTO patients VALUES (1, 'Ann')});
$took = replica_has(q{SELECT count(*) FROM patients WHERE id = 1}, '1', 5);
ok(defined $took, 'an insert reached the replica within 5 s, with 60 s between polls ('
	  . ($took // 'never') . ' s)');
ok(defined receiver_has('"op":"insert".*"id":1', 5), 'and the HTTP receiver');

$hospital->safe_psql('postgres', q{UPDATE patients SET name = 'Anne' WHERE id = 1});
ok(defined replica_has(q{SELECT name FROM patients WHERE id = 1}, 'Anne', 5), 'an update');
$hospital->safe_psql('postgres', q{DELETE FROM patients WHERE id = 1});
ok(defined replica_has(q{SELECT count(*) FROM patients}, '0', 5), 'a delete');
$hospital->safe_psql('postgres', q{INSERT INTO notes VALUES (1, 'n')});
ok(defined replica_has(q{SELECT count(*) FROM notes}, '1', 5),
	'a table tracked without its change log');
$hospital->safe_psql('postgres', q{INSERT INTO patients VALUES (2, 'Bob'), (3, 'Cy')});
ok(defined replica_has(q{SELECT count(*) FROM patients}, '2', 5), 'an insert again');
$hospital->safe_psql('postgres', q{TRUNCATE patients});
ok(defined replica_has(q{SELECT count(*) FROM patients}, '0', 5), 'a truncate');

# A transaction on untracked tables only: the workers stay asleep.
my $rounds = q{SELECT count(*) FROM pg_stat_activity WHERE application_name = 'wakeup_test'};
is($cloud->safe_psql('postgres', $rounds), '1', 'one replica connection for all those rounds');
# (The worker may still be ending the truncate's round: wait until it sleeps.)
$hospital->poll_query_until('postgres',
	q{SELECT state = 'idle' AND state_since < now() - interval '300 ms'
	    FROM edgesync.target_status WHERE name = 'cloud_db'});
my $since = $hospital->safe_psql('postgres',
	q{SELECT state_since FROM edgesync.target_status WHERE name = 'cloud_db'});
$hospital->safe_psql('postgres', q{INSERT INTO scratch VALUES (1)});
sleep(1);
is($hospital->safe_psql('postgres',
		q{SELECT state_since FROM edgesync.target_status WHERE name = 'cloud_db'}),
	$since, 'a commit of untracked tables does not wake the worker');

# Polling only.
$hospital->safe_psql('postgres', q{ALTER SYSTEM SET edgesync.ship_wakeup = off; SELECT pg_reload_conf()});
sleep(1);
$hospital->safe_psql('postgres', q{INSERT INTO patients VALUES (4, 'Dee')});
ok(!defined replica_has(q{SELECT count(*) FROM patients WHERE id = 4}, '1', 3),
	'edgesync.ship_wakeup off: the commit waits for the next poll');
$hospital->safe_psql('postgres', q{ALTER SYSTEM RESET edgesync.ship_wakeup; SELECT pg_reload_conf()});
sleep(1);
$hospital->safe_psql('postgres', q{INSERT INTO patients VALUES (5, 'Eve')});
ok(defined replica_has(q{SELECT count(*) FROM patients WHERE id IN (4, 5)}, '2', 5),
	'on again: the next commit ships both');

done_testing();
