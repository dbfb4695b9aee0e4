# Federated views on a managed cloud: sql/cloud/federate.sql, plain SQL over
# dblink, installed with psql by a role that is not superuser, on a cloud
# cluster where edgesync is provably absent (a PostgreSQL installation
# without its files: no library to load, no extension, no function).  The
# guarantees of edgesync's own federate(): the freshest version wins,
# deleted rows vanish, filters reach the hospital, row level security never
# turns a hidden row into a deleted one, and a hospital that is stopped,
# hung, slow, killed in the middle of a query or whose query is cancelled
# costs a WARNING (or the cancel), never the caller's transaction.
use strict;
use warnings;

use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use FindBin;
use lib "$FindBin::RealBin/../perl";
use EdgesyncTest;

my $script = "$FindBin::RealBin/../../sql/cloud/federate.sql";

# The hospital: edgesync's tracked tables, and a role for the cloud that
# must give its password (a user mapping of a role that is not superuser
# must use one, for dblink as for postgres_fdw).
my $hospital = edgesync_node('hospital');
$hospital->safe_psql('postgres', q{
	CREATE EXTENSION edgesync;
	CREATE TABLE patients (id int PRIMARY KEY, name text, ward text);
	SELECT edgesync.track('patients');
	INSERT INTO patients (id, name, ward)
	SELECT g, 'patient ' || g, CASE WHEN g % 2 = 0 THEN 'A' ELSE 'B' END FROM generate_series(1, 100) g;
	-- The same rows, slowly: lets the test kill the hospital in the middle of a query.
	CREATE VIEW slow_patients AS SELECT p.* FROM patients p, pg_sleep(60) s;
	-- Rows of two hospitals, split by a policy for the cloud's role.
	CREATE TABLE shared (id int PRIMARY KEY, hospital_id int NOT NULL, name text);
	SELECT edgesync.track('shared');
	INSERT INTO shared (id, hospital_id, name) SELECT g, 1 + g % 2, 'patient ' || g FROM generate_series(1, 10) g;
	ALTER TABLE shared ENABLE ROW LEVEL SECURITY;
	CREATE ROLE cloud_reader LOGIN PASSWORD 'hospital-secret';
	GRANT SELECT ON patients, slow_patients, shared TO cloud_reader;
	CREATE POLICY own_hospital ON shared FOR SELECT TO cloud_reader USING (hospital_id = 1);
});
{
	my $hba = $hospital->data_dir . '/pg_hba.conf';
	my $rules = slurp_file($hba);
	open my $fh, '>', $hba or die "could not write $hba: $!";
	print $fh "local all cloud_reader scram-sha-256\nhost all cloud_reader 127.0.0.1/32 scram-sha-256\n$rules";
	close $fh;
	$hospital->reload;
}

# A PostgreSQL installation without edgesync: this one, copied without its files.
my $plain = PostgreSQL::Test::Utils::tempdir('no_edgesync');
my %dir;
for my $which (qw(bindir pkglibdir sharedir))
{
	($dir{$which} = `pg_config --$which`) =~ s/\s+$//;
}
my $root = dirname($dir{bindir});
for my $tree ($root, $dir{pkglibdir}, $dir{sharedir})
{
	next if -e "$plain$tree";
	system('mkdir', '-p', $plain . dirname($tree)) == 0 or die "mkdir failed";
	system('cp', '-a', $tree, "$plain$tree") == 0 or die "could not copy $tree";
}
unlink "$plain$dir{pkglibdir}/edgesync.so", glob("$plain$dir{sharedir}/extension/edgesync*");
ok(!-e "$plain$dir{pkglibdir}/edgesync.so", 'the cloud installation has no edgesync library');

