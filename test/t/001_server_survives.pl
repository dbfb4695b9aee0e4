# Exceptions and errors at the C++ boundary never take the server down:
# no backend crash, no postmaster restart, other sessions unaffected, and the
# preloaded library survives a restart.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use EdgesyncTest;

my $node = edgesync_node('hospital');
$node->safe_psql('postgres', 'CREATE EXTENSION edgesync');
$node->safe_psql('postgres', edgesync_selftest_functions());

my $start_time = $node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()');

# A session that must live through everything below.
my $bystander = $node->background_psql('postgres');
$bystander->query_safe('CREATE TEMP TABLE mine AS SELECT 1 AS x');

foreach my $kind (qw(edgesync std bad_alloc other))
{
	my ($rc, $out, $err) =
	  $node->psql('postgres', "SELECT selftest.throw('$kind', '22023')");
	isnt($rc, 0, "C++ exception '$kind' is an error");
	like($err, qr/ERROR:/, "C++ exception '$kind' is reported as ERROR");
	unlike($err, qr/server closed the connection/, "C++ exception '$kind' kills no backend");
}

my ($rc, $out, $err) =
  $node->psql('postgres', "SELECT selftest.pg_error_under_cpp('not a number')");
like($err, qr/invalid input syntax for type integer/,
	'PostgreSQL error under C++ frames arrives unchanged');

is($bystander->query_safe('SELECT x FROM mine'), '1', 'other session untouched');
is($node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()'),
	$start_time, 'postmaster never restarted');
ok(!$node->log_contains('terminated by signal|was terminated|server process .* exited'),
	'no backend crashed');
$bystander->quit;

# The library is preloaded; a restart brings it back.
$node->restart;
is($node->safe_psql('postgres', 'SELECT edgesync.version() IS NOT NULL'),
	't', 'extension works after restart with shared_preload_libraries');

$node->stop;
done_testing();
