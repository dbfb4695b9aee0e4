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

our @EXPORT = qw(edgesync_node edgesync_selftest_functions edgesync_apply_audit
  edgesync_applier_url);

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

# edgesync_applier_url(cloud, [tables]): creates the role cloud_applier on
# node CLOUD (a member of edgesync_applier, with the table privileges
# applying needs on TABLES) and returns the postgresql:// URL a target uses
# to apply there as that role.
sub edgesync_applier_url
{
	my ($cloud, $tables) = @_;
	$cloud->safe_psql('postgres',
		'CREATE ROLE cloud_applier LOGIN IN ROLE edgesync_applier;'
		  . 'GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON '
		  . join(', ', @$tables)
		  . ' TO cloud_applier;');
	return 'postgresql://cloud_applier@/postgres?host=' . $cloud->host . '&port=' . $cloud->port;
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

# SQL for a replica: every row write to table TABLE (key column id, and
# version) is recorded in table "applied" (op, id, version), also for rows
# applied in replica mode, so that a change applied twice shows.  SECURITY
# DEFINER: the applying role need not write "applied".
sub edgesync_apply_audit
{
	my ($table) = @_;
	return qq{
		CREATE TABLE applied (op text, id int, version bigint);
		CREATE FUNCTION record_apply() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS \$\$
		BEGIN
			IF TG_OP = 'DELETE' THEN
				INSERT INTO applied VALUES (TG_OP, OLD.id, OLD.version);
			ELSE
				INSERT INTO applied VALUES (TG_OP, NEW.id, NEW.version);
			END IF;
			RETURN NULL;
		END \$\$;
		CREATE TRIGGER record_apply AFTER INSERT OR UPDATE OR DELETE ON $table
			FOR EACH ROW EXECUTE FUNCTION record_apply();
		ALTER TABLE $table ENABLE ALWAYS TRIGGER record_apply;
	};
}

1;
