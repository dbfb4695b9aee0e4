# Fail fast (issue 12): a postgresql:// target is connected to once when it
# is added or enabled, and refused there, with nothing created, when it
# could never ship; and a target that no background worker serves says so.
#
#  1. add_target(), into a replica with nothing of edgesync, refuses a wrong
#     password (28P01), an unknown database (3D000), a host that refuses
#     connections (08001), one that accepts and never answers (08001, within
#     timeout_ms), and a role that lacks what applying needs there (42501,
#     naming it: CREATE and TEMPORARY on the database, CREATE on a replica
#     schema): no target, secrets, state or slot is left, and nothing is
#     created on the replica.  enabled => false adds without connecting; the
#     right URL adds.
#  2. alter_target() connects when it sets a URL or enables a target, and
#     refuses the same way, changing nothing.
#  3. target_status: a target of a database not in edgesync.ship_databases
#     is "no worker (database not in edgesync.ship_databases)", and the
#     server log says so once at start; on a server without edgesync in
#     shared_preload_libraries, "no worker (not preloaded)", and its log says
#     so once, however many sessions load the library.
use strict;
use warnings;

use IO::Socket::INET;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use FindBin;
use lib "$FindBin::RealBin/../perl";
use EdgesyncTest;

my $cloud = edgesync_node('cloud', extra_conf => q{
password_encryption = 'scram-sha-256'
});
my $hospital = edgesync_node('hospital', extra_conf => q{
edgesync.ship_databases = 'elsewhere'
log_statement = none
});

# The replica has nothing of edgesync; it asks its appliers for a password
# (scram), over the socket and TCP.  Applying there needs CREATE (for the
# position table's schema) and TEMPORARY (a re-send's sweep) on the database.
$cloud->safe_psql('postgres', q{
	CREATE ROLE applier LOGIN PASSWORD 'right-pw';
	CREATE ROLE stranger LOGIN PASSWORD 'stranger-pw';
	REVOKE CREATE, TEMPORARY ON DATABASE postgres FROM PUBLIC;
	GRANT CREATE, TEMPORARY ON DATABASE postgres TO applier;
});
my $cloud_nothing = q{SELECT (SELECT count(*) FROM pg_namespace WHERE nspname = 'edgesync') || '/'
                          || (SELECT count(*) FROM pg_proc WHERE proname LIKE 'apply%')};
is($cloud->safe_psql('postgres', $cloud_nothing), '0/0', 'the replica has nothing of edgesync');
{
	my $hba = slurp_file($cloud->data_dir . '/pg_hba.conf');
	open my $fh, '>', $cloud->data_dir . '/pg_hba.conf' or die $!;
	print $fh "local all applier,stranger scram-sha-256\n$hba";
	close $fh;
	$cloud->reload;
}
my $sock = $cloud->host;
my $port = $cloud->port;
sub cloud_url
{
	my ($user, $password, $db) = @_;
	return "postgresql://$user:$password\@/$db?host=$sock&port=$port";
}

$hospital->safe_psql('postgres', q{
	CREATE EXTENSION edgesync;
	CREATE TABLE patients (id int PRIMARY KEY, name text);
	SELECT edgesync.track('patients');
});

# What a refusal must leave: nothing.
my $nothing = q{SELECT (SELECT count(*) FROM edgesync.targets) || '/'
                    || (SELECT count(*) FROM edgesync.target_secrets) || '/'
                    || (SELECT count(*) FROM edgesync.target_state) || '/'
                    || (SELECT count(*) FROM pg_replication_slots)};
my $empty = $hospital->safe_psql('postgres', $nothing);
is($empty, '0/0/0/0', 'start: no target, no slot');

sub refused
{
	my ($sql, $sqlstate, $message, $what) = @_;
	my ($rc, $out, $err) = $hospital->psql('postgres', "\\set VERBOSITY verbose\n$sql");
	like($err, qr/ERROR:  $sqlstate: $message/, "$what: refused with SQLSTATE $sqlstate")
	  or diag($err);
	return $err;
}

# ---------------------------------------------------------------------------
# 1. add_target()

my $err = refused(
	"SELECT edgesync.add_target('c', '" . cloud_url('applier', 'wrong-pw', 'postgres') . "')",
	'28P01', 'could not connect to the replica of target "c"', 'a wrong password');
like($err, qr/DETAIL:  .*password authentication failed for user "applier"/,
	'a wrong password: the replica\'s words in the detail');
unlike($err, qr/wrong-pw/, 'a wrong password: the password is not shown');
is($hospital->safe_psql('postgres', $nothing), $empty, 'a wrong password: nothing created');

