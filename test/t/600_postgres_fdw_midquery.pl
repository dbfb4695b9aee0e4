# Why federation does not use postgres_fdw alone: on PostgreSQL 15, a
# postgres_fdw query whose remote server dies mid-query fails the enclosing
# local transaction at COMMIT, even when the error was caught in a
# subtransaction (postgres_fdw's remote transaction is tied to the local one).
# This test pins down that behaviour so that docs/federation.md stays honest:
# if a future release fixes it, this test fails and the design can be revisited.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use FindBin;
use lib "$FindBin::RealBin/../perl";
use EdgesyncTest;

my $hospital = edgesync_node('hospital');
my $cloud = edgesync_node('cloud');

$hospital->safe_psql('postgres', q{
	CREATE TABLE hospital_patients (id int PRIMARY KEY, name text);
	INSERT INTO hospital_patients SELECT g, 'p' || g FROM generate_series(1, 10) g;
	-- A query on this view sleeps, so the test can kill the server under it.
	CREATE VIEW slow_patients AS SELECT p.* FROM hospital_patients p, pg_sleep(30) s;
});
my $host = $hospital->host;
my $port = $hospital->port;
$cloud->safe_psql('postgres', qq{
	CREATE EXTENSION postgres_fdw;
	CREATE SERVER hospital FOREIGN DATA WRAPPER postgres_fdw
	  OPTIONS (host '$host', port '$port', dbname 'postgres');
	CREATE USER MAPPING FOR CURRENT_USER SERVER hospital;
	CREATE FOREIGN TABLE slow_patients (id int, name text) SERVER hospital;
	CREATE TABLE audit (note text);
});

# run_case(name, handler): a transaction writes locally, then a PL/pgSQL
# block (a subtransaction) queries the hospital, which is killed mid-query;
# handler is the rest of the block's EXCEPTION clause.
sub run_case
{
	my ($name, $handler) = @_;
	my $s = $cloud->background_psql('postgres', on_error_stop => 0);
	$s->query_safe('\\set VERBOSITY verbose');
	$s->query_safe('BEGIN');
	$s->query_safe(qq{INSERT INTO audit VALUES ('$name')});
	$s->query_until(qr/started/, qq{
\\echo started
DO \$\$
BEGIN
	PERFORM count(*) FROM slow_patients;
EXCEPTION WHEN OTHERS THEN
	RAISE WARNING 'caught: % %', SQLSTATE, SQLERRM;
	$handler
END
\$\$;
});

	# Wait until the remote query is running, then kill its backend.
	my $killed = 0;
	for (1 .. 100)
	{
		$killed = $hospital->safe_psql('postgres', q{
			SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			 WHERE application_name = 'postgres_fdw'
			   AND backend_type = 'client backend' AND wait_event = 'PgSleep'});
		last if $killed;
		usleep(100_000);
	}
	is($killed, '1', "$name: the remote query was killed mid-query");

	$s->query_until(qr/__done__/, "COMMIT;\n\\echo __done__\n");
	my $err = $s->{stderr};
	$s->quit;
	like($err, qr/caught: 08/, "$name: the error was caught in the subtransaction");
	like($err, qr/ERROR:  08000: /, "$name: yet COMMIT fails with SQLSTATE 08000");
	is($cloud->safe_psql('postgres', qq{SELECT count(*) FROM audit WHERE note = '$name'}), '0',
		"$name: and the local work of the transaction is lost");
	note("COMMIT said: $err");
}

# (a) postgres_fdw alone.
run_case('caught', '');
# (b) Repairing postgres_fdw's state from outside does not help: it refuses
# to close a connection the transaction has used, and still fails at COMMIT.
run_case('caught and disconnected', q{PERFORM postgres_fdw_disconnect_all();});

$cloud->stop;
$hospital->stop;
done_testing();
