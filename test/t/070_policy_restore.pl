# Column policies follow their column through every way a DBA copies a
# database (issue 13): a table that had a column dropped, its policies set
# (hash on the MRN, redact on the phone), one column's type changed and
# another renamed, is dumped and restored with the packaged tools (plain
# pg_dump | psql, -Fc and pg_restore, --single-transaction, -Fd with -j 4,
# --schema-only then --data-only) and carried over by pg_upgrade.  Column
# numbers shift (the dropped column is gone); each copy then streams a new
# row through a new slot, in both formats: the decoded bytes never hold the
# clear MRN or phone, the MRN is the same HMAC as on the original, and the
# ward is in clear.  Before policies were kept by name, the MRN of such a
# restore was streamed in clear.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use EdgesyncTest;

my $timeout = $PostgreSQL::Test::Utils::timeout_default;
my $dir = PostgreSQL::Test::Utils::tempdir;
my $conf = "edgesync.hash_key = 'tap-070-key'\nlog_statement = none\n";
my $node = edgesync_node('hospital', extra_conf => $conf);

$node->safe_psql('postgres', q{CREATE DATABASE hospital ENCODING 'UTF8' LOCALE 'C' TEMPLATE template0});
$node->safe_psql('hospital', q{
	CREATE EXTENSION edgesync;
	CREATE TABLE p2 (id int PRIMARY KEY, legacy text, mrn text, phone text, ward text);
	ALTER TABLE p2 DROP COLUMN legacy;
	SELECT edgesync.track('p2');
	SELECT edgesync.set_column_policy('p2', 'mrn', 'hash');
	SELECT edgesync.set_column_policy('p2', 'phone', 'redact');
	ALTER TABLE p2 ALTER COLUMN mrn TYPE varchar(40);
	ALTER TABLE p2 RENAME COLUMN phone TO phone_number;
	INSERT INTO p2 (id, mrn, phone_number, ward) VALUES (1, 'MRN-0001', '555-0001', 'A');
});
# (The column a policy row designates: by name, or by number as 0.1.0 kept it.)
my $policies = q{SELECT string_agg(col || ':' || policy, ',' ORDER BY col)
                   FROM edgesync.column_policies p,
                        LATERAL (SELECT coalesce(to_jsonb(p)->>'attname',
                                   (SELECT attname FROM pg_attribute a WHERE a.attrelid = p.relid
                                       AND a.attnum = (to_jsonb(p)->>'attnum')::int))) AS c(col)
                  WHERE relid = 'p2'::regclass};
is($node->safe_psql('hospital', $policies), 'mrn:hash,phone_number:redact',
	'the policies follow ALTER TYPE and RENAME on the original');

# decoded(NODE, DB, ID): a new row (clear MRN and phone of its own) through
# a new slot, in json and sql; the two streams' bytes.
sub decoded
{
	my ($n, $db, $id) = @_;
	$n->safe_psql($db, "SELECT pg_create_logical_replication_slot('check_$id', 'edgesync')");
	$n->safe_psql($db, "INSERT INTO p2 (id, mrn, phone_number, ward) VALUES (100 + $id, 'MRN-CLEAR-$id', '555-CLEAR-$id', 'ward $id')");
	my $json = $n->safe_psql($db, "SELECT string_agg(data, E'\\n') FROM pg_logical_slot_peek_changes('check_$id', NULL, NULL)");
	my $sql = $n->safe_psql($db,
		"SELECT string_agg(data, E'\\n') FROM pg_logical_slot_get_changes('check_$id', NULL, NULL, 'format', 'sql')");
	$n->safe_psql($db, "SELECT pg_drop_replication_slot('check_$id')");
	return ($json, $sql);
}

# check(NODE, DB, FORM, ID): the copy has the policies and streams under them.
sub check
{
	my ($n, $db, $form, $id) = @_;
	is($n->safe_psql($db, $policies), 'mrn:hash,phone_number:redact', "$form: the policies came back by name");
	my ($json, $sql) = decoded($n, $db, $id);
	ok($json =~ /"table":"p2"/ && $sql =~ /INSERT INTO "public"."p2"/, "$form: the new row is streamed");
	unlike($json . $sql, qr/MRN-CLEAR|555-CLEAR/, "$form: no clear MRN or phone in the decoded bytes");
	like($json, qr/"ward":"ward $id"/, "$form: the ward is in clear");
	like($json, qr/"phone_number":null/, "$form: the phone is redacted");
	my ($hmac) = $json =~ /"mrn":"([0-9a-f]{64})"/;
	my ($orig) = decoded_hmac($id);
	is($hmac, $orig, "$form: the MRN is the original's HMAC of it");
}