$err = refused(
	"SELECT edgesync.add_target('c', '" . cloud_url('applier', 'right-pw', 'nosuchdb') . "')",
	'3D000', 'could not connect to the replica of target "c"', 'an unknown database');
like($err, qr/database "nosuchdb" does not exist/, 'an unknown database: named');
is($hospital->safe_psql('postgres', $nothing), $empty, 'an unknown database: nothing created');

my $closed = PostgreSQL::Test::Cluster::get_free_port();
$err = refused(
	"SELECT edgesync.add_target('c', 'postgresql://applier:right-pw\@127.0.0.1:$closed/postgres')",
	'08001', 'could not connect to the replica of target "c"', 'a host that refuses connections');
is($hospital->safe_psql('postgres', $nothing), $empty, 'a refused connection: nothing created');

# A listener that never answers: libpq waits for the server's first word.
my $mute = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp',
	Listen => 5) or die "listen: $!";
my $mute_port = $mute->sockport;
my $t0 = time;
$err = refused(
	"SELECT edgesync.add_target('c', 'postgresql://applier:right-pw\@127.0.0.1:$mute_port/postgres', timeout_ms => 1500)",
	'08001', 'could not connect to the replica of target "c"', 'a host that never answers');
my $took = time - $t0;
like($err, qr/no answer from replica within 1500 ms/, 'a host that never answers: said so');
ok($took >= 1.4 && $took < 10, "a host that never answers: given up after timeout_ms (${took}s)");
is($hospital->safe_psql('postgres', $nothing), $empty, 'no answer: nothing created');
close $mute;

$err = refused(
	"SELECT edgesync.add_target('c', '" . cloud_url('stranger', 'stranger-pw', 'postgres') . "')",
	'42501', 'the role of target "c" lacks privileges on the replica', 'a role without privileges');
like($err, qr/DETAIL:  Missing: TEMPORARY on database postgres, CREATE on database postgres, CREATE on schema public\./,
	'a role without privileges: what it lacks, listed');
is($hospital->safe_psql('postgres', $nothing), $empty, 'missing privileges: nothing created');

# A replica schema the DBA made, where the role may not create the position table.
$cloud->safe_psql('postgres', q{
	CREATE SCHEMA sync_meta;
	GRANT USAGE ON SCHEMA sync_meta TO stranger;
	GRANT TEMPORARY ON DATABASE postgres TO stranger;
});
$err = refused(
	"SELECT edgesync.add_target('c', '" . cloud_url('stranger', 'stranger-pw', 'postgres') . "', replica_schema => 'sync_meta')",
	'42501', 'the role of target "c" lacks privileges on the replica', 'a replica schema without CREATE');
