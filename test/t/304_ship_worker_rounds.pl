# The background shipper over hundreds of failing rounds: a target whose
# round raises a PostgreSQL error every time (its slot belongs to another
# output plugin, which the shipper refuses to decode), and one whose round throws
# a C++ exception (a stored URL the shipper cannot parse), are recorded and
# retried; neither takes its worker or the good target down, and the memory
# of each failing target's worker stays flat: its TopMemoryContext (where a
# copied error lives) grows by less than 64 kB, and its private memory
# (RssAnon: shared buffers it touches do not count) by less than 1 MB.  (Each failed round of the first kind used
# to leak about 200 bytes of TopMemoryContext: strings of the copied error that
# FreeErrorData does not free; about 280 kB over this test.)
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
my $node = edgesync_node('hospital', extra_conf => q{
edgesync.ship_databases = 'postgres'
edgesync.ship_naptime = 10ms
edgesync.ship_retry_min = 1ms
edgesync.ship_retry_max = 5ms
log_statement = none
});
$node->safe_psql('postgres', q{
	CREATE EXTENSION edgesync;
	CREATE TABLE hospital_patients (id int PRIMARY KEY, n int NOT NULL);
	SELECT edgesync.track('hospital_patients');
});
$node->safe_psql('postgres',
	"SELECT edgesync.add_target('good', '" . $receiver->url . "', batch_changes => 50)");
$node->safe_psql('postgres', q{
	SELECT edgesync.add_target('broken', 'http://127.0.0.1:9/in');
	SELECT pg_create_logical_replication_slot('foreign_plugin', 'test_decoding');
	UPDATE edgesync.targets SET slot_name = 'foreign_plugin' WHERE name = 'broken';
	SELECT edgesync.add_target('bad_url', 'http://127.0.0.1:9/in');
	UPDATE edgesync.targets SET url = 'gopher://127.0.0.1/in' WHERE name = 'bad_url';
});

# The worker of a target (each target has its own).
sub worker_pid
{
	my ($target) = @_;
	return $node->safe_psql('postgres',
		"SELECT pid FROM edgesync.target_status WHERE name = '$target'");
}

sub rss_anon_kb
{
	my ($pid) = @_;
	my $status = slurp_file("/proc/$pid/status");
	return $status =~ /^RssAnon:\s+(\d+) kB/m ? $1 : die "no RssAnon for $pid";
}

# Bytes used by the worker's TopMemoryContext itself (not its children), from
# the context tree pg_log_backend_memory_contexts() writes to the server log.
sub top_context_used
{
	my ($pid) = @_;
	my $offset = -s $node->logfile;
	$node->safe_psql('postgres', "SELECT pg_log_backend_memory_contexts($pid)");
	# (TopMemoryContext is at level 0 up to PostgreSQL 17, at level 1 from 18.)
	my $line = qr/\[$pid\] [^\n]*?LOG:  level: \d+; TopMemoryContext: [^\n]*; (\d+) used/;
	$node->wait_for_log($line, $offset);
	my $log = substr(slurp_file($node->logfile), $offset);
	$log =~ $line
	  or die "no TopMemoryContext line for $pid";
	return $1;
}

# Writes a row per transaction for the given number of seconds.
my $rows = 0;
sub write_for
{
	my ($seconds) = @_;
	my $until = time() + $seconds;
	while (time() < $until)
	{
		my $sql = '';
		for (1 .. 20)
		{
			$rows++;
			$sql .= "INSERT INTO hospital_patients VALUES ($rows, 0);\n";
		}
		$node->safe_psql('postgres', $sql);
		sleep(0.1);
	}
}

write_for(5);
my %pid = map { $_ => worker_pid($_) } qw(broken bad_url);
like("$pid{broken} $pid{bad_url}", qr/^\d+ \d+$/, 'the failing targets have their workers');
my %before = map { $_ => rss_anon_kb($pid{$_}) } keys %pid;
my %top_before = map { $_ => top_context_used($pid{$_}) } keys %pid;
my $failures_before = $node->safe_psql('postgres',
	"SELECT consecutive_failures FROM edgesync.target_status WHERE name = 'broken'");
write_for(20);
my %after = map { $_ => rss_anon_kb($pid{$_}) } keys %pid;
my %top_after = map { $_ => top_context_used($pid{$_}) } keys %pid;
my $failures = $node->safe_psql('postgres',
	"SELECT consecutive_failures FROM edgesync.target_status WHERE name = 'broken'");
note("$_: RssAnon $before{$_} kB -> $after{$_} kB; TopMemoryContext used $top_before{$_} -> $top_after{$_} bytes")
  for sort keys %pid;
note("broken target failed rounds $failures_before -> $failures");

cmp_ok($failures - $failures_before, '>', 200, 'the broken target failed round after round');
like($node->safe_psql('postgres', "SELECT last_error FROM edgesync.target_status WHERE name = 'broken'"),
	qr/uses output plugin "test_decoding", not edgesync/, 'its PostgreSQL error is recorded');
like($node->safe_psql('postgres', "SELECT consecutive_failures || ' ' || last_error FROM edgesync.target_status WHERE name = 'bad_url'"),
	qr/^[1-9]\d* unsupported target URL scheme/, 'a C++ exception in a round is recorded for its target');
is(worker_pid($_), $pid{$_}, "$_: the same worker still runs (no crash, no restart)") for sort keys %pid;
ok($node->poll_query_until('postgres',
		"SELECT changes_shipped = $rows FROM edgesync.target_status WHERE name = 'good'"),
	'the good target got every change meanwhile');
for my $t (sort keys %pid)
{
	cmp_ok($top_after{$t} - $top_before{$t}, '<', 65536,
		"$t: worker TopMemoryContext flat over the rounds (< 64 kB growth)");
	cmp_ok($after{$t} - $before{$t}, '<', 1024,
		"$t: worker private memory flat over the rounds (< 1 MB growth)");
}

# (One transaction: the worker never sees the broken target on its own slot,
# whose backlog it would otherwise hold round after round while the drop waits.)
$node->safe_psql('postgres', q{
	BEGIN;
	UPDATE edgesync.targets SET slot_name = 'edgesync_broken' WHERE name = 'broken';
	SELECT edgesync.drop_target('broken');
	COMMIT;
	SELECT edgesync.drop_target('bad_url');
	SELECT edgesync.drop_target('good');
	SELECT pg_drop_replication_slot('foreign_plugin');
});
$node->stop;
$receiver->stop;
done_testing();
