# The shipper against a real HTTP receiver on loopback, with faults: receiver
# answering 5xx, never answering, resetting mid-body, slow, down (refused),
# an immediate shutdown of the hospital mid-batch, the worker killed.  After
# each, everything arrives: nothing lost, in commit order, duplicates only as
# whole batches under the same Idempotency-Key.  Also: the background worker
# ships continuously, reloads on SIGHUP and comes back after SIGTERM and a
# crash; the token reaches the receiver but never the server log.
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

my $token = 'tok-SECRET-7f3a9c';
my $receiver = EdgesyncReceiver->new;

my $node = edgesync_node('hospital', extra_conf => q{
edgesync.ship_databases = 'postgres'
edgesync.ship_naptime = 50ms
edgesync.ship_retry_min = 50ms
edgesync.ship_retry_max = 400ms
log_min_error_statement = error
restart_after_crash = on
log_statement = none
});
$node->safe_psql('postgres', q{
	CREATE EXTENSION edgesync;
	CREATE TABLE hospital_patients (id int PRIMARY KEY, n int NOT NULL);
	SELECT edgesync.track('hospital_patients');
});
$node->safe_psql('postgres', "SELECT edgesync.add_target('cloud_api', '"
	  . $receiver->url . "', bearer_token => '$token', batch_changes => 25, timeout_ms => 2000)");

# A second target that is dead all along: it must not hold up the first.
$node->safe_psql('postgres', "SELECT edgesync.add_target('dead_one', 'http://127.0.0.1:9/in')");

# A failing call that carries the token is not logged with its text.
my ($rc, $out, $err) = $node->psql('postgres',
	"SELECT edgesync.add_target('bad_one', 'http://u:pw-SECRET\@127.0.0.1:1/', bearer_token => '$token', batch_changes => -5)");
like($err, qr/batch_changes must be between/, 'bad batch limit refused');

my $next_id = 1;
my $expected_changes = 0;

# Writes some transactions: inserts, and updates of earlier rows.
sub workload
{
	my ($txns) = @_;
	my $sql = '';
	for (1 .. $txns)
	{
		my $first = $next_id;
		$next_id += 3;
		$sql .= "BEGIN; INSERT INTO hospital_patients SELECT g, 0 FROM generate_series($first, $first + 2) g; ";
		$sql .= "UPDATE hospital_patients SET n = n + 1 WHERE id = $first; COMMIT;\n";
		$expected_changes += 4;
	}
	$node->safe_psql('postgres', $sql);
}

sub lsn_num
{
	my ($hi, $lo) = split m{/}, shift;
	return hex($hi) * 2**32 + hex($lo);
}

