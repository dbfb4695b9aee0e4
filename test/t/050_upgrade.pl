# Upgrades of edgesync itself: every released version updates, with
# ALTER EXTENSION edgesync UPDATE, to exactly what a fresh install of the
# current version gives, and what it held keeps working: tracked tables,
# column policies, the change log, targets, a slot created before, a table
# of a tracked schema waiting for a primary key; and the updated database
# restores from pg_dump with its targets.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use EdgesyncTest;

my $old = edgesync_node('old', extra_conf => "edgesync.hash_key = 'tap-050-key'");
my $fresh = edgesync_node('fresh');

my $current = $fresh->safe_psql('postgres',
	"SELECT default_version FROM pg_available_extensions WHERE name = 'edgesync'");
# Released versions: the frozen install scripts edgesync--A.sql other than the current one.
my @released = grep { $_ ne $current } split /\n/, $fresh->safe_psql('postgres',
	"SELECT version FROM pg_available_extension_versions WHERE name = 'edgesync' ORDER BY version");
ok(scalar(@released) >= 1, 'at least one earlier release is installable');

foreach my $from (@released)
{
	is( $old->safe_psql('postgres',
			"SELECT count(*) FROM pg_extension_update_paths('edgesync')"
			  . " WHERE source = '$from' AND target = '$current' AND path IS NOT NULL"),
		'1', "an update path leads from $from to $current");
}

# The oldest release, in use: a tracked table with policies, log rows, a
# target, and a slot holding changes from before the upgrade.
my $from = $released[0];
$old->safe_psql('postgres', qq{
	CREATE EXTENSION edgesync VERSION '$from';
	CREATE TABLE patients (id int PRIMARY KEY, mrn text, phone text, ward text);
	SELECT edgesync.track('patients');
	SELECT edgesync.set_column_policy('patients', 'mrn', 'hash');
	SELECT edgesync.set_column_policy('patients', 'phone', 'redact');
	CREATE SCHEMA clinic;
	SELECT edgesync.track_schema('clinic');
	CREATE TABLE clinic.drafts (body text);
	SELECT edgesync.add_target('archive', 'http://127.0.0.1:9/changes', enabled => false);
	SELECT pg_create_logical_replication_slot('reader', 'edgesync');
	INSERT INTO patients VALUES (1, 'MRN-0001', '555-0101', 'A'), (2, 'MRN-0002', '555-0102', 'B');
	UPDATE patients SET ward = 'C' WHERE id = 2;
});
is($old->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'edgesync'"),
	$from, "installed as $from");

$old->safe_psql('postgres', 'ALTER EXTENSION edgesync UPDATE');
is($old->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'edgesync'"),
	$current, "updated to $current");

# What it held still works.
$old->safe_psql('postgres', q{
	INSERT INTO patients VALUES (3, 'MRN-0003', '555-0103', 'A');
	UPDATE patients SET ward = 'D' WHERE id = 1;
	CREATE TABLE clinic.visits (id int PRIMARY KEY, note text);
	INSERT INTO clinic.visits VALUES (1, 'first');
});
is($old->safe_psql('postgres', q{SELECT string_agg(id || ':' || version, ' ' ORDER BY id) FROM patients}),
	'1:2 2:2 3:1', 'versions kept and bumped across the upgrade');
is($old->safe_psql('postgres', q{
	SELECT string_agg(op::text || coalesce(pk->>'id', '-'), ' ' ORDER BY id)
	  FROM edgesync.sync_log WHERE relid = 'patients'::regclass}),
	'I1 I2 U2 I3 U1', 'the change log goes on where it was');
is($old->safe_psql('postgres', q{SELECT edgesync._is_tracked('clinic.visits')}),
	't', 'a tracked schema still tracks its new tables');
is($old->safe_psql('postgres', q{SELECT string_agg(relid::text, ' ') FROM edgesync.pending_tables}),
	'clinic.drafts', 'a table of a tracked schema without a primary key waits for one');
$old->safe_psql('postgres', q{ALTER TABLE clinic.drafts ADD COLUMN id serial PRIMARY KEY});
is($old->safe_psql('postgres', q{SELECT edgesync._is_tracked('clinic.drafts')}),
	't', '... and is tracked once it has one');
is($old->safe_psql('postgres',
		q{SELECT count(*) FROM edgesync.target_status WHERE name = 'archive' AND slot_exists}),
	'1', 'the target and its slot are still there');

my $stream = $old->safe_psql('postgres',
	q{SELECT string_agg(data, E'\n') FROM pg_logical_slot_get_changes('reader', NULL, NULL)});
like($stream, qr/"op":"insert","schema":"public","table":"patients","pk":\{"id":3\}/, 'a slot created before the upgrade streams changes after it');
unlike($stream, qr/MRN-000|555-010/, 'no hashed or redacted value leaves in clear, before or after');

# An updated database restores: its targets come back, without their slots.
$old->safe_psql('postgres', 'CREATE DATABASE restored');
my ($dump_ok, $dump_err) = ('', '');
$dump_ok = IPC::Run::run(
	[ 'pg_dump', '-h', $old->host, '-p', $old->port, '-d', 'postgres' ], '|',
	[ 'psql', '-h', $old->host, '-p', $old->port, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', 'restored' ],
	'>', \my $dump_out, '2>', \$dump_err);
ok($dump_ok && $dump_err eq '', 'pg_dump | psql of the updated database: no error') or diag($dump_err);
is($old->safe_psql('restored', q{SELECT string_agg(name || ' ' || slot_exists, ', ') FROM edgesync.target_status}),
	'archive false', 'the restored database has the target, not its slot');
$old->safe_psql('postgres', 'DROP DATABASE restored');

# The catalog equals a fresh install's, object by object.
$fresh->safe_psql('postgres', 'CREATE EXTENSION edgesync');
my @upgraded = split /\n/, $old->safe_psql('postgres', edgesync_catalog_fingerprint());
my @installed = split /\n/, $fresh->safe_psql('postgres', edgesync_catalog_fingerprint());
my %in_upgraded = map { $_ => 1 } @upgraded;
my %in_installed = map { $_ => 1 } @installed;
my @only_upgraded = grep { !$in_installed{$_} } @upgraded;
my @only_installed = grep { !$in_upgraded{$_} } @installed;
ok(scalar(@installed) > 100, 'the fingerprint lists the extension\'s objects');
is(join("\n", @only_upgraded), '', "nothing of the upgraded $from is missing from a fresh $current");
is(join("\n", @only_installed), '', "nothing of a fresh $current is missing after the update");

$old->stop;
$fresh->stop;
done_testing();