like($err, qr/DETAIL:  Missing: CREATE on schema "sync_meta"\./, 'a replica schema without CREATE: named');
is($hospital->safe_psql('postgres', $nothing), $empty, 'a replica schema without CREATE: nothing created');
# A replica schema whose name holds quotes and the check's own placeholders:
# named back exactly, never read as SQL.
$cloud->safe_psql('postgres', q{CREATE SCHEMA "we'ird ""@TABLE@"" @NAME@"; GRANT USAGE ON SCHEMA "we'ird ""@TABLE@"" @NAME@" TO stranger;});
$err = refused(
	"SELECT edgesync.add_target('c', '" . cloud_url('stranger', 'stranger-pw', 'postgres')
	  . q{', replica_schema => 'we''ird "@TABLE@" @NAME@')},
	'42501', 'the role of target "c" lacks privileges on the replica', 'a replica schema with quotes');
like($err, qr/DETAIL:  Missing: CREATE on schema "we'ird ""\@TABLE\@"" \@NAME\@"\./,
	'a replica schema with quotes: named exactly');
is($cloud->safe_psql('postgres', $cloud_nothing), '0/0', 'the refused checks created nothing on the replica');

# The hospital's table goes to schema public on the replica, which
# PostgreSQL 15 and later keep to their owner: the missing GRANT is named,
# before anything is created.
$err = refused(
	"SELECT edgesync.add_target('c', '" . cloud_url('applier', 'right-pw', 'postgres') . "')",
	'42501', 'the role of target "c" lacks privileges on the replica', 'no CREATE on the tables\' schema');
like($err, qr/DETAIL:  Missing: CREATE on schema public\./, 'no CREATE on schema public: named');
is($hospital->safe_psql('postgres', $nothing), $empty, 'no CREATE on schema public: nothing created');
$cloud->safe_psql('postgres', 'GRANT CREATE ON SCHEMA public TO applier');

# Not connected to while disabled; the right URL is accepted.
$hospital->safe_psql('postgres',
	"SELECT edgesync.add_target('later', '" . cloud_url('applier', 'wrong-pw', 'postgres') . "', enabled => false)");
is($hospital->safe_psql('postgres', q{SELECT count(*) FROM pg_replication_slots}),
	'1', 'enabled => false: added without connecting');
my ($rc, $out);
($rc, $out, $err) = $hospital->psql('postgres',
	"SELECT edgesync.add_target('good', '" . cloud_url('applier', 'right-pw', 'postgres') . "')");
is($rc, 0, 'the right URL: added') or diag($err);
is($cloud->safe_psql('postgres', $cloud_nothing), '0/0',
	'the check created nothing on the replica (the worker does, when it ships)');

# ---------------------------------------------------------------------------
# 2. alter_target()

my $target_row = q{SELECT t.enabled || ' ' || t.url || ' ' || s.password
                     FROM edgesync.targets t JOIN edgesync.target_secrets s USING (name)
                    WHERE name = 'later'};
my $before = $hospital->safe_psql('postgres', $target_row);
refused(q{SELECT edgesync.alter_target('later', enabled => true)},
	'28P01', 'could not connect to the replica of target "later"', 'alter_target: enabling with a wrong password');
is($hospital->safe_psql('postgres', $target_row), $before, 'alter_target: nothing changed');
refused("SELECT edgesync.alter_target('later', url => '" . cloud_url('applier', 'right-pw', 'nosuchdb') . "', enabled => true)",
	'3D000', 'could not connect', 'alter_target: a new URL with an unknown database');
is($hospital->safe_psql('postgres', $target_row), $before, 'alter_target: still nothing changed');
refused("SELECT edgesync.alter_target('good', url => '" . cloud_url('applier', 'wrong-pw', 'postgres') . "')",
	'28P01', 'could not connect', 'alter_target: a new URL of an enabled target');
($rc, $out, $err) = $hospital->psql('postgres',
	"SELECT edgesync.alter_target('later', url => '" . cloud_url('applier', 'right-pw', 'postgres') . "', enabled => true)");
is($rc, 0, 'alter_target: the right URL, enabled') or diag($err);
($rc, $out, $err) = $hospital->psql('postgres',
	q{SELECT edgesync.alter_target('later', batch_changes => 10)});
is($rc, 0, 'alter_target: other settings do not connect') or diag($err);

# ---------------------------------------------------------------------------
# 3. Targets no worker serves

is($hospital->safe_psql('postgres', q{SELECT state FROM edgesync.target_status WHERE name = 'good'}),
	'no worker (database not in edgesync.ship_databases)',
	'target_status: a database not in edgesync.ship_databases');
$hospital->safe_psql('postgres', q{SELECT edgesync.alter_target('later', enabled => false)});
is($hospital->safe_psql('postgres', q{SELECT state FROM edgesync.target_status WHERE name = 'later'}),
	'disabled', 'target_status: a disabled target is disabled');

my $offset = -s $hospital->logfile;
$hospital->restart;
ok($hospital->wait_for_log(qr/WARNING:  database "postgres" has edgesync targets but is not in edgesync\.ship_databases/, $offset),
	'the server log says so at start');
$hospital->safe_psql('postgres', 'SELECT pg_reload_conf()');
sleep 1;
my $log = slurp_file($hospital->logfile, $offset);
my @said = $log =~ /has edgesync targets but is not in edgesync\.ship_databases/g;
is(scalar @said, 1, 'said once');
like($log, qr/DETAIL:  No background worker ships its targets, whose replication slots \("edgesync_good", "edgesync_later"\) hold back WAL meanwhile\./,
	'naming the slots');

$hospital->append_conf('postgresql.conf', q{edgesync.ship_databases = 'postgres'});
$hospital->reload;
ok($hospital->poll_query_until('postgres',
		q{SELECT state IN ('idle', 'decoding', 'connecting', 'sending', 'waiting for answer', 'recording')
		    FROM edgesync.target_status WHERE name = 'good'}),
	'listed: a worker serves the target');

# A server without edgesync preloaded.
my $bare = edgesync_node('bare', extra_conf => q{
shared_preload_libraries = ''
edgesync.ship_databases = 'postgres'
});
$bare->safe_psql('postgres', q{
	CREATE EXTENSION edgesync;
	SELECT edgesync.add_target('api', 'http://127.0.0.1:9/in');
});
is($bare->safe_psql('postgres', q{SELECT state FROM edgesync.target_status}),
	'no worker (not preloaded)', 'target_status: not preloaded');
$bare->safe_psql('postgres', 'SELECT edgesync.version()') for 1 .. 3;
$log = slurp_file($bare->logfile);
@said = $log =~ /edgesync\.ship_databases is set, but edgesync is not in shared_preload_libraries/g;
is(scalar @said, 1, 'not preloaded: the server log says so once, whatever loads the library');

done_testing();
