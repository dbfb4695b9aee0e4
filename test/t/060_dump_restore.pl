# Every way a DBA backs up and restores a hospital database (issue 13),
# with the private installation's own pg_dump, pg_restore, psql and
# pg_dumpall:
#
#   plain        pg_dump -d hospital | psql -X -v ON_ERROR_STOP=1 -d plain
#   custom       pg_dump -Fc -f hospital.dump -d hospital; pg_restore -d custom hospital.dump
#   single       pg_restore --single-transaction --exit-on-error -d single hospital.dump
#   parallel     pg_restore -j 4 -d parallel hospital.dump
#   split        pg_restore --schema-only -d split hospital.dump, then --data-only
#   plain_split  pg_dump --schema-only | psql, then pg_dump --data-only | psql
#   dumpall      pg_dumpall | psql -U dba -d postgres, into a new server
#
# The database holds tracked tables (one partitioned, with a partition
# attached after tracking, one with rows from before track()), column
# policies, a tracked schema (a table waiting for a primary key, one
# untracked on purpose), a target that has shipped, and a filled change log.
# Each restore exits 0 and writes nothing to stderr; afterwards every
# catalog of edgesync is as it was (keyed by name, not oid), every row keeps
# its version and timestamps (the restore's COPY did not restamp them),
# tracking goes on, and the target does not ship until resync(): its
# secrets, state and slot are not in the dump.  A copy restored next to its original cannot take the
# original's slot.  The cloud side's catalogs (federations, applied LSNs)
# survive a restore too.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use EdgesyncTest;
use EdgesyncReceiver;

my $key_conf = "edgesync.hash_key = 'tap-060-key'\n";
my $receiver = EdgesyncReceiver->new;
my $node = edgesync_node('hospital', extra_conf => $key_conf);
my $dir = PostgreSQL::Test::Utils::tempdir;

$node->safe_psql('postgres', 'CREATE DATABASE hospital');
$node->safe_psql('hospital', q{
	CREATE EXTENSION edgesync;
	CREATE ROLE clinician LOGIN;

	-- Rows from before track(): their tuples lack the managed columns.
	CREATE TABLE patients (id int PRIMARY KEY, mrn text NOT NULL, phone text, ward text);
	INSERT INTO patients SELECT g, 'MRN-' || g, '555-01' || g, 'A' FROM generate_series(1, 50) g;
	SELECT edgesync.track('patients');
	SELECT edgesync.set_column_policy('patients', 'mrn', 'hash');
	SELECT edgesync.set_column_policy('patients', 'phone', 'redact');
	GRANT SELECT, INSERT, UPDATE ON patients TO clinician;

	CREATE TABLE visits (id int, ward text, note text, PRIMARY KEY (id, ward)) PARTITION BY LIST (ward);
	CREATE TABLE visits_a PARTITION OF visits FOR VALUES IN ('A');
	CREATE TABLE visits_b PARTITION OF visits FOR VALUES IN ('B');
	SELECT edgesync.track('visits');
	CREATE TABLE visits_c (id int NOT NULL, ward text NOT NULL, note text);
	ALTER TABLE visits ATTACH PARTITION visits_c FOR VALUES IN ('C');

	CREATE TABLE audit_only (id int PRIMARY KEY, what text);
	SELECT edgesync.track('audit_only', log_changes => false, skip_unchanged => false);

	CREATE SCHEMA clinic;
	CREATE TABLE clinic.notes (id int PRIMARY KEY, body text);
	CREATE TABLE clinic.drafts (body text);
	SELECT edgesync.track_schema('clinic');
	CREATE TABLE clinic.orders (id int PRIMARY KEY, item text);
	CREATE TABLE clinic.scratch (id int PRIMARY KEY);
	SELECT edgesync.untrack('clinic.scratch');
});
$node->safe_psql('hospital',
	"SELECT edgesync.add_target('cloud', '" . $receiver->url . "', bearer_token => 'tok-060')");
