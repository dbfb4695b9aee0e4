# Targets on their own (issue 18).
#
#  1. Exact figures: ship() and target_status count the same changes for an
#     HTTP receiver and a replica, checked against what each received: an
#     UPDATE that changes the primary key is one change on both kinds (the
#     sql format writes it as a delete and an upsert), a TRUNCATE one, a
#     logical message none; batches_shipped and bytes_shipped are the
#     requests the receiver stored and their bodies, the transactions the
#     replica committed and their query strings; a full re-send counts its
#     rows and batches.
#  2. A hung HTTP receiver (it accepts and never answers) costs the replica
#     target of the same database nothing measurable: the replica's median
#     commit-to-applied latency while the receiver hangs stays within twice
#     (plus 50 ms of scheduling noise) what it is with the replica alone.
#     (With one worker serving both targets in turn, each hung attempt held
#     the replica for the receiver's timeout_ms.)  target_status says what
#     each target's worker is doing: the hung one waits for an answer, the
#     replica's is idle; once the receiver answers again, its error is
#     cleared.  A disabled target has no worker; one whose receiver hangs is
#     dropped at once.
#  3. A database named in edgesync.ship_databases that does not exist: one
#     WARNING naming it, no FATAL restart loop, the other database ships at
#     once after a restart, and once the database is created its shipper
#     starts.
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
my $hospital = edgesync_node('hospital', extra_conf => q{
edgesync.ship_databases = 'postgres'
edgesync.ship_naptime = 50ms
edgesync.ship_retry_min = 50ms
edgesync.ship_retry_max = 200ms
log_statement = none
});