# Unique change positions acknowledged so far, and checks of what arrived.
sub analyse
{
	my %key_of;       # "lsn:seq" -> key of the batch that carried it
	my %body_of;      # key -> body
	my @order;        # positions in first-arrival order
	my $bad_dup = 0;
	for my $b ($receiver->deliveries)
	{
		next if $b->{key} =~ /^resync-/;    # checked below
		my $body = join("\n", @{ $b->{lines} });
		if (exists $body_of{ $b->{key} })
		{
			if ($body_of{ $b->{key} } ne $body)
			{
				$bad_dup++;
				diag("key $b->{key} carried two bodies") if $bad_dup < 3 && $_[0];
			}
			next;
		}
		$body_of{ $b->{key} } = $body;
		for my $l (@{ $b->{lines} })
		{
			next unless $l =~ /"seq":(\d+),"xid":\d+,"commit_lsn":"([0-9A-F]+\/[0-9A-F]+)"/;
			my $pos = "$2:$1";
			if (exists $key_of{$pos})
			{
				$bad_dup++;    # the same change under two keys
				diag("$pos under keys $key_of{$pos} and $b->{key}") if $bad_dup < 3 && $_[0];
				next;
			}
			$key_of{$pos} = $b->{key};
			push @order, [ lsn_num($2), $1 ];
		}
	}
	my $ordered = 1;
	for my $i (1 .. $#order)
	{
		my ($a, $b) = ($order[ $i - 1 ], $order[$i]);
		$ordered = 0 if $b->[0] < $a->[0] || ($b->[0] == $a->[0] && $b->[1] != $a->[1] + 1);
	}
	return (scalar(@order), $ordered, $bad_dup);
}

sub wait_all_delivered
{
	my ($what) = @_;
	my $n = 0;
	for (1 .. 600)
	{
		($n) = analyse();
		last if $n >= $expected_changes;
		sleep(0.1);
	}
	is($n, $expected_changes, "$what: every change delivered");
}

sub status
{
	return $node->safe_psql('postgres',
		"SELECT consecutive_failures || '|' || coalesce(last_error, '') FROM edgesync.target_status WHERE name = 'cloud_api'");
}

# The worker ships continuously.
workload(10);
wait_all_delivered('worker');
my @batches = $receiver->deliveries;
is($batches[0]{auth}, "Bearer $token", 'bearer token sent');
ok(scalar(@batches) >= 2, 'several batches (batch_changes = 25)');

# Each fault: the receiver sees attempts, the target counts failures, and
# after recovery everything arrives.
for my $fault (qw(fail500 timeout reset))
{
	$receiver->set_mode($fault);
	workload(5);
	my $failing = 0;
	for (1 .. 100)
	{
		my ($failures) = split /\|/, status();
		if ($failures >= 2) { $failing = 1; last }
		sleep(0.1);
	}
	ok($failing, "$fault: target reports consecutive failures");
	ok((grep { /^$fault / } $receiver->attempts), "$fault: receiver saw the attempts");
	$receiver->set_mode('ok');
	wait_all_delivered($fault);
	like(status(), qr/^0\|/, "$fault: failures reset after success");
}

# Slow receiver: no failure, just late.
$receiver->set_mode('slow');
workload(3);
wait_all_delivered('slow');
$receiver->set_mode('ok');

# Receiver down (connection refused), then back on the same port.
$receiver->stop;
workload(5);
sleep(1);
like(status(), qr/^[1-9]\d*\|HTTP request failed: .*(refused|connect)/i, 'down: failure recorded');
$receiver->start;
wait_all_delivered('down and back');

# Immediate shutdown of the hospital while a batch is in flight.
$receiver->set_mode('slow');
my $attempts_before = scalar($receiver->attempts);
workload(5);
for (1 .. 100)
{
	last if scalar($receiver->attempts) > $attempts_before;
	sleep(0.05);
}
$node->stop('immediate');
$receiver->set_mode('ok');
$node->start;
wait_all_delivered('immediate shutdown mid-batch');

# SIGHUP: taking the database off the list stops its workers; back, they ship.
sub shipper_pids
{
	return $node->safe_psql('postgres', q{
		SELECT string_agg(pid::text, ' ') FROM pg_stat_activity
		 WHERE backend_type IN ('edgesync shipper', 'edgesync shipper supervisor')});
}
# The worker of target cloud_api (each target has its own).
sub running_shipper_pid
{
	for (1 .. 200)
	{
		my $pid = $node->safe_psql('postgres',
			"SELECT pid FROM edgesync.target_status WHERE name = 'cloud_api'");
		return $pid if $pid =~ /^\d+$/;
		sleep(0.05);
	}
	die 'no shipper running';
}
$node->append_conf('postgresql.conf', "edgesync.ship_databases = ''");
$node->reload;
my $gone = 0;
for (1 .. 100) { if (shipper_pids() eq '') { $gone = 1; last } sleep(0.1) }
ok($gone, 'SIGHUP: the workers stopped when their database left the list');
workload(2);
$node->append_conf('postgresql.conf', "edgesync.ship_databases = 'postgres'");
$node->reload;
wait_all_delivered('SIGHUP: worker back');

# SIGTERM and a crash (SIGKILL) of the worker: it comes back and ships.
my $pid = running_shipper_pid();
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
workload(2);
wait_all_delivered('after SIGTERM of the worker');
$pid = running_shipper_pid();
kill 'KILL', $pid;
sleep(1);
$node->poll_query_until('postgres', 'SELECT true') or die 'server did not come back';
workload(2);
wait_all_delivered('after the worker crashed');
# One worker for the database and one for each target after the crash
# restart, not those the postmaster would restart beside the ones the
# restarted launcher starts.
sleep(6);    # past the restart delays
is($node->safe_psql('postgres', q{
		SELECT string_agg(backend_type || ' ' || n, ', ' ORDER BY backend_type)
		  FROM (SELECT backend_type, count(*) AS n FROM pg_stat_activity
		         WHERE backend_type LIKE 'edgesync shipper%' GROUP BY 1) w}),
	'edgesync shipper 2, edgesync shipper launcher 1, edgesync shipper supervisor 1',
	'after the crash restart: one shipper for the database and one for each target');

like($node->safe_psql('postgres',
		"SELECT consecutive_failures > 3 AND next_retry IS NOT NULL FROM edgesync.target_status WHERE name = 'dead_one'"),
	qr/^t$/, 'the dead target kept failing, backing off, while the other delivered everything');

my ($n, $ordered, $bad_dup) = analyse(1);
ok($ordered, 'changes arrived in commit order');
is($bad_dup, 0, 'duplicates only as whole batches under the same key');
my %keys;
$keys{ $_->{key} }++ for $receiver->deliveries;
note('batches delivered twice: ' . scalar(grep { $_ > 1 } values %keys));

# A lost slot, and rows deleted meanwhile: resync() sends every current row
# again, between a resync_begin and a resync_end line for the table (which
# tell the receiver that these are all its rows), then streams on.
$node->safe_psql('postgres', q{SELECT edgesync._drop_target_slot('edgesync_cloud_api')});
$node->safe_psql('postgres', q{DELETE FROM hospital_patients WHERE id % 5 = 0});
$node->safe_psql('postgres', q{SELECT edgesync.resync('cloud_api')});
$node->poll_query_until('postgres',
	"SELECT NOT resync_pending FROM edgesync.target_status WHERE name = 'cloud_api'")
  or die 'resync not done';
my @resync_lines = map { @{ $_->{lines} } } grep { $_->{key} =~ /^resync-/ } $receiver->deliveries;
my (@begins, @ends, %resent, $inside, $outside);
for my $l (@resync_lines)
{
	if ($l =~ /^\{"op":"resync_begin","schema":"public","table":"hospital_patients","seq":\d+,"xid":\d+,"commit_lsn":"[^"]+","commit_time":"[^"]+"\}$/)
	{
		push @begins, $l;
		$inside = 1;
	}
	elsif ($l =~ /^\{"op":"resync_end","schema":"public","table":"hospital_patients","rows":(\d+),"seq":\d+,/)
	{
		push @ends, $1;
		$inside = 0;
	}
	elsif ($l =~ /"op":"insert".*"pk":\{"id":(\d+)\}/)
	{
		$inside ? ($resent{$1} = 1) : $outside++;
	}
}
is(scalar(@begins) . '/' . scalar(@ends), '1/1', 'resync: one resync_begin and one resync_end line');
is($outside // 0, 0, 'resync: every row between the markers');
my @current = split /\n/, $node->safe_psql('postgres', 'SELECT id FROM hospital_patients ORDER BY id');
is(join(',', sort { $a <=> $b } keys %resent), join(',', @current),
	'resync: the rows between the markers are exactly the current rows (deleted ones absent)');
is($ends[0], scalar(@current), 'resync: resync_end counts the rows');
workload(2);
wait_all_delivered('streaming after resync');

# A second resync, with a transaction committed after the new slot was
# created but before the re-send (the target is disabled meanwhile and
# shipped by hand): the re-send's lines carry a commit_lsn below the new
# slot's start, so a receiver that skips every transaction whose commit_lsn
# is not above the highest it applied (resync lines included) still applies
# every transaction the new slot streams.  Idempotency-Keys of re-send
# batches are never reused by another re-send.
my @resync_keys_before = map { $_->{key} } grep { $_->{key} =~ /^resync-/ } $receiver->deliveries;
my $delivered_before = scalar($receiver->deliveries);
$node->safe_psql('postgres', q{SELECT edgesync.alter_target('cloud_api', enabled => false)});
$node->safe_psql('postgres', q{SELECT edgesync.resync('cloud_api')});
my $slot_start = lsn_num($node->safe_psql('postgres',
	"SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'edgesync_cloud_api'"));
workload(1);
for (1 .. 100)
{
	$node->safe_psql('postgres', q{SELECT edgesync.ship('cloud_api')});
	last if $node->safe_psql('postgres',
		"SELECT NOT resync_pending FROM edgesync.target_status WHERE name = 'cloud_api'") eq 't';
	sleep(0.1);
}
$node->safe_psql('postgres', q{SELECT edgesync.alter_target('cloud_api', enabled => true)});
workload(1);
wait_all_delivered('streaming after a resync with a commit before the re-send');
my (%accepted, %streamed, %resync_key_seen, @resync_lsns);
my $highest = -1;
my $reused_keys = 0;
my %before = map { $_ => 1 } @resync_keys_before;
for my $b (($receiver->deliveries)[ $delivered_before .. scalar($receiver->deliveries) - 1 ])
{
	my $resync = $b->{key} =~ /^resync-/;
	$reused_keys++ if $resync && $before{ $b->{key} } && !$resync_key_seen{ $b->{key} }++;
	for my $l (@{ $b->{lines} })
	{
		next unless $l =~ /^\{"op":"begin","xid":\d+,"commit_lsn":"([0-9A-F]+\/[0-9A-F]+)"/;
		my $lsn = lsn_num($1);
		if ($resync)
		{
			push @resync_lsns, $lsn;
		}
		else
		{
			$streamed{$lsn} = 1;
			$accepted{$lsn} = 1 if $lsn > $highest;
		}
		$highest = $lsn if $lsn > $highest;
	}
}
ok(@resync_lsns > 0, 'second resync: the re-send was delivered');
is(scalar(grep { $_ >= $slot_start } @resync_lsns), 0,
	'second resync: every re-send line has a commit_lsn below the new slot\'s start');
my @dropped = grep { !$accepted{$_} } keys %streamed;
ok(keys(%streamed) >= 2, 'second resync: streamed transactions delivered after the re-send');
is(scalar(@dropped), 0,
	'second resync: a receiver skipping commit_lsn not above the highest applied drops no streamed transaction');
is($reused_keys, 0, 'second resync: no Idempotency-Key of the first re-send used again');

# Status and the log: no secret anywhere.
my $status = $node->safe_psql('postgres', 'SELECT s::text FROM edgesync.target_status s');
unlike($status, qr/SECRET/, 'no secret in target_status');
my $log = slurp_file($node->logfile);
unlike($log, qr/SECRET/, 'no secret in the server log');
note($_) for grep { /SECRET/ } split /\n/, $log;
like($log, qr/batch_changes must be between/, 'the failing call itself was logged');

$node->stop;
done_testing();