$node->safe_psql('hospital', q{
	INSERT INTO visits SELECT g, (ARRAY['A', 'B', 'C'])[1 + g % 3], 'visit ' || g FROM generate_series(1, 300) g;
	UPDATE patients SET ward = 'B' WHERE id <= 10;
	UPDATE visits SET ward = 'B' WHERE id IN (3, 6);
	DELETE FROM visits WHERE id = 9;
	INSERT INTO clinic.notes VALUES (1, 'first');
	INSERT INTO clinic.orders VALUES (1, 'gauze');
	INSERT INTO audit_only VALUES (1, 'a');
	UPDATE audit_only SET what = what;
	TRUNCATE visits_c;
	INSERT INTO visits VALUES (1000, 'C', 'after the truncate');
});
$node->safe_psql('hospital', q{SELECT edgesync.ship('cloud')});
ok($node->safe_psql('hospital', 'SELECT count(*) FROM edgesync.sync_log') > 300, 'the change log is filled');
is($node->safe_psql('hospital', 'SELECT batches_shipped > 0 AND slot_exists FROM edgesync.target_status'),
	't', 'the target has shipped');

# What must come back exactly: every catalog of edgesync (names for oids:
# regclass, regnamespace and regrole print as names), the rows of the
# tracked tables with their versions and timestamps, and the triggers.
my @catalogs = qw(tracked_tables tracked_schemas pending_tables column_policies targets);
my $state_sql = join(" UNION ALL\n",
	(map { "SELECT '$_: ' || coalesce(json_agg(t ORDER BY t::text)::text, '[]') FROM edgesync.$_ t" } @catalogs),
	(map {
		"SELECT '$_: ' || coalesce(string_agg(concat_ws('/', t::text, version, created_at, updated_at), ' ' ORDER BY t::text), '') FROM $_ t"
	} qw(patients visits clinic.notes clinic.orders clinic.scratch audit_only)),
	q{SELECT 'triggers: ' || string_agg(pg_get_triggerdef(oid), ' ' ORDER BY tgrelid::regclass::text, tgname)
	    FROM pg_trigger WHERE tgname LIKE 'edgesync%'});
my $source_state = $node->safe_psql('hospital', $state_sql);
my $source_catalog = $node->safe_psql('hospital', edgesync_catalog_fingerprint());
like($source_state, qr/triggers: .*edgesync_log_truncate AFTER TRUNCATE ON public\.visits_c/,
	'the state compared includes the triggers of a partition attached after tracking');

# Runs a pipeline of commands (IPC::Run syntax); returns (ok, stderr).
sub run_pipeline
{
	my @cmds = @_;
	my ($out, $err) = ('', '');
	my $ok = IPC::Run::run(@cmds, '>', \$out, '2>', \$err);
	return ($ok, $err);
}

my @conn = ('-h', $node->host, '-p', $node->port);

sub restored_cleanly
{
	my ($form, $ok, $err) = @_;
	ok($ok, "$form: exits 0");
	is($err, '', "$form: nothing on stderr");
}