# The HMAC the original streams for MRN-CLEAR-ID (the key is the cluster's).
my %orig_hmac;
sub decoded_hmac
{
	my ($id) = @_;
	return $orig_hmac{$id} if $orig_hmac{$id};
	$node->safe_psql('hospital', "SELECT pg_create_logical_replication_slot('orig_$id', 'edgesync')");
	$node->safe_psql('hospital', "INSERT INTO p2 (id, mrn, ward) VALUES (1000 + $id, 'MRN-CLEAR-$id', 'x')");
	my $json = $node->safe_psql('hospital', "SELECT string_agg(data, E'\\n') FROM pg_logical_slot_get_changes('orig_$id', NULL, NULL)");
	$node->safe_psql('hospital', "SELECT pg_drop_replication_slot('orig_$id')");
	$node->safe_psql('hospital', "DELETE FROM p2 WHERE id = 1000 + $id");
	($orig_hmac{$id}) = $json =~ /"mrn":"([0-9a-f]{64})"/;
	return $orig_hmac{$id};
}

# (All taken now: pg_upgrade stops the original.)
decoded_hmac($_) for 1 .. 6;
is(scalar(grep { defined $orig_hmac{$_} } 1 .. 6), 6, 'the original streams each MRN as its HMAC');

sub run_ok
{
	my ($what, @cmds) = @_;
	my ($out, $err) = ('', '');
	my $ok = IPC::Run::run(@cmds, '>', \$out, '2>', \$err, IPC::Run::timeout($timeout));
	ok($ok && $err !~ /ERROR/, $what) or diag($err);
}

my $src = $node->connstr('hospital');
sub createdb { $node->safe_psql('postgres', "CREATE DATABASE $_[0] TEMPLATE template0"); }
sub psql_to { return [ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr($_[0]) ]; }

# 1. pg_dump | psql
createdb('r_plain');
run_ok('plain: pg_dump | psql', [ 'pg_dump', '-d', $src ], '|', psql_to('r_plain'));
check($node, 'r_plain', 'plain', 1);

# 2. pg_dump -Fc, pg_restore
my $archive = "$dir/hospital.dump";
run_ok('pg_dump -Fc', [ 'pg_dump', '-Fc', '-f', $archive, '-d', $src ]);
createdb('r_custom');
run_ok('-Fc: pg_restore', [ 'pg_restore', '-d', $node->connstr('r_custom'), $archive ]);
check($node, 'r_custom', '-Fc', 2);

# 3. pg_restore --single-transaction
createdb('r_single');
run_ok('pg_restore --single-transaction',
	[ 'pg_restore', '--single-transaction', '--exit-on-error', '-d', $node->connstr('r_single'), $archive ]);
check($node, 'r_single', '--single-transaction', 3);

# 4. pg_dump -Fd, pg_restore -j 4
my $directory = "$dir/hospital.dir";
run_ok('pg_dump -Fd', [ 'pg_dump', '-Fd', '-f', $directory, '-d', $src ]);
createdb('r_jobs');
run_ok('pg_restore -j 4', [ 'pg_restore', '-j', '4', '-d', $node->connstr('r_jobs'), $directory ]);
check($node, 'r_jobs', '-j 4', 4);

# 5. --schema-only, then --data-only (the policies are data of the extension)
createdb('r_split');
run_ok('pg_restore --schema-only', [ 'pg_restore', '--schema-only', '-d', $node->connstr('r_split'), $archive ]);
is($node->safe_psql('r_split', 'SELECT count(*) FROM edgesync.column_policies'), '0',
	'--schema-only: no policy yet');
run_ok('pg_restore --data-only',
	[ 'pg_restore', '--data-only', '--disable-triggers', '-d', $node->connstr('r_split'), $archive ]);
check($node, 'r_split', '--schema-only then --data-only', 5);

# 6. pg_upgrade to a new cluster (the same major version: the mechanism is
# the same for every one).  Relation oids survive it, so column_policies'
# regclass does; pg_upgrade refuses a database with a column of a reg* type
# whose oids it does not keep (regnamespace, regproc, ...): edgesync's
# catalogs have none (tracked_schemas names its schemas).
my $new = edgesync_node('upgraded', extra_conf => $conf, start => 0);
$node->stop;
my $bindir = $node->config_data('--bindir');
my @upgrade = ('pg_upgrade', '--no-sync', '-b', $bindir, '-B', $bindir,
	'-d', $node->data_dir, '-D', $new->data_dir, '-s', $dir,
	'-p', PostgreSQL::Test::Cluster::get_free_port(), '-P', PostgreSQL::Test::Cluster::get_free_port());
my ($out, $err) = ('', '');
my $upgraded = IPC::Run::run(\@upgrade, '>', \$out, '2>', \$err, init => sub { chdir $dir },
	IPC::Run::timeout($timeout));
my ($reg_report) = glob($new->data_dir . '/pg_upgrade_output.d/*/tables_using_reg.txt');
my $reg_columns = defined $reg_report ? slurp_file($reg_report) : '';
unlike($reg_columns, qr/column_policies/, 'pg_upgrade finds no column of column_policies it cannot carry');
ok($upgraded, 'pg_upgrade') or diag("$out\n$err\n$reg_columns");
$new->start;
check($new, 'hospital', 'pg_upgrade', 6);
$new->stop;

done_testing();
