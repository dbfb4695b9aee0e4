# Federated views across two clusters: a hospital (tracked tables) and the
# cloud (a replica of them), queried through edgesync.federate()'s view.
# The freshest version wins in both directions, deleted rows disappear,
# redacted columns come from the live row, filters reach the hospital, and a
# hospital that is down, hung, or dies in the middle of a query costs a
# WARNING, never the caller's transaction.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep usleep time);
use FindBin;
use lib "$FindBin::RealBin/../perl";
use EdgesyncTest;

my $hospital = edgesync_node('hospital');
my $cloud = edgesync_node('cloud');

$hospital->safe_psql('postgres', q{
	CREATE EXTENSION edgesync;
	CREATE TABLE hospital_patients (id int PRIMARY KEY, name text, ward text);
	SELECT edgesync.track('hospital_patients');
	INSERT INTO hospital_patients (id, name, ward)
	SELECT g, 'patient ' || g, CASE WHEN g % 2 = 0 THEN 'A' ELSE 'B' END FROM generate_series(1, 100) g;
	-- The same rows, slowly: lets the test kill the hospital in the middle of a query.
	CREATE VIEW slow_patients AS SELECT p.* FROM hospital_patients p, pg_sleep(60) s;
});

# The replica: the hospital's definition, rows copied as the stream would
# (here with name redacted, i.e. NULL, for patient 4).
my $ddl = q{CREATE TABLE hospital_patients (id int PRIMARY KEY, name text, ward text,
	version bigint NOT NULL DEFAULT 1, created_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now())};
my $rows = $hospital->safe_psql('postgres', q{
	SELECT string_agg(format('(%s, %L, %L, %s, %L, %L)', id, CASE WHEN id = 4 THEN NULL ELSE name END,
	                         ward, version, created_at, updated_at), ', ' ORDER BY id)
	  FROM hospital_patients});
my $host = $hospital->host;
my $port = $hospital->port;
$cloud->safe_psql('postgres', qq{
	CREATE EXTENSION edgesync;
	CREATE EXTENSION postgres_fdw;
	CREATE SERVER hospital FOREIGN DATA WRAPPER postgres_fdw
	  OPTIONS (host '$host', port '$port', dbname 'postgres');
	CREATE USER MAPPING FOR CURRENT_USER SERVER hospital;
	$ddl;
	INSERT INTO hospital_patients VALUES $rows;
	CREATE TABLE audit (note text);
});
is($cloud->safe_psql('postgres', q{SELECT edgesync.federate('hospital_patients', 'hospital')}),
	'hospital_patients_federated', 'federate() creates the view');
is($cloud->safe_psql('postgres', q{SELECT edgesync.federate('hospital_patients', 'hospital')}),
	'hospital_patients_federated', 'federate() again replaces it');