# The cloud: default settings (nothing preloaded), dblink and postgres_fdw
# installed by the platform, and an owner who is not superuser.
my $cloud = PostgreSQL::Test::Cluster->new('cloud', install_path => "$plain$root");
$cloud->init;
$cloud->start;
my ($host, $port) = ($hospital->host, $hospital->port);
$cloud->safe_psql('postgres', q{
	CREATE EXTENSION dblink;
	CREATE EXTENSION postgres_fdw;
	CREATE ROLE cloud_owner LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
	GRANT CREATE ON DATABASE postgres TO cloud_owner;
	GRANT USAGE ON FOREIGN DATA WRAPPER postgres_fdw TO cloud_owner;
	CREATE ROLE reporting LOGIN;
});
is($cloud->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM pg_extension WHERE extname = 'edgesync') || '/'
	    || (SELECT count(*) FROM pg_proc WHERE proname LIKE 'edgesync%' OR probin LIKE '%edgesync%') || '/'
	    || current_setting('shared_preload_libraries') || '/'
	    || (SELECT count(*) FROM pg_available_extensions WHERE name = 'edgesync')}),
	'0/0//0', 'edgesync is absent: no extension, no function, nothing preloaded, nothing to install');
my ($rc, $out, $err) = $cloud->psql('postgres', q{LOAD 'edgesync'});
like($err, qr/could not access file "edgesync"/, 'and its library cannot be loaded, even by a superuser');
is($cloud->safe_psql('postgres', q{SELECT rolsuper FROM pg_roles WHERE rolname = 'cloud_owner'}), 'f',
	'the owner is not superuser');

sub owner
{
	my ($sql) = @_;
	return $cloud->psql('postgres', $sql, extra_params => [ '-U', 'cloud_owner' ]);
}

sub owner_safe
{
	my ($sql) = @_;
	return $cloud->safe_psql('postgres', $sql, extra_params => [ '-U', 'cloud_owner' ]);
}

# Installed with psql -f by the owner, twice (it replaces its functions).
for my $run (1, 2)
{
	($rc, $out, $err) = $cloud->psql('postgres', undef,
		extra_params => [ '-U', 'cloud_owner', '-v', 'ON_ERROR_STOP=1', '-f', $script ]);
	is($rc, 0, "sql/cloud/federate.sql installs with psql -f as the owner (run $run)") or diag($err);
}

# The replica and the hospital's server, as the owner.
my $rows = $hospital->safe_psql('postgres', q{
	SELECT string_agg(format('(%s, %L, %L, %s, %L, %L)', id, CASE WHEN id = 4 THEN NULL ELSE name END,
	                         ward, version, created_at, updated_at), ', ' ORDER BY id) FROM patients});
my $shared = $hospital->safe_psql('postgres', q{
	SELECT string_agg(format('(%s, %s, %L, %s, %L, %L)', id, hospital_id, name, version, created_at, updated_at),
	                  ', ' ORDER BY id) FROM shared});
owner_safe(qq{
	CREATE SERVER hospital FOREIGN DATA WRAPPER postgres_fdw
	  OPTIONS (host '$host', port '$port', dbname 'postgres', connect_timeout '2');
	CREATE USER MAPPING FOR cloud_owner SERVER hospital OPTIONS (user 'cloud_reader', password 'hospital-secret');
	CREATE SCHEMA clinic;
	CREATE TABLE clinic.patients (id int PRIMARY KEY, name text, ward text, version bigint NOT NULL,
	    created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL);
	INSERT INTO clinic.patients VALUES $rows;
	CREATE TABLE clinic.slow (LIKE clinic.patients INCLUDING ALL);
	INSERT INTO clinic.slow SELECT * FROM clinic.patients;
	CREATE TABLE clinic.shared (id int PRIMARY KEY, hospital_id int NOT NULL, name text, version bigint NOT NULL,
	    created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL);
	INSERT INTO clinic.shared VALUES $shared;
	CREATE TABLE clinic.audit (note text);
	GRANT INSERT, SELECT ON clinic.audit TO reporting;
	GRANT USAGE ON SCHEMA clinic TO reporting;
});
is(owner_safe(q{SELECT edgesync_cloud.federate('clinic.patients', 'hospital')}), 'clinic.patients_federated',
	'federate() creates the view');
