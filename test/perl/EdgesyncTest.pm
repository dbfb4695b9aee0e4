# EdgesyncTest — shared set-up for edgesync's TAP tests.
#
# Every cluster a TAP test starts is configured from test/edgesync.conf, the
# same settings the pg_regress and isolation instances use, so that a setting
# needed by edgesync is added in one place.
package EdgesyncTest;

use strict;
use warnings;

use Exporter 'import';
use File::Basename qw(dirname);
use File::Spec;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;

our @EXPORT = qw(edgesync_node edgesync_selftest_functions);

my $conf_file = File::Spec->catfile(dirname(__FILE__), '..', 'edgesync.conf');

# edgesync_node(name, extra_conf => "...", start => 1): a new cluster with
# edgesync preloaded and allowed as an output plugin, started unless asked not.
sub edgesync_node
{
	my ($name, %opts) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(allows_streaming => 'logical');
	$node->append_conf('postgresql.conf', slurp_file($conf_file));
	$node->append_conf('postgresql.conf', $opts{extra_conf}) if $opts{extra_conf};
	$node->start unless defined $opts{start} && !$opts{start};
	return $node;
}

# SQL that declares the selftest entry points in schema selftest.
sub edgesync_selftest_functions
{
	return q{
		CREATE SCHEMA IF NOT EXISTS selftest;
		CREATE OR REPLACE FUNCTION selftest.throw(text, text) RETURNS int
		  AS 'edgesync', 'edgesync_selftest_throw' LANGUAGE C STRICT;
		CREATE OR REPLACE FUNCTION selftest.pg_error_under_cpp(text) RETURNS int
		  AS 'edgesync', 'edgesync_selftest_pg_error_under_cpp' LANGUAGE C STRICT;
		CREATE OR REPLACE FUNCTION selftest.live_objects() RETURNS bigint
		  AS 'edgesync', 'edgesync_selftest_live_objects' LANGUAGE C STRICT;
	};
}

1;