# Everything as it was, and tracking goes on.  $db on $target_node.
sub check_restored
{
	my ($form, $target_node, $db, %opts) = @_;
	is($target_node->safe_psql($db, $state_sql), $source_state,
		"$form: catalogs, rows with their versions and timestamps, and triggers as dumped");
	# (The extension belongs to the role that ran the restore: on the new
	# server, its administrator dba.)
	my $catalog = $target_node->safe_psql($db, edgesync_catalog_fingerprint());
	$catalog =~ s/\bdba\b/postgres/g if $opts{restored_by_dba};
	is($catalog, $source_catalog, "$form: the extension's objects as installed");
	is($target_node->safe_psql($db, 'SELECT count(*) FROM edgesync.sync_log_data'), '0',
		"$form: the change log is not in a dump");
	is($target_node->safe_psql($db,
			q{SELECT slot_exists || ' ' || coalesce(batches_shipped::text, 'none') FROM edgesync.target_status WHERE name = 'cloud'}),
		'false none', "$form: target_status shows the target without its slot nor progress");
	is($target_node->safe_psql($db, q{SELECT count(*) FROM edgesync.target_secrets}), '0',
		"$form: no secret came with the dump");

	# Tracking goes on.
	my $before = $target_node->safe_psql($db, q{SELECT version || ' ' || created_at FROM patients WHERE id = 1});
	my ($v1, $created) = split / /, $before, 2;
	$target_node->safe_psql($db, q{
		UPDATE patients SET ward = ward;
		UPDATE patients SET ward = 'C' WHERE id = 1;
		INSERT INTO patients VALUES (1001, 'MRN-1001', '555-1001', 'A');
		UPDATE visits SET ward = 'A' WHERE id = 1 AND ward = 'B';
		CREATE TABLE visits_d PARTITION OF visits FOR VALUES IN ('D');
		CREATE TABLE clinic.later (id int PRIMARY KEY);
		ALTER TABLE clinic.drafts ADD COLUMN id serial PRIMARY KEY;
		ALTER TABLE clinic.scratch ADD COLUMN note text;
		TRUNCATE visits_d;
	});
	is($target_node->safe_psql($db, q{SELECT version || ' ' || created_at FROM patients WHERE id = 1}),
		($v1 + 1) . " $created", "$form: an update adds one to the restored version, created_at kept");
	is($target_node->safe_psql($db,
			q{SELECT string_agg(op::text || coalesce(pk::text, relid::text), ' ' ORDER BY id) FROM edgesync.sync_log}),
		'U{"id": 1} I{"id": 1001} D{"id": 1, "ward": "B"} U{"id": 1, "ward": "A"} Tvisits_d',
		"$form: the change log records the new changes, and only them (no-op update skipped)");
	is($target_node->safe_psql($db, q{
			SELECT string_agg(relid::text, ' ' ORDER BY relid::text) FROM edgesync.tracked_tables
			 WHERE relid::text LIKE 'clinic.%'}),
		'clinic.drafts clinic.later clinic.notes clinic.orders',
		"$form: the tracked schema tracks new tables and the one given a key; the one untracked stays so");

	# The restored target's slot name belongs to the original database: no
	# resync in a copy next to it.
	if ($opts{same_server})
	{
		my ($rc, $stdout, $stderr) = $target_node->psql($db, q{SELECT edgesync.resync('cloud')});
		like($stderr, qr/replication slot "edgesync_cloud" belongs to database "hospital"/,
			"$form: resync() in a copy next to the original is refused");
		$target_node->safe_psql($db, q{SELECT edgesync.drop_target('cloud')});
		($rc, $stdout, $stderr) = $target_node->psql($db,
			"SELECT edgesync.add_target('cloud', '" . $receiver->url . "')");
		like($stderr, qr/replication slot "edgesync_cloud" belongs to database "hospital"/,
			"$form: so is add_target() of the same name there");
		is($node->safe_psql('hospital', q{SELECT slot_exists FROM edgesync.target_status}), 't',
			"$form: the original's slot is untouched, also by drop_target() in the copy");
	}
}

# Slot names are the server's: a target of another database named like
# this one's cannot take its slot.
$node->safe_psql('postgres', 'CREATE DATABASE other');
$node->safe_psql('other', 'CREATE EXTENSION edgesync');
{
	my ($rc, $stdout, $stderr) = $node->psql('other',
		"SELECT edgesync.add_target('cloud', '" . $receiver->url . "')");
	like($stderr, qr/replication slot "edgesync_cloud" belongs to database "hospital"/,
		'another database: add_target() of a name in use there is refused');
	is($node->safe_psql('hospital', q{SELECT slot_exists FROM edgesync.target_status}), 't',
		'another database: the slot stays with its target');
}
$node->safe_psql('postgres', 'DROP DATABASE other');