is(owner_safe(q{SELECT edgesync_cloud.federate('clinic.patients', 'hospital')}), 'clinic.patients_federated',
	'federate() again replaces it');
owner_safe(q{SELECT edgesync_cloud.grant_read('clinic.patients_federated', 'reporting')});

# Changes on both sides since the replica was copied.
$hospital->safe_psql('postgres', q{
	UPDATE patients SET ward = 'ICU' WHERE id = 1;                       -- hospital fresher
	DELETE FROM patients WHERE id = 3;                                    -- deleted at the hospital
	INSERT INTO patients (id, name, ward) VALUES (101, 'new', 'A');       -- not replicated yet
});
owner_safe(q{UPDATE clinic.patients SET ward = 'X-RAY', version = 7 WHERE id = 2});  # replica fresher

# Read as a role with no user mapping and no right on the replica.
sub fed
{
	my ($sql) = @_;
	return $cloud->safe_psql('postgres', $sql, extra_params => [ '-U', 'reporting' ]);
}

is(fed(q{SELECT ward || '/' || _source || '/' || _version FROM clinic.patients_federated_get(1)}),
	'ICU/hospital/2', 'the hospital wins with the higher version');
is(fed(q{SELECT ward || '/' || _source || '/' || _version FROM clinic.patients_federated_get(2)}),
	'X-RAY/replica/7', 'the replica wins with the higher version');
is(fed(q{SELECT count(*) FROM clinic.patients_federated_get(3)}), '0', 'a row deleted at the hospital is gone');
is(fed(q{SELECT _source FROM clinic.patients_federated_get(101)}), 'hospital', 'a row only the hospital has is there');
is(fed(q{SELECT name || '/' || _source FROM clinic.patients_federated_get(4)}), 'patient 4/hospital',
	'a redacted column is filled from the live row');
is(fed(q{SELECT count(*) || '/' || count(*) FILTER (WHERE _source = 'replica') FROM clinic.patients_federated}),
	'100/1', 'the whole view: 99 live rows and one fresher replica row');
is(fed(q{SELECT string_agg(id::text, ',' ORDER BY id)
           FROM clinic.patients_federated_rows(ARRAY['ward', 'id'], ARRAY['=', '<'], ARRAY['B', '6'])}),
	'5', 'a filter applies to the freshest row only');
is(fed(q{SELECT string_agg(id::text, ',' ORDER BY id)
           FROM clinic.patients_federated_rows(ARRAY['ward'], ARRAY['='], ARRAY['X-RAY'])}),
	'2', 'a filter matching only the fresher replica row');
is(fed(q{SELECT string_agg(id::text, ',' ORDER BY id)
           FROM clinic.patients_federated_rows(ARRAY['name'], ARRAY['>='], ARRAY['patient 98'])}),
	'98,99', 'a range on text is applied here, not sent (the servers may sort text differently)');
($rc, $out, $err) = $cloud->psql('postgres',
	q{SELECT * FROM clinic.patients_federated_rows(ARRAY['id'], ARRAY['~'], ARRAY['1'])},
	extra_params => [ '-U', 'reporting' ]);
like($err, qr/operator "~" is not supported in a federated filter/, 'an unsupported operator is an error');
($rc, $out, $err) = $cloud->psql('postgres',
	q{SELECT * FROM clinic.patients_federated_rows(ARRAY['id'], ARRAY['='], ARRAY['1; DROP TABLE x'])},
	extra_params => [ '-U', 'reporting' ]);
like($err, qr/invalid input syntax for type integer: "1; DROP TABLE x"/, 'a value is checked against the column\'s type');
($rc, $out, $err) = $cloud->psql('postgres', q{SELECT * FROM clinic.patients},
	extra_params => [ '-U', 'reporting' ]);
