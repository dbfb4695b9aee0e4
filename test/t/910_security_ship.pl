# Security of the shipper (issue 17), each attack reproduced on real
# clusters.
#
#  1. Operators in public: a role with CREATE on public defines
#     public.*(bigint, interval) and public.#>>(jsonb, text), which the
#     worker's bookkeeping of a failing target (as the bootstrap superuser)
#     and its reading of a target's headers would pick under the default
#     search_path.  The worker runs with search_path = pg_catalog, pg_temp,
#     as ship() does, and its queries name their operators: they never run.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);
use FindBin;
use lib "$FindBin::RealBin/../perl";
use EdgesyncReceiver;
use EdgesyncTest;

my $hospital = edgesync_node('hospital', extra_conf => q{
edgesync.ship_databases = 'postgres'
edgesync.ship_naptime = 50ms
edgesync.ship_retry_min = 50ms
edgesync.ship_retry_max = 300ms
log_statement = none
});

my $superuser = $hospital->safe_psql('postgres', 'SELECT current_user');
my $sock = $hospital->host;
my $port = $hospital->port;

$hospital->safe_psql('postgres', q{
	CREATE EXTENSION edgesync;
	CREATE TABLE hospital_patients (id int PRIMARY KEY, name text NOT NULL, ward text);
	SELECT edgesync.track('hospital_patients');
	CREATE ROLE mallory LOGIN IN ROLE edgesync_admin;
	GRANT CREATE ON SCHEMA public TO mallory;
	CREATE ROLE watcher LOGIN IN ROLE edgesync_reader;
});

# psql as ROLE; returns (exit code, stdout, stderr).
sub psql_as
{
	my ($role, $sql) = @_;
	my ($rc, $out, $err) = $hospital->psql('postgres', $sql,
		extra_params => [ '-U', $role, '-v', 'VERBOSITY=verbose' ]);
	return ($rc, $out, $err);
}

my ($rc, $out, $err);

sub is_superuser
{
	my ($role) = @_;
	return $hospital->safe_psql('postgres', "SELECT rolsuper FROM pg_roles WHERE rolname = '$role'");
}

# ---------------------------------------------------------------------------
# 1. Operators in public, run by the worker's bookkeeping.

$hospital->safe_psql('postgres', q{
	CREATE ROLE eve LOGIN;
	GRANT CREATE ON SCHEMA public TO eve;
	CREATE TABLE operator_ran (who text, op text);
	GRANT INSERT ON operator_ran TO PUBLIC;
});
($rc, $out, $err) = psql_as('eve', q{
	CREATE FUNCTION public.eve_times(bigint, interval) RETURNS interval LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO public.operator_ran VALUES (current_user, '*');
		BEGIN
			ALTER ROLE eve SUPERUSER;
		EXCEPTION WHEN insufficient_privilege THEN NULL;
		END;
		RETURN $1::float8 * $2;
	END $$;
	CREATE OPERATOR public.* (FUNCTION = public.eve_times, LEFTARG = bigint, RIGHTARG = interval);
	CREATE FUNCTION public.eve_path(jsonb, text) RETURNS text LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO public.operator_ran VALUES (current_user, '#>>');
		BEGIN
			ALTER ROLE eve SUPERUSER;
		EXCEPTION WHEN insufficient_privilege THEN NULL;
		END;
		RETURN $1 #>> '{}'::text[];
	END $$;
	CREATE OPERATOR public.#>> (FUNCTION = public.eve_path, LEFTARG = jsonb, RIGHTARG = text);
});
is($rc, 0, 'attack set-up: a user defines *(bigint, interval) and #>>(jsonb, text) in public')
  or diag($err);
# The operators work for eve herself (so they would be picked).
($rc, $out, $err) = psql_as('eve', q{SELECT 2::bigint * interval '1 s', '{"a": 1}'::jsonb #>> '{}'});
is($hospital->safe_psql('postgres', q{SELECT string_agg(op, ' ' ORDER BY op) FROM operator_ran}),
	'#>> *', 'attack set-up: the operators are picked under the default search_path');
$hospital->safe_psql('postgres', 'TRUNCATE operator_ran');

$hospital->safe_psql('postgres', q{
	SELECT edgesync.add_target('dead', 'http://127.0.0.1:9/in', headers => '{"X-Hospital": "st-anne"}');
	INSERT INTO hospital_patients VALUES (1, 'Ann', 'A');
});
ok($hospital->poll_query_until('postgres',
		q{SELECT consecutive_failures >= 3 FROM edgesync.target_state WHERE name = 'dead'}),
	'worker: the failing target went through its bookkeeping several times');
psql_as('mallory', q{SELECT edgesync.ship('dead')});
is($hospital->safe_psql('postgres', 'SELECT count(*) FROM operator_ran'),
	'0', 'no operator of public ran in the worker or in ship()');
is(is_superuser('eve'), 'f', 'the user did not become superuser');
$hospital->safe_psql('postgres', q{SELECT edgesync.drop_target('dead')});

done_testing();