# Plain SQL through psql.
$node->safe_psql('postgres', 'CREATE DATABASE plain');
restored_cleanly('plain', run_pipeline(
	[ 'pg_dump', @conn, '-d', 'hospital' ], '|',
	[ 'psql', @conn, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', 'plain' ]));
check_restored('plain', $node, 'plain', same_server => 1);

# The custom format, restored the four ways.
my $dump = "$dir/hospital.dump";
my ($ok, $err) = run_pipeline([ 'pg_dump', @conn, '-Fc', '-f', $dump, '-d', 'hospital' ]);
ok($ok, 'pg_dump -Fc exits 0');
for my $db (qw(custom single parallel split))
{
	$node->safe_psql('postgres', "CREATE DATABASE $db");
}
restored_cleanly('custom', run_pipeline([ 'pg_restore', @conn, '-d', 'custom', $dump ]));
check_restored('custom', $node, 'custom', same_server => 1);
restored_cleanly('single', run_pipeline(
	[ 'pg_restore', @conn, '--single-transaction', '--exit-on-error', '-d', 'single', $dump ]));
check_restored('single', $node, 'single');
restored_cleanly('parallel', run_pipeline([ 'pg_restore', @conn, '-j', '4', '-d', 'parallel', $dump ]));
check_restored('parallel', $node, 'parallel');
restored_cleanly('split (schema)', run_pipeline([ 'pg_restore', @conn, '--schema-only', '-d', 'split', $dump ]));
restored_cleanly('split (data)', run_pipeline([ 'pg_restore', @conn, '--data-only', '-d', 'split', $dump ]));
check_restored('split', $node, 'split');

# Schema then data as SQL scripts.
$node->safe_psql('postgres', 'CREATE DATABASE plain_split');
restored_cleanly('plain_split (schema)', run_pipeline(
	[ 'pg_dump', @conn, '--schema-only', '-d', 'hospital' ], '|',
	[ 'psql', @conn, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', 'plain_split' ]));
restored_cleanly('plain_split (data)', run_pipeline(
	[ 'pg_dump', @conn, '--data-only', '-d', 'hospital' ], '|',
	[ 'psql', @conn, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', 'plain_split' ]));
check_restored('plain_split', $node, 'plain_split');

# A data-only load keeps the managed values only for the tables' owners,
# and only when the COPY names them: a COPY by another role is an insert.
$node->safe_psql('plain_split', q{GRANT INSERT, SELECT ON patients TO clinician});
$node->safe_psql('plain_split', q{
	SET ROLE clinician;
	COPY patients (id, mrn, phone, ward, version, created_at, updated_at) FROM stdin;
2001	MRN-2001	555-2001	A	42	2000-01-01 00:00:00+00	2000-01-01 00:00:00+00
\.
	RESET ROLE;
});
is($node->safe_psql('plain_split', q{SELECT version || ' ' || (created_at > '2000-01-02') FROM patients WHERE id = 2001}),
	'1 true', 'a COPY with the managed columns by a role that does not own the table is versioned as an insert');
is($node->safe_psql('plain_split', q{SELECT count(*) FROM edgesync.sync_log WHERE pk->>'id' = '2001'}),
	'1', '... and logged');

# The cloud side: a federated view and the applied LSNs of a replica.
my ($host, $port) = ($node->host, $node->port);
$node->safe_psql('postgres', 'CREATE DATABASE cloudside');
$node->safe_psql('cloudside', qq{
	CREATE EXTENSION edgesync;
	CREATE EXTENSION postgres_fdw;
	CREATE SERVER hospital FOREIGN DATA WRAPPER postgres_fdw
	  OPTIONS (host '$host', port '$port', dbname 'hospital');
	CREATE USER MAPPING FOR CURRENT_USER SERVER hospital;
	CREATE TABLE patients (id int PRIMARY KEY, mrn text, phone text, ward text,
	  version bigint NOT NULL DEFAULT 1, created_at timestamptz NOT NULL DEFAULT now(),
	  updated_at timestamptz NOT NULL DEFAULT now());
	SELECT edgesync.federate('patients', 'hospital');
	BEGIN;
	SELECT edgesync.apply_begin('hospital-060', '0/3000060');
	COMMIT;
});
my $cloud_sql = q{
	SELECT 'federations: ' || json_agg(f ORDER BY f::text) FROM edgesync.federations f
	UNION ALL SELECT 'applied_lsn: ' || json_agg(a ORDER BY a::text) FROM edgesync.applied_lsn a
	UNION ALL SELECT 'view: ' || count(*) FROM patients_federated};
my $cloud_state = $node->safe_psql('cloudside', $cloud_sql);
like($cloud_state, qr/"view":"patients_federated".*hospital-060.*view: 5\d/s, 'the cloud side has a federation and an applied LSN');
$node->safe_psql('postgres', 'CREATE DATABASE cloudside_restored');
restored_cleanly('cloud side', run_pipeline(
	[ 'pg_dump', @conn, '-Fc', '-d', 'cloudside' ], '|',
	[ 'pg_restore', @conn, '-d', 'cloudside_restored' ]));
is($node->safe_psql('cloudside_restored', $cloud_sql), $cloud_state,
	'cloud side: federations and applied LSNs as dumped, and the federated view answers');

# pg_dumpall into a new server, restored by its own administrator.
my $new = PostgreSQL::Test::Cluster->new('new_server');
$new->init(allows_streaming => 'logical', extra => [ '-U', 'dba' ]);
$new->append_conf('postgresql.conf', slurp_file("$FindBin::RealBin/../edgesync.conf"));
$new->append_conf('postgresql.conf', $key_conf);
$new->start;
$node->safe_psql('postgres', 'DROP DATABASE plain; DROP DATABASE custom; DROP DATABASE single; DROP DATABASE parallel; DROP DATABASE split; DROP DATABASE plain_split; DROP DATABASE cloudside_restored');
# (From PostgreSQL 16 pg_dumpall writes role memberships "GRANTED BY
# postgres", which a server whose first superuser is another role refuses:
# the clause goes, as docs/install.md says.)
restored_cleanly('dumpall', run_pipeline(
	[ 'pg_dumpall', @conn ], '|',
	[ 'sed', '-e', 's/ GRANTED BY [^;]*;$/;/' ], '|',
	[ 'psql', '-h', $new->host, '-p', $new->port, '-U', 'dba', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', 'postgres' ]));
check_restored('dumpall', $new, 'hospital', restored_by_dba => 1);
is($new->safe_psql('cloudside', $cloud_sql) =~ s/view: \d+//r, $cloud_state =~ s/view: \d+//r,
	'dumpall: the cloud side\'s catalogs as dumped');

# On the new server the target ships again once alter_target() gave it its
# token and resync() a slot: every current row, under the column policy.
my $delivered_before = scalar $receiver->deliveries;
$new->safe_psql('hospital', q{SELECT edgesync.alter_target('cloud', bearer_token => 'tok-060')});
$new->safe_psql('hospital', q{SELECT edgesync.resync('cloud')});
$new->safe_psql('hospital', q{SELECT edgesync.ship('cloud', 1000)});
is($new->safe_psql('hospital',
		q{SELECT slot_exists || ' ' || consecutive_failures || ' ' || resync_pending FROM edgesync.target_status}),
	'true 0 false', 'dumpall: after resync() the target has its slot and has shipped');
my @batches = ($receiver->deliveries)[ $delivered_before .. scalar($receiver->deliveries) - 1 ];
is(scalar(grep { $_->{auth} ne 'Bearer tok-060' } @batches), 0, 'dumpall: with the token given again');
my @lines = map { @{ $_->{lines} } } @batches;
my $patients = $new->safe_psql('hospital', 'SELECT count(*) FROM patients');
is(scalar(grep { /"op":"insert","schema":"public","table":"patients"/ } @lines), $patients,
	'dumpall: the re-send carries every patient');
ok(!grep({ /MRN-|555-0/ } @lines), 'dumpall: no hashed or redacted value in clear');
ok((grep { /"op":"resync_end","schema":"public","table":"visits"/ } @lines),
	'dumpall: and the partitioned table, as one');

$new->stop;
$node->stop;
done_testing();