like($err, qr/permission denied for table patients/, 'the reader cannot read the replica itself');

# Pushdown: the hospital reads one patient by its index.
$hospital->safe_psql('postgres', q{SELECT pg_stat_reset(); SELECT pg_stat_force_next_flush()});
fed(q{SELECT * FROM clinic.patients_federated_get(42)});
fed(q{SELECT * FROM clinic.patients_federated_rows(ARRAY['id'], ARRAY['='], ARRAY['43'])});
$hospital->poll_query_until('postgres',
	q{SELECT coalesce(idx_scan, 0) >= 2 FROM pg_stat_user_tables WHERE relname = 'patients'});
is($hospital->safe_psql('postgres', q{SELECT coalesce(seq_tup_read, 0) FROM pg_stat_user_tables WHERE relname = 'patients'}),
	'0', 'a key lookup is sent with its WHERE: the hospital reads one patient by index');

# A join: one lookup per outer row.
owner_safe(q{CREATE TABLE clinic.visits (id int PRIMARY KEY, patient_id int);
	INSERT INTO clinic.visits SELECT g, g * 3 FROM generate_series(1, 30) g;
	GRANT SELECT ON clinic.visits TO reporting;});
is(fed(q{SELECT v.id || '/' || p.ward || '/' || p._source FROM clinic.visits v,
           LATERAL clinic.patients_federated_get(v.patient_id) p WHERE v.id IN (1, 2) ORDER BY 1}),
	'2/A/hospital', 'a join through the lookup (patient 3 was deleted at the hospital)');

# A cached connection does not outlive a hospital restart.
{
	my $s = $cloud->background_psql('postgres', on_error_stop => 0, extra_params => [ '-U', 'reporting' ]);
	is($s->query_safe(q{SELECT _source FROM clinic.patients_federated_get(1)}), 'hospital', 'a session reads the hospital');
	$hospital->restart;    # pg_ctl's default mode, fast
	$s->{stderr} = '';
	is($s->query(q{SELECT _source FROM clinic.patients_federated_get(1)}), 'hospital',
		'after the hospital restarted, the same session reads it again');
	unlike($s->{stderr}, qr/WARNING/, 'without a WARNING');
	$s->quit;
}

# The caller's transaction goes on, whatever the hospital does.
sub in_transaction
{
	my ($name, $query, $during) = @_;
	my $s = $cloud->background_psql('postgres', on_error_stop => 0, extra_params => [ '-U', 'reporting' ]);
	$s->query_safe('BEGIN');
	$s->query_safe(qq{INSERT INTO clinic.audit VALUES ('$name')});
	my $t0 = time;
	$s->query_until(qr/started/, "\\echo started\n$query;\n\\echo __query_done__\n");
	$during->() if $during;
	my $answer = $s->query_until(qr/__query_done__/, '');
	my $elapsed = time - $t0;
	my $stderr = $s->{stderr};
	$s->{stderr} = '';
	$s->query_until(qr/__committed__/, "COMMIT;\n\\echo __committed__\n");
	unlike($s->{stderr}, qr/ERROR/, "$name: COMMIT succeeds");
	$s->quit;
	is($cloud->safe_psql('postgres', qq{SELECT count(*) FROM clinic.audit WHERE note = '$name'}), '1',
		"$name: the local write persists");
	return ($answer, $stderr, $elapsed);
}

my $whole = q{SELECT count(*) || '/' || count(*) FILTER (WHERE _source = 'replica') AS answer FROM clinic.patients_federated};

