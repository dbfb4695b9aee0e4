# The source crashes (immediate shutdown) while `pg_recvlogical -o format=sql
# | psql` is feeding a replica and a workload is running.  After a restart
# and a new pg_recvlogical from the same slot: nothing is lost (replica =
# source) and nothing is applied twice (every row version is written on the
# replica once, although the slot replays what it had not persisted).
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

for my $node ($source, $replica)
{
	$node->safe_psql('postgres',
		q{CREATE DATABASE hospital ENCODING 'UTF8' LOCALE 'C' TEMPLATE template0});
	$node->safe_psql('hospital', q{
		CREATE EXTENSION edgesync;
		CREATE TABLE patients (id int PRIMARY KEY, name text, ward text);
	});
}
$source->safe_psql('hospital', q{SELECT edgesync.track('patients')});
$replica->safe_psql('hospital', q{
	ALTER TABLE patients ADD COLUMN version bigint NOT NULL DEFAULT 1,
	                     ADD COLUMN created_at timestamptz NOT NULL DEFAULT now(),
	                     ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
});
# Every row write on the replica, so that a change applied twice shows.
$replica->safe_psql('hospital', edgesync_apply_audit('patients'));

my ($out, $err);
IPC::Run::run([ 'pg_recvlogical', '--dbname', $source->connstr('hospital'), '-S', 'cloud',
		'--create-slot', '--plugin=edgesync' ], '>', \$out, '2>', \$err)
  or die "could not create the slot: $err";

# stream_to_replica(ENDPOS): pg_recvlogical | psql, started in the background.
sub stream_to_replica
{
	my ($endpos) = @_;
	my ($o, $e) = ('', '');
	my @recv = ('pg_recvlogical', '--dbname', $source->connstr('hospital'), '-S', 'cloud',
		'--start', '--no-loop', '-f', '-', '-o', 'format=sql', '--status-interval', '1');
	push @recv, '--endpos', $endpos if $endpos;
	my $h = IPC::Run::start(\@recv, '|',
		[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $replica->connstr('hospital') ],
		'>', \$o, '2>', \$e, IPC::Run::timeout($timeout));
	return ($h, \$e);
}

# A workload of many small transactions, streamed as it commits.
my ($h, $errref) = stream_to_replica(undef);
my $work = $source->background_psql('hospital', on_error_stop => 0);
$work->query_until(qr/started/, q{
	\echo started
	DO $$
	BEGIN
		FOR i IN 1 .. 3000 LOOP
			INSERT INTO patients VALUES (i, 'p' || i, 'A');
			IF i % 3 = 0 THEN UPDATE patients SET ward = 'B' WHERE id = i - 1; END IF;
			IF i % 7 = 0 THEN DELETE FROM patients WHERE id = i - 5; END IF;
			COMMIT;
			PERFORM pg_sleep(0.003);  -- long enough to crash in the middle
		END LOOP;
	END $$;
});

# Crash the source once the replica has some of it, not all.
my $seen = 0;
for (1 .. 10 * $timeout)
{
	$seen = $replica->safe_psql('hospital', 'SELECT count(*) FROM applied');
	last if $seen >= 300;
	usleep(100_000);
}
cmp_ok($seen, '>=', 300, 'the replica was receiving changes when the source crashed');
$source->stop('immediate');
$work->{run}->kill_kill;
eval { $h->finish; };
my $at_crash = $replica->safe_psql('hospital', 'SELECT count(*) FROM patients');
note("rows on the replica at the crash: $at_crash; pipe: $$errref");

# Restart, more work, stream again from the slot.
$source->start;
my $committed = $source->safe_psql('hospital', 'SELECT count(*) FROM patients');
cmp_ok($committed, '<', 3000 - int(3000 / 7), 'the crash interrupted the workload');
$source->safe_psql('hospital', q{
	UPDATE patients SET name = name || ' after restart' WHERE id % 10 = 1;
	INSERT INTO patients VALUES (10001, 'after restart', 'C');
});
my $end = $source->lsn('insert');
# (If the slot kept an older position than the replica applied, the stream
# below replays transactions: the case "nothing applied twice" is about.)
note('slot restarts at ' . $source->safe_psql('hospital',
		q{SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'cloud'})
	  . ', replica applied up to ' . $replica->safe_psql('hospital', q{SELECT lsn FROM edgesync.applied_lsn}));
($h, $errref) = stream_to_replica($end);
ok(eval { $h->finish; 1 }, 'the stream after the restart reaches the end') or diag($$errref);

is($replica->safe_psql('hospital', q{SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM patients t}),
	$source->safe_psql('hospital', q{SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM patients t}),
	'nothing lost: replica = source after the crash');
is($replica->safe_psql('hospital', q{
	SELECT count(*) FROM (SELECT op, id, version FROM applied GROUP BY 1, 2, 3 HAVING count(*) > 1) d}),
	'0', 'nothing applied twice: every row version written once on the replica');
ok($replica->safe_psql('hospital', q{SELECT count(*) FROM applied WHERE id = 10001}) == 1,
	'the change after the restart arrived');

$source->stop;
$replica->stop;
done_testing();