sub median
{
	my @v = sort { $a <=> $b } @_;
	return undef unless @v;
	return @v % 2 ? $v[$#v / 2] : ($v[@v / 2 - 1] + $v[@v / 2]) / 2;
}

# ---------------------------------------------------------------------------
# 1. Exact figures, through ship() in a database no worker serves.

my $visits = q{
	CREATE EXTENSION edgesync;
	CREATE TABLE visits (id int PRIMARY KEY, note text NOT NULL);
	SELECT edgesync.track('visits');
};
$hospital->safe_psql('postgres', 'CREATE DATABASE counts');
$cloud->safe_psql('postgres', 'CREATE DATABASE counts');
$hospital->safe_psql('counts', $visits);
$cloud->safe_psql('counts', $visits);
# Every row the replica writes, with its transaction and the query string
# that carried it: a batch is one transaction and one query string.
$cloud->safe_psql('counts', q{
	CREATE ROLE counts_applier LOGIN IN ROLE edgesync_applier;
	GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON visits TO counts_applier;
	CREATE TABLE audit (xid bigint, query_bytes int);
	CREATE FUNCTION record_audit() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
		SET search_path = public AS $$
	BEGIN
		INSERT INTO audit VALUES (txid_current(), octet_length(current_query()));
		RETURN NULL;
	END $$;
	CREATE TRIGGER record_audit AFTER INSERT OR UPDATE OR DELETE ON visits
		FOR EACH ROW EXECUTE FUNCTION record_audit();
	CREATE TRIGGER record_audit_truncate AFTER TRUNCATE ON visits
		FOR EACH STATEMENT EXECUTE FUNCTION record_audit();
	ALTER TABLE visits ENABLE ALWAYS TRIGGER record_audit;
	ALTER TABLE visits ENABLE ALWAYS TRIGGER record_audit_truncate;
});
my $counts_url = 'postgresql://counts_applier@/counts?host=' . $cloud->host . '&port=' . $cloud->port;
$hospital->safe_psql('counts', "SELECT edgesync.add_target('counts_db', '$counts_url')");
$hospital->safe_psql('counts', "SELECT edgesync.add_target('counts_api', '" . $receiver->url('/counts') . "')");

# Ships to both targets; returns "http_changes replica_changes" as ship() says.
# The replica's batches as one query string each (binary runs, which go as a
# pipeline of statements, are counted the same way in 313).
sub ship_both
{
	return $hospital->safe_psql('counts',
		q{SET edgesync.ship_binary_runs = off;
		  SELECT edgesync.ship('counts_api') || ' ' || edgesync.ship('counts_db')});
}

my @steps = (
	[ 'two inserts', q{INSERT INTO visits VALUES (1, 'a'), (2, 'b')}, 2 ],
	[ 'an update of the key', q{UPDATE visits SET id = 10 WHERE id = 1}, 1 ],
	[ 'mixed, with key updates', q{
		BEGIN;
		UPDATE visits SET id = 20 WHERE id = 2;
		UPDATE visits SET note = 'c' WHERE id = 10;
		DELETE FROM visits WHERE id = 20;
		INSERT INTO visits VALUES (3, 'd');
		UPDATE visits SET id = id + 100;
		COMMIT;}, 6 ],
	[ 'an insert and a message', q{
		BEGIN;
		INSERT INTO visits VALUES (4, 'e');
		SELECT pg_logical_emit_message(true, 'app', 'not a change');
		COMMIT;}, 1 ],
	[ 'a truncate', q{TRUNCATE visits}, 1 ],
	[ 'inserts after it', q{INSERT INTO visits SELECT g, 'f' FROM generate_series(200, 204) g}, 5 ],
);
my $expected = 0;
for my $step (@steps)
{
	my ($what, $sql, $changes) = @$step;
	$hospital->safe_psql('counts', $sql);
	is(ship_both(), "$changes $changes", "ship() counts $what as $changes on both kinds");
	$expected += $changes;
}

sub figures
{
	my ($target) = @_;
	return $hospital->safe_psql('counts', qq{
		SELECT changes_shipped || ' ' || batches_shipped || ' ' || bytes_shipped
		  FROM edgesync.target_status WHERE name = '$target'});
}

# What the HTTP receiver stored: changes are the lines that are not begin,
# commit or message lines; a batch one request; its bytes its body's.
sub received
{
	my ($key_pattern) = @_;
	my ($changes, $batches, $bytes) = (0, 0, 0);
	for my $b (grep { $_->{key} =~ $key_pattern } $receiver->deliveries)
	{
		$batches++;
		$bytes += length($_) + 1 for @{ $b->{lines} };
		$changes += grep { /^\{"op":"(insert|update|delete|truncate)"/ } @{ $b->{lines} };
	}
	return ($changes, $batches, $bytes);
}
my ($changes, $batches, $bytes) = received(qr/^\d/);
is($changes, $expected, "the HTTP receiver got $expected changes");
is(figures('counts_api'), "$expected $batches $bytes",
	'HTTP target: changes, batches and bytes are what the receiver stored');

my ($replica_batches, $replica_bytes) = split / /, $cloud->safe_psql('counts', q{
	SELECT count(*) || ' ' || sum(query_bytes)
	  FROM (SELECT DISTINCT xid, query_bytes FROM audit) b});
is(figures('counts_db'), "$expected $replica_batches $replica_bytes",
	'replica target: the same changes; batches and bytes are the transactions and query strings it committed');
is($cloud->safe_psql('counts', q{SELECT string_agg(id || note, ',' ORDER BY id) FROM visits}),
	$hospital->safe_psql('counts', q{SELECT string_agg(id || note, ',' ORDER BY id) FROM visits}),
	'the replica equals the source');

# A full re-send counts its rows and its batches (the HTTP receiver's).
$hospital->safe_psql('counts', q{SELECT edgesync.resync('counts_api')});
$hospital->safe_psql('counts', q{SELECT edgesync.resync('counts_db')});
is(ship_both(), '5 5', 'ship() counts a full re-send as its rows');
my ($resync_changes, $resync_batches, $resync_bytes) = received(qr/^resync-/);
is(figures('counts_api'),
	($expected + $resync_changes) . ' ' . ($batches + $resync_batches) . ' ' . ($bytes + $resync_bytes),
	'HTTP target: a re-send adds its rows, requests and bytes');
like(figures('counts_db'), qr/^@{[$expected + 5]} @{[$replica_batches + 1]} \d+$/,
	'replica target: a re-send adds its rows and its batch');

# ---------------------------------------------------------------------------
# 2. A hung receiver and a replica in one database.

my $patients = q{
	CREATE EXTENSION edgesync;
	CREATE TABLE hospital_patients (id int PRIMARY KEY, name text NOT NULL,
	                                written_at timestamptz NOT NULL DEFAULT clock_timestamp());
	SELECT edgesync.track('hospital_patients');
};
$hospital->safe_psql('postgres', $patients);
$cloud->safe_psql('postgres', $patients);
# Latency of each row: from its write on the hospital to its apply on the
# replica (both servers read the same clock).
$cloud->safe_psql('postgres', q{
	CREATE TABLE latency (id int, seconds float8);
	CREATE FUNCTION record_latency() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
		SET search_path = public AS $$
	BEGIN
		INSERT INTO latency VALUES (NEW.id, extract(epoch FROM clock_timestamp() - NEW.written_at));
		RETURN NULL;
	END $$;
	CREATE TRIGGER record_latency AFTER INSERT ON hospital_patients
		FOR EACH ROW EXECUTE FUNCTION record_latency();
	ALTER TABLE hospital_patients ENABLE ALWAYS TRIGGER record_latency;
});
my $url = edgesync_applier_url($cloud, ['hospital_patients']);
$hospital->safe_psql('postgres', "SELECT edgesync.add_target('cloud_db', '$url')");

my $writer = $hospital->background_psql('postgres');
my $next_id = 1;

# Writes one row a transaction, every 150 ms; returns the median latency of
# those rows on the replica, in seconds.
sub median_latency
{
	my ($rows) = @_;
	my $first = $next_id;
	for (1 .. $rows)
	{
		$writer->query_safe("INSERT INTO hospital_patients (id, name) VALUES ($next_id, 'p')");
		$next_id++;
		sleep(0.15);
	}
	my $last = $next_id - 1;
	$cloud->poll_query_until('postgres', "SELECT count(*) = $rows FROM latency WHERE id BETWEEN $first AND $last")
	  or die "rows $first to $last not applied";
	return median(split /\n/, $cloud->safe_psql('postgres',
		"SELECT seconds FROM latency WHERE id BETWEEN $first AND $last"));
}

median_latency(5);    # the worker is up and connected
my $alone = median_latency(30);

$receiver->set_mode('hang');
my $partner_from = $next_id;
$hospital->safe_psql('postgres', "SELECT edgesync.add_target('partner', '"
	  . $receiver->url('/partner') . "', timeout_ms => 2000)");
$writer->query_safe("INSERT INTO hospital_patients (id, name) VALUES ($next_id, 'p')");
$next_id++;
for (1 .. 200)
{
	last if grep { /^hang/ } $receiver->attempts;
	sleep(0.05);
}
ok((grep { /^hang/ } $receiver->attempts), 'the partner\'s receiver hangs');
my $hung = median_latency(30);
note(sprintf('replica median latency: %.0f ms alone, %.0f ms beside a hung receiver',
	$alone * 1000, $hung * 1000));
cmp_ok($hung, '<=', 2 * $alone + 0.05,
	'a hung receiver: the replica keeps its latency (within 2x + 50 ms of the replica alone)');

# What each target's worker is doing, and when it last tried.
ok($hospital->poll_query_until('postgres', q{
	SELECT state = 'waiting for answer' AND state_since < now() AND pid IS NOT NULL
	  FROM edgesync.target_status WHERE name = 'partner'}),
	'target_status: the partner waits for an answer, since when, in which process');
ok($hospital->poll_query_until('postgres', q{
	SELECT consecutive_failures > 0 AND last_attempt IS NOT NULL AND last_error_cleared_at IS NULL
	       AND last_error LIKE 'HTTP request failed: %'
	  FROM edgesync.target_status WHERE name = 'partner'}),
	'target_status: the partner\'s timeouts are failures, not cleared');
is($hospital->safe_psql('postgres', q{
	SELECT state || ' ' || consecutive_failures || ' ' || (a.pid <> b.pid)
	  FROM edgesync.target_status a, (SELECT pid FROM edgesync.target_status WHERE name = 'partner') b
	 WHERE a.name = 'cloud_db'}),
	'idle 0 true', 'target_status: the replica\'s worker, another process, is idle and healthy');
is($hospital->safe_psql('postgres', q{
	SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'edgesync shipper'}),
	'2', 'one shipper process per target');

# The receiver answers again: everything arrives, and the error is cleared.
$receiver->set_mode('ok');
ok($hospital->poll_query_until('postgres', qq{
	SELECT changes_shipped = @{[$next_id - $partner_from]} AND consecutive_failures = 0
	       AND last_error_cleared_at > last_error_at AND state = 'idle'
	  FROM edgesync.target_status WHERE name = 'partner'}),
	'the partner catches up; last_error_cleared_at says its error is over');

# Disabled: its worker stops, and target_status says why nothing ships.
$hospital->safe_psql('postgres', q{SELECT edgesync.alter_target('partner', enabled => false)});
ok($hospital->poll_query_until('postgres', q{
	SELECT state = 'disabled' AND pid IS NULL FROM edgesync.target_status WHERE name = 'partner'}),
	'a disabled target has no worker');

# A target whose receiver hangs is dropped at once: its worker, which holds
# the slot while it waits, is ended (before, drop_target waited 10 s for the
# slot and failed).
$receiver->set_mode('hang');
$hospital->safe_psql('postgres', q{SELECT edgesync.alter_target('partner', enabled => true, timeout_ms => 30000)});
$writer->query_safe("INSERT INTO hospital_patients (id, name) VALUES ($next_id, 'p')");
$next_id++;
ok($hospital->poll_query_until('postgres', q{
	SELECT state = 'waiting for answer' FROM edgesync.target_status WHERE name = 'partner'}),
	'the partner hangs again');
my $t_drop = time();
my ($drop_rc, $drop_out, $drop_err) = $hospital->psql('postgres', q{SELECT edgesync.drop_target('partner')});
$t_drop = time() - $t_drop;
is($drop_rc, 0, 'drop_target of a target whose receiver hangs succeeds') or diag($drop_err);
cmp_ok($t_drop, '<', 5, sprintf('... in %.1f s, not after the receiver\'s timeout', $t_drop));
$receiver->set_mode('ok');
$writer->quit;

# ---------------------------------------------------------------------------
# 3. A database that does not exist in edgesync.ship_databases.

$hospital->safe_psql('postgres', q{
	ALTER SYSTEM SET edgesync.ship_databases = '';
	SELECT pg_reload_conf();
});
$hospital->poll_query_until('postgres', q{
	SELECT count(*) = 0 FROM pg_stat_activity
	 WHERE backend_type IN ('edgesync shipper', 'edgesync shipper supervisor')})
  or die 'workers did not stop';
is($hospital->safe_psql('postgres', q{SELECT state FROM edgesync.target_status WHERE name = 'cloud_db'}),
	'no worker (database not in edgesync.ship_databases)',
	'target_status: no worker serves the database, and it says why');
$hospital->safe_psql('postgres', "INSERT INTO hospital_patients (id, name) VALUES ($next_id, 'after restart')");
$hospital->safe_psql('postgres', q{
	ALTER SYSTEM SET edgesync.ship_databases = 'no_such_db, postgres';
	ALTER SYSTEM SET edgesync.ship_retry_max = '300ms';
});
my $log_start = -s $hospital->logfile;
$hospital->restart;
my $t0 = time();
$cloud->poll_query_until('postgres', "SELECT count(*) = 1 FROM hospital_patients WHERE id = $next_id")
  or die 'not shipped after the restart';
my $first_shipping = time() - $t0;
cmp_ok($first_shipping, '<', 3, sprintf('the other database ships at once (%.1f s after the restart)', $first_shipping));
sleep(3);    # about ten lookups at the backoff pace
my $log = substr(slurp_file($hospital->logfile), $log_start);
my @warnings = $log =~ /WARNING:  database "no_such_db" named in edgesync.ship_databases does not exist/g;
is(scalar(@warnings), 1, 'the missing database: one WARNING naming it');
unlike($log, qr/FATAL:  database "no_such_db" does not exist/, 'the missing database: no FATAL restart loop');

$hospital->safe_psql('postgres', 'CREATE DATABASE no_such_db');
ok($hospital->poll_query_until('postgres', q{
	SELECT count(*) = 1 FROM pg_stat_activity
	 WHERE backend_type = 'edgesync shipper supervisor' AND datname = 'no_such_db'}),
	'once the database exists, its shipper starts');
ok(substr(slurp_file($hospital->logfile), $log_start)
	  =~ /database "no_such_db" named in edgesync.ship_databases takes connections now/,
	'and the log says so');

$hospital->stop;
$cloud->stop;
$receiver->stop;
done_testing();