# Stopped.
$hospital->stop('fast');
my ($answer, $warnings, $elapsed) = in_transaction('stopped', $whole);
like($answer, qr{100/100}, 'hospital stopped: the replica answers');
like($warnings, qr/WARNING:  hospital server "hospital" is unreachable: answering from the replica alone/, 'with a WARNING');
is(scalar(() = $warnings =~ /WARNING/g), 1, 'once');
cmp_ok($elapsed, '<', 5, 'at once');
($answer, $warnings) = in_transaction('stopped, nested loop',
	q{SELECT count(*) AS answer FROM clinic.visits v, LATERAL clinic.patients_federated_get(v.patient_id) p});
like($answer, qr/^30$/m, 'hospital stopped: a lookup per outer row answers from the replica');
is(scalar(() = $warnings =~ /WARNING/g), 1, 'with one WARNING, not one per outer row');
$hospital->start;

# Hung: its postmaster stopped, so a connection is never answered.  Only on
# 15 does dblink_connect() end at the server's connect_timeout; from 16 it
# waits through libpq-be-fe-helpers, with no bound of its own, until the
# caller cancels (the header of sql/cloud/federate.sql, docs/federation.md).
# Five assertions: in_transaction() makes two of its own.
SKIP:
{
	skip 'dblink_connect() has no connect timeout from PostgreSQL 16', 5
	  if $cloud->safe_psql('postgres', 'SHOW server_version_num') >= 160000;
	my $pid = (split /\n/, slurp_file($hospital->data_dir . '/postmaster.pid'))[0];
	kill 'STOP', $pid;
	($answer, $warnings, $elapsed) = in_transaction('hung', q{SELECT ward AS answer FROM clinic.patients_federated_get(1)});
	kill 'CONT', $pid;
	like($answer, qr/^B$/m, 'hospital hung: the replica answers');
	like($warnings, qr/WARNING:  hospital server "hospital" is unreachable.*\n.*timeout expired/, 'after the connect timeout');
	cmp_ok($elapsed, '<', 6, 'bounded by the server\'s connect_timeout (2 s)');
}

# Slow: the hospital ends its statement at edgesync_cloud.query_timeout.
owner_safe(q{SELECT edgesync_cloud.federate('clinic.slow', 'hospital', remote_table => 'slow_patients');
	SELECT edgesync_cloud.grant_read('clinic.slow_federated', 'reporting')});
($answer, $warnings, $elapsed) = in_transaction('slow',
	q{SET edgesync_cloud.query_timeout = '1s'; SELECT ward AS answer FROM clinic.slow_federated_get(1)});
like($answer, qr/^B$/m, 'hospital slow: the replica answers');
like($warnings, qr/WARNING:  hospital server "hospital" is unreachable.*\n.*no answer within 00:00:01/,
	'with a WARNING that says why');
cmp_ok($elapsed, '<', 5, 'after the query timeout');

# Killed in the middle of a query: its backend terminated, or the whole hospital shut down.
sub wait_for_sleep
{
	$hospital->poll_query_until('postgres', q{
		SELECT count(*) > 0 FROM pg_stat_activity WHERE usename = 'cloud_reader' AND wait_event = 'PgSleep'})
	  or die "the remote query never started";
}
for my $query (q{SELECT count(*) || '/' || count(*) FILTER (WHERE _source = 'replica') AS answer FROM clinic.slow_federated},
	q{SELECT ward || '/' || _source AS answer FROM clinic.slow_federated_get(1)})
{
	my $what = $query =~ /_get/ ? 'a lookup' : 'the whole view';
	($answer, $warnings) = in_transaction("backend terminated, $what", $query, sub {
		wait_for_sleep();
		$hospital->safe_psql('postgres', q{
			SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			 WHERE usename = 'cloud_reader' AND wait_event = 'PgSleep'});
	});
	like($answer, $what eq 'a lookup' ? qr{B/replica} : qr{100/100}, "backend terminated, $what: the replica answers");
	like($warnings, qr/WARNING:  hospital server "hospital" is unreachable/, "backend terminated, $what: with a WARNING");
	($answer, $warnings) = in_transaction("hospital shut down, $what", $query, sub {
		wait_for_sleep();
		$hospital->stop('immediate');
	});
	like($answer, $what eq 'a lookup' ? qr{B/replica} : qr{100/100}, "hospital shut down, $what: the replica answers");
	like($warnings, qr/WARNING:  hospital server "hospital" is unreachable/, "hospital shut down, $what: with a WARNING");
	$hospital->start;
}