# A user mapping's password never shows: not in the error, its DETAIL, a
# WARNING, nor the cloud's server log (libpq's reason names host and port only).
{
	my $secret = 'sekrit-7f3a9c';
	$cloud->safe_psql('postgres', qq{
		CREATE ROLE regress_secret_owner;
		GRANT edgesync_admin TO regress_secret_owner;
		CREATE SERVER regress_secret FOREIGN DATA WRAPPER postgres_fdw
		  OPTIONS (host '$host', port '$port', dbname 'postgres');
		GRANT USAGE ON FOREIGN SERVER regress_secret TO regress_secret_owner;
		CREATE USER MAPPING FOR regress_secret_owner SERVER regress_secret
		  OPTIONS (user 'regress_no_such_role', password '$secret');
	});
	# (log_statement shows the CREATE USER MAPPING above: read the log after it.)
	my $log_offset = -s $cloud->logfile;
	my ($ret, $out, $err) = $cloud->psql('postgres', q{
		SET ROLE regress_secret_owner;
		SELECT * FROM edgesync._remote_columns('regress_secret', 'public', 'hospital_patients');
	}, extra_params => ['-v', 'VERBOSITY=verbose']);
	like($err, qr/could not read the hospital's table/, 'a refused mapping is an error');
	like($err, qr/regress_no_such_role/, "its detail gives libpq's reason");
	unlike($err, qr/\Q$secret\E/, 'the error does not show the password');
	my $log = slurp_file($cloud->logfile, $log_offset);
	unlike($log, qr/\Q$secret\E/, 'the server log does not show the password');
	$cloud->safe_psql('postgres', q{
		DROP SERVER regress_secret CASCADE;
		DROP OWNED BY regress_secret_owner;
		DROP ROLE regress_secret_owner;
	});
}

# Changes on both sides since the replica was copied.
$hospital->safe_psql('postgres', q{
	UPDATE hospital_patients SET ward = 'ICU' WHERE id = 1;             -- hospital fresher
	DELETE FROM hospital_patients WHERE id = 3;                           -- deleted at the hospital
	INSERT INTO hospital_patients (id, name, ward) VALUES (101, 'new', 'A'); -- not replicated yet
});
$cloud->safe_psql('postgres', q{
	UPDATE hospital_patients SET ward = 'X-RAY', version = 7 WHERE id = 2; -- replica fresher
});

sub fed
{
	my ($sql) = @_;
	return $cloud->safe_psql('postgres', $sql);
}

is(fed(q{SELECT ward || '/' || _source || '/' || _version FROM hospital_patients_federated WHERE id = 1}),
	'ICU/hospital/2', 'the hospital wins with the higher version');
is(fed(q{SELECT ward || '/' || _source || '/' || _version FROM hospital_patients_federated WHERE id = 2}),
	'X-RAY/replica/7', 'the replica wins with the higher version');
is(fed(q{SELECT count(*) FROM hospital_patients_federated WHERE id = 3}), '0',
	'a row deleted at the hospital is gone');
is(fed(q{SELECT _source FROM hospital_patients_federated WHERE id = 101}), 'hospital',
	'a row only the hospital has is there');
is(fed(q{SELECT name || '/' || _source FROM hospital_patients_federated WHERE id = 4}),
	'patient 4/hospital', 'a redacted column is filled from the live row');
is(fed(q{SELECT count(*) || '/' || count(*) FILTER (WHERE _source = 'replica') FROM hospital_patients_federated}),
	'100/1', 'the whole view: 99 live rows and one fresher replica row');
# A filter on an ordinary column: the row whose fresher version no longer matches is not shown.
is(fed(q{SELECT string_agg(id::text, ',' ORDER BY id) FROM hospital_patients_federated WHERE ward = 'B' AND id < 6}),
	'5', 'a filter applies to the freshest row only');
is(fed(q{SELECT string_agg(id::text, ',' ORDER BY id) FROM hospital_patients_federated WHERE ward = 'X-RAY'}),
	'2', 'a filter matching only the fresher replica row');

# Pushdown: the hospital receives the filter.
my $plan = fed(q{EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM hospital_patients_federated WHERE id = 42});
like($plan, qr/Remote SQL: SELECT .* FROM public\.hospital_patients WHERE \(id OPERATOR\(pg_catalog\.=\) '42'::integer\)/,
	'a one-patient query is sent with its WHERE');
$plan = fed(q{EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM hospital_patients_federated WHERE ward = 'A' AND id > 10});
like($plan, qr/Remote SQL: .*WHERE .*\(ward OPERATOR\(pg_catalog\.=\) 'A'::pg_catalog\.text\)/,
	'filters on ordinary columns too');
$hospital->safe_psql('postgres', q{SELECT pg_stat_reset(); SELECT pg_stat_force_next_flush()});
fed(q{SELECT * FROM hospital_patients_federated WHERE id = 42});
$hospital->poll_query_until('postgres', q{SELECT coalesce(idx_scan, 0) > 0 FROM pg_stat_user_tables WHERE relname = 'hospital_patients'});
is($hospital->safe_psql('postgres', q{SELECT coalesce(seq_tup_read, 0) FROM pg_stat_user_tables WHERE relname = 'hospital_patients'}),
	'0', 'the hospital read one patient by index, not the whole table');
my $generic = $cloud->safe_psql('postgres', q{
	SET plan_cache_mode = force_generic_plan;
	PREPARE one(int) AS SELECT ward FROM hospital_patients_federated WHERE id = $1;
	EXPLAIN (VERBOSE, COSTS OFF) EXECUTE one(1);
	EXECUTE one(1);
});
like($generic, qr/WHERE \(id OPERATOR\(pg_catalog\.=\) \$1::integer\).*\nICU$/s,
	'a parameter is pushed down too');

# A join: one patient per outer row, asked for in a parameterized nested loop.
$plan = $cloud->safe_psql('postgres', q{
	CREATE TABLE visits (id int PRIMARY KEY, patient_id int);
	INSERT INTO visits SELECT g, g * 3 FROM generate_series(1, 30) g;
	ANALYZE visits, hospital_patients;
	EXPLAIN (VERBOSE, COSTS OFF)
	SELECT v.id, p.ward, p._source FROM visits v JOIN hospital_patients_federated p ON p.id = v.patient_id
	 WHERE v.id = 2;
});
# (The planner writes the clause either way round: 16 and later put the
# inner column first.)
like($plan,
	qr/Nested Loop.*Remote SQL: .*WHERE \((\$1::integer OPERATOR\(pg_catalog\.=\) id|id OPERATOR\(pg_catalog\.=\) \$1::integer)\)/s,
	'a join clause is sent as a parameter');
is(fed(q{SELECT v.id || '/' || p.ward || '/' || p._source FROM visits v
	JOIN hospital_patients_federated p ON p.id = v.patient_id WHERE v.id IN (1, 2) ORDER BY 1}),
	'2/A/hospital', 'and the join answers (patient 3 was deleted at the hospital)');

# The hospital stopped: the replica answers, with a WARNING, at once.
$hospital->stop('fast');
my ($out, $err) = ('', '');
my $t0 = time;
$cloud->psql('postgres', q{SELECT count(*) || '/' || count(*) FILTER (WHERE _source = 'replica') FROM hospital_patients_federated},
	stdout => \$out, stderr => \$err);
my $elapsed = time - $t0;
is($out, '100/100', 'hospital down: the replica answers alone');
like($err, qr/WARNING:  hospital server "hospital" is unreachable: answering from the replica alone/,
	'with a WARNING');
cmp_ok($elapsed, '<', 5, 'at once (refused connection)');
is(fed(q{SELECT ward || '/' || _source FROM hospital_patients_federated WHERE id = 3}), 'B/replica',
	'hospital down: a row deleted there is still shown from the replica');
$cloud->psql('postgres', q{SET enable_hashjoin = off; SET enable_mergejoin = off; SET enable_material = off;
	SELECT count(*) FROM visits v JOIN hospital_patients_federated p ON p.id = v.patient_id},
	stdout => \$out, stderr => \$err);
is($out, '30', 'hospital down: a nested loop answers from the replica');
is(scalar(() = $err =~ /WARNING:/g), 1, 'with one WARNING, not one per outer row');

# The hospital back: live again, with the cached connection replaced.
$hospital->start;
is(fed(q{SELECT ward || '/' || _source FROM hospital_patients_federated WHERE id = 1}), 'ICU/hospital',
	'hospital back: live again');

# A session's cached connection does not outlive a hospital restart: the
# next query notices the closed connection and connects again.
{
	my $s = $cloud->background_psql('postgres', on_error_stop => 0);
	is($s->query_safe(q{SELECT _source FROM hospital_patients_federated WHERE id = 1}), 'hospital',
		'a session reads the hospital');
	$hospital->restart;    # pg_ctl's default mode, fast
	$s->{stderr} = '';
	is($s->query(q{SELECT _source FROM hospital_patients_federated WHERE id = 1}), 'hospital',
		'after the hospital restarted, the same session reads it again');
	unlike($s->{stderr}, qr/WARNING/, 'without a WARNING');
	$s->quit;
}

# A hung hospital (its postmaster stopped, so a connection is never answered):
# the connect timeout bounds the wait.
my $pid = (split /\n/, slurp_file($hospital->data_dir . '/postmaster.pid'))[0];
kill 'STOP', $pid;
$t0 = time;
$cloud->psql('postgres', q{SET edgesync.federate_connect_timeout = '500ms';
	SELECT count(*) FROM hospital_patients_federated WHERE id = 1},
	stdout => \$out, stderr => \$err);
$elapsed = time - $t0;
kill 'CONT', $pid;
is($out, '1', 'hung hospital: the replica answers');
like($err, qr/no connection within 500 ms/, 'after the connect timeout');
cmp_ok($elapsed, '<', 3, 'within the timeout, not hanging');

# A hospital that stops answering mid-query: the query timeout bounds it too.
fed(q{SELECT edgesync.federate('hospital_patients', 'hospital', 'public', 'slow_patients', 'slow_federated')});
$t0 = time;
$cloud->psql('postgres', q{SET edgesync.federate_query_timeout = '1s';
	SELECT count(*) FROM slow_federated WHERE id = 1},
	stdout => \$out, stderr => \$err);
$elapsed = time - $t0;
is($out, '1', 'slow hospital: the replica answers');
like($err, qr/WARNING:  hospital server "hospital" is unreachable/, 'with a WARNING');
cmp_ok($elapsed, '<', 5, 'after the query timeout');

# A cancel request is served while waiting for the hospital, and the session
# goes on with a fresh connection: a count(*) sent to the hospital, and a
# whole read (merged in key order).
for my $query ('SELECT count(*) FROM slow_federated', 'SELECT max(name) FROM slow_federated')
{
	my $s = $cloud->background_psql('postgres', on_error_stop => 0);
	my $pid = $s->query_safe('SELECT pg_backend_pid()');
	$pid =~ s/\s+//g;
	$s->query_until(qr/started/, "\\echo started\n$query;\n\\echo __cancelled__\n");
	$hospital->poll_query_until('postgres', q{
		SELECT count(*) > 0 FROM pg_stat_activity
		 WHERE application_name = 'edgesync_federate' AND wait_event = 'PgSleep'})
	  or die "the remote query never started";
	$t0 = time;
	$cloud->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
	$s->query_until(qr/__cancelled__/, '');
	$elapsed = time - $t0;
	like($s->{stderr}, qr/canceling statement due to user request/, "$query: a cancel stops the wait for the hospital");
	cmp_ok($elapsed, '<', 5, "$query: at once");
	# The abandoned query ends at the hospital too (it checks its client every
	# second), long before its 30 s statement_timeout or its 60 s sleep.
	my $ended = 0;
	for (1 .. 100)
	{
		$ended = $hospital->safe_psql('postgres', q{
			SELECT count(*) = 0 FROM pg_stat_activity
			 WHERE application_name = 'edgesync_federate' AND wait_event = 'PgSleep'}) eq 't';
		last if $ended;
		sleep(0.1);
	}
	ok($ended, "$query: the hospital ends the abandoned query within 10 s");
	$s->{stderr} = '';
	is($s->query_safe(q{SELECT ward || '/' || _source FROM hospital_patients_federated WHERE id = 1}),
		"ICU/hospital", "$query: the session then reads the hospital again");
	$s->quit;
}

# The hospital dies in the middle of a query, inside a transaction that also
# writes locally: the query answers from the replica and COMMIT succeeds.
# Without a filter the scan merges in key order (the hospital's rows spooled),
# with one in memory: both are tried.
sub midquery_death
{
	my ($how, $kill, $where) = @_;
	my $s = $cloud->background_psql('postgres', on_error_stop => 0);
	$s->query_safe('BEGIN');
	$s->query_safe(qq{INSERT INTO audit VALUES ('$how')});
	$s->query_until(qr/started/, qq{
\\echo started
SELECT count(*) || '/' || count(*) FILTER (WHERE _source = 'replica') AS answer FROM slow_federated $where;
\\echo __query_done__
});
	$hospital->poll_query_until('postgres', q{
		SELECT count(*) > 0 FROM pg_stat_activity
		 WHERE application_name = 'edgesync_federate' AND wait_event = 'PgSleep'})
	  or die "the remote query never started";
	$kill->();
	my $answer = $s->query_until(qr/__query_done__/, '');
	like($answer, qr/100\/100/, "$how: the replica answered");
	like($s->{stderr}, qr/WARNING:  hospital server "hospital" is unreachable/, "$how: with a WARNING");
	$s->{stderr} = '';
	$s->query_until(qr/__committed__/, "COMMIT;\n\\echo __committed__\n");
	unlike($s->{stderr}, qr/ERROR/, "$how: COMMIT succeeds");
	$s->quit;
	is($cloud->safe_psql('postgres', qq{SELECT count(*) FROM audit WHERE note = '$how'}), '1',
		"$how: the local write persists");
}

for my $where ('', 'WHERE id > 0')
{
	my $merge = $where ? 'in memory' : 'in key order';
	midquery_death("remote backend terminated, merge $merge", sub {
		$hospital->safe_psql('postgres', q{
			SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			 WHERE application_name = 'edgesync_federate' AND wait_event = 'PgSleep'});
	}, $where);
	midquery_death("hospital shut down (immediate), merge $merge", sub { $hospital->stop('immediate') },
		$where);
	$hospital->start;
}

# unfederate() removes the view and the table under it.
fed(q{SELECT edgesync.unfederate('slow_federated')});
is(fed(q{SELECT count(*) FROM pg_class WHERE relname LIKE 'slow_federated%'}), '0',
	'unfederate() drops the view and its foreign table');
is(fed(q{SELECT count(*) FROM edgesync.federations}), '1', 'and its catalog row');

$cloud->stop;
$hospital->stop;
done_testing();