# Cancelled: the cancel is served while waiting for the hospital, the
# hospital ends the abandoned query, and the session goes on.
{
	my $s = $cloud->background_psql('postgres', on_error_stop => 0, extra_params => [ '-U', 'reporting' ]);
	my $cloud_pid = $s->query_safe('SELECT pg_backend_pid()');
	$cloud_pid =~ s/\s+//g;
	$s->query_until(qr/started/, "\\echo started\nSELECT * FROM clinic.slow_federated_get(1);\n\\echo __cancelled__\n");
	wait_for_sleep();
	my $t0 = time;
	$cloud->safe_psql('postgres', "SELECT pg_cancel_backend($cloud_pid)");
	$s->query_until(qr/__cancelled__/, '');
	like($s->{stderr}, qr/canceling statement due to user request/, 'a cancel stops the wait for the hospital');
	unlike($s->{stderr}, qr/WARNING/, 'and is not taken for an outage');
	cmp_ok(time - $t0, '<', 5, 'at once');
	ok($hospital->poll_query_until('postgres', q{
		SELECT count(*) = 0 FROM pg_stat_activity WHERE usename = 'cloud_reader' AND wait_event = 'PgSleep'}),
		'the hospital ends the abandoned query');
	$s->{stderr} = '';
	is($s->query_safe(q{SELECT ward || '/' || _source FROM clinic.patients_federated_get(1)}), 'ICU/hospital',
		'the session then reads the hospital again');
	$s->quit;
}

# A hospital that answers but refuses (its table changed): an error, not an outage.
$hospital->safe_psql('postgres', q{ALTER TABLE patients RENAME COLUMN ward TO unit});
($rc, $out, $err) = $cloud->psql('postgres', q{SELECT * FROM clinic.patients_federated_get(1)},
	extra_params => [ '-U', 'reporting' ]);
like($err, qr/ERROR:  the hospital refused a federated query\nDETAIL:  The hospital answered: column "ward" does not exist\./,
	'a refusal is an error that says what the hospital said');
$hospital->safe_psql('postgres', q{ALTER TABLE patients RENAME COLUMN unit TO ward});

# Row level security: never a hidden row taken for a deleted one.
($rc, $out, $err) = owner(q{SELECT edgesync_cloud.federate('clinic.shared', 'hospital')});
like($err, qr/ERROR:  row level security hides rows of "public\.shared" from role "cloud_reader" on server "hospital"/,
	'federate() refuses a mapped role that row level security limits');
is(owner_safe(q{SELECT count(*) FROM pg_class WHERE relname = 'shared_federated'}), '0', 'and creates nothing');
owner_safe(q{SELECT edgesync_cloud.federate('clinic.shared', 'hospital', visible_rows_only => true);
	SELECT edgesync_cloud.grant_read('clinic.shared_federated', 'reporting')});
is(fed(q{SELECT string_agg(id || ':' || _source, ' ' ORDER BY id) FROM clinic.shared_federated WHERE id <= 4}),
	'1:replica_unverified 2:hospital 3:replica_unverified 4:hospital',
	'visible_rows_only: rows the role sees are live, the others come from the replica, marked');
is(fed(q{SELECT _source FROM clinic.shared_federated_get(3)}), 'replica_unverified', 'also by key');
$hospital->safe_psql('postgres', q{ALTER ROLE cloud_reader BYPASSRLS});
owner_safe(q{SELECT edgesync_cloud.federate('clinic.shared', 'hospital');
	SELECT edgesync_cloud.grant_read('clinic.shared_federated', 'reporting')});
is(fed(q{SELECT count(*) FILTER (WHERE _source = 'hospital') FROM clinic.shared_federated}), '10',
	'a role that sees every row is accepted');
$hospital->safe_psql('postgres', q{ALTER ROLE cloud_reader NOBYPASSRLS});
($rc, $out, $err) = $cloud->psql('postgres',
	q{SELECT count(*) || '/' || count(*) FILTER (WHERE _source = 'replica') FROM clinic.shared_federated},
	extra_params => [ '-U', 'reporting' ]);
is($out, '10/10', 'rows hidden later: the answer is the replica\'s, whole (5 rows would be silently short)');
like($err, qr/WARNING:  row level security hides rows of public\.shared from the user mapping's role on hospital server "hospital"/,
	'with a WARNING that says why');
($rc, $out, $err) = $cloud->psql('postgres', q{SELECT name FROM clinic.shared_federated_get(3)},
	extra_params => [ '-U', 'reporting' ]);
is($out, 'patient 3', 'a lookup of a hidden row answers from the replica too');
like($err, qr/WARNING:  row level security hides rows/, 'with the same WARNING');

# Rights: the view's functions run as its owner, for those granted them only.
$cloud->safe_psql('postgres', q{CREATE ROLE stranger LOGIN});
($rc, $out, $err) = $cloud->psql('postgres', q{SELECT * FROM clinic.patients_federated_get(1)},
	extra_params => [ '-U', 'stranger' ]);
like($err, qr/permission denied for (schema clinic|function patients_federated_get)/, 'a role not granted cannot read it');
($rc, $out, $err) = $cloud->psql('postgres',
	q{SELECT * FROM edgesync_cloud.merged_rows(NULL::clinic.patients_federated_row, NULL::clinic.patients_federated_row[])},
	extra_params => [ '-U', 'reporting' ]);
like($err, qr/permission denied for table patients|user mapping not found/,
	'calling the merge directly runs with the caller\'s own rights, not the owner\'s');

# The catalog of federations: readable by all, changed only for views one owns.
($rc, $out, $err) = $cloud->psql('postgres', q{DELETE FROM edgesync_cloud.federations RETURNING view},
	extra_params => [ '-U', 'stranger' ]);
is($out, '', 'another role deletes no federation of the owner');
($rc, $out, $err) = $cloud->psql('postgres', q{
	INSERT INTO edgesync_cloud.federations
	SELECT 'pg_catalog.pg_class'::regclass, 'int4'::regtype, replica, server, server_oid, remote_schema, remote_table,
	       visible_rows_only, now(), columns, types, pushable, collatable, keys, key_types
	  FROM edgesync_cloud.federations LIMIT 1}, extra_params => [ '-U', 'stranger' ]);
like($err, qr/new row violates row-level security policy/, 'nor adds one for objects it does not own');
($rc, $out, $err) = $cloud->psql('postgres', q{UPDATE edgesync_cloud.federations SET server = 'elsewhere'},
	extra_params => [ '-U', 'stranger' ]);
like($err, qr/permission denied for table federations/, 'nor changes one');
is(owner_safe(q{SELECT count(*) FROM edgesync_cloud.federations}), '3', 'the federations are all there');

# unfederate() removes the view, its functions and its type.
owner_safe(q{SELECT edgesync_cloud.unfederate('clinic.slow_federated')});
is(owner_safe(q{SELECT count(*) FROM pg_class WHERE relname LIKE 'slow_federated%'}) . '/'
	  . owner_safe(q{SELECT count(*) FROM pg_proc WHERE proname LIKE 'slow_federated%'}) . '/'
	  . owner_safe(q{SELECT count(*) FROM edgesync_cloud.federations WHERE view::text LIKE '%slow%'}),
	'0/0/0', 'unfederate() drops the view, its functions and its catalog row');

$cloud->stop;
$hospital->stop;
done_testing();
