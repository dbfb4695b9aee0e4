# A postgresql:// target on a cloud server that has nothing of edgesync (not
# preloaded, no extension, no function of ours: checked in pg_extension and
# pg_proc), applied by a role that is neither superuser nor REPLICATION and
# holds only CONNECT, CREATE and TEMPORARY on its database.  The shipper
# creates the position table and every tracked table there itself:
# bootstrap by resync(), an application workload, then schema changes on the
# hospital mid-stream (ADD COLUMN with and without a default, DROP, RENAME
# and ALTER TYPE of a column, a new table in a tracked schema, a table
# renamed and one untracked, a partition attached), the hospital and the
# cloud each shut down immediately at some point.  At the end every table's
# ordered checksum matches the hospital's (the hashed column holds no clear
# text, the redacted one nothing), and a replay of the whole stream by the
# shipper writes no row.  Then check only (schema_changes => 'check').
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);
use FindBin;
use lib "$FindBin::RealBin/../perl";
use EdgesyncTest;

# The cloud: a stock server, nothing of edgesync in its configuration.
my $cloud = PostgreSQL::Test::Cluster->new('cloud');
$cloud->init;
$cloud->start;
$cloud->safe_psql('postgres', q{
	CREATE DATABASE replica;
	CREATE ROLE feed LOGIN PASSWORD 'pw-SECRET-309' NOSUPERUSER NOREPLICATION;
	-- CONNECT and CREATE; TEMPORARY (for resync's sweep) as PUBLIC has it by default.
	REVOKE ALL ON DATABASE replica FROM PUBLIC;
	GRANT CONNECT, CREATE, TEMPORARY ON DATABASE replica TO feed;
});

my $hospital = edgesync_node('hospital', extra_conf => q{
edgesync.hash_key = 'tap-309-key'
edgesync.ship_databases = 'postgres'
edgesync.ship_naptime = 50ms
edgesync.ship_retry_min = 50ms
edgesync.ship_retry_max = 500ms
});
$hospital->safe_psql('postgres', q{
	CREATE EXTENSION edgesync;
	CREATE SCHEMA clinic;
	CREATE TABLE clinic.patients (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	                              mrn text NOT NULL, name text NOT NULL, notes text,
	                              weight numeric(6,2), born date);
	CREATE TABLE clinic.stays (id int, ward text NOT NULL, PRIMARY KEY (id)) PARTITION BY RANGE (id);
	CREATE TABLE clinic.stays_1 PARTITION OF clinic.stays FOR VALUES FROM (0) TO (100000);
	SELECT edgesync.track_schema('clinic');
	SELECT edgesync.set_column_policy('clinic.patients', 'mrn', 'hash');
	SELECT edgesync.set_column_policy('clinic.patients', 'notes', 'redact');
	INSERT INTO clinic.patients (mrn, name, notes, weight, born)
	SELECT 'MRN-' || g, 'patient ' || g, 'secret note ' || g, g / 10.0, date '1950-01-01' + g
	  FROM generate_series(1, 300) g;
	INSERT INTO clinic.stays SELECT g, 'W' || g % 7 FROM generate_series(1, 200) g;
});

# Nothing of edgesync on the cloud, and a role with no special attribute.
is($cloud->safe_psql('replica', q{
	SELECT (SELECT count(*) FROM pg_extension WHERE extname = 'edgesync') || '/' ||
	       (SELECT count(*) FROM pg_proc WHERE proname LIKE '%apply%' OR prosrc LIKE '%edgesync%'
	           OR probin LIKE '%edgesync%') || '/' ||
	       (SELECT rolsuper OR rolreplication OR rolcreatedb OR rolcreaterole FROM pg_roles WHERE rolname = 'feed')}),
	'0/0/false', 'the cloud has no edgesync, the feed role no special attribute');
is($cloud->safe_psql('replica', q{SHOW shared_preload_libraries}), '', 'the cloud preloads nothing');

my $url = 'postgresql://feed:pw-SECRET-309@/replica?host=' . $cloud->host . '&port=' . $cloud->port;
$hospital->safe_psql('postgres', qq{SELECT edgesync.add_target('cloud', '$url', timeout_ms => 5000)});
$hospital->safe_psql('postgres', q{SELECT edgesync.resync('cloud')});

my %checksum = (
	'clinic.patients' => q{SELECT count(*) || ':' || md5(string_agg(concat_ws('|', id, name, weight, born,
	                          version, created_at, updated_at), ',' ORDER BY id)) FROM clinic.patients},
	'clinic.stays' => q{SELECT count(*) || ':' || md5(string_agg(concat_ws('|', id, ward, version), ',' ORDER BY id))
	                      FROM clinic.stays},);

sub status { return edgesync_target_health($hospital, 'postgres') }

sub wait_converged
{
	my ($what) = @_;
	edgesync_wait_converged($what, hospital => [ $hospital, 'postgres' ], cloud => [ $cloud, 'replica' ],
		checksums => \%checksum, seconds => 90);
}

wait_converged('bootstrap by resync');
$hospital->poll_query_until('postgres', 'SELECT NOT resync_pending FROM edgesync.target_status')
  or die 'resync not done';
# A copy of the target's slot nobody reads until the end: the whole stream, to replay.
$hospital->safe_psql('postgres', q{SELECT pg_copy_logical_replication_slot('edgesync_cloud', 'replay')});
is($cloud->safe_psql('replica', q{
	SELECT string_agg(c.oid::regclass || ':' || pg_get_userbyid(c.relowner), ',' ORDER BY c.oid::regclass::text)
	  FROM pg_class c WHERE c.relnamespace IN ('clinic'::regnamespace, 'edgesync'::regnamespace) AND c.relkind IN ('r', 'p')}),
	'clinic.patients:feed,clinic.stays:feed,edgesync.applied_lsn:feed',
	'the shipper created the position table and the tracked tables, owned by the feed role');
is($cloud->safe_psql('replica', q{
	SELECT format_type(atttypid, atttypmod) FROM pg_attribute
	 WHERE attrelid = 'clinic.patients'::regclass AND attname = 'mrn'}), 'text', 'the hashed column is text');
is($cloud->safe_psql('replica', q{
	SELECT count(*) FILTER (WHERE mrn LIKE 'MRN-%') || '/' || count(notes) || '/' || count(DISTINCT mrn)
	  FROM clinic.patients}), '0/0/300', 'no clear text of the hashed column, nothing of the redacted one');
is($cloud->safe_psql('replica', q{
	SELECT attidentity FROM pg_attribute WHERE attrelid = 'clinic.patients'::regclass AND attname = 'id'}),
	'', 'the hospital\'s identity column is a plain column holding its values');

my $next = 1000;

# Transactions of inserts, updates and deletes on both tables.
my $name_column = 'name';

sub workload_named
{
	$name_column = 'full_name';
	workload(@_);
}

sub workload
{
	my ($txns) = @_;
	my $sql = '';
	for (1 .. $txns)
	{
		my $first = $next;
		$next += 20;
		$sql .= "BEGIN; INSERT INTO clinic.patients (mrn, $name_column, notes, weight) "
		  . "SELECT 'MRN-' || g, 'new ' || g, 'note', g / 100.0 FROM generate_series($first, $first + 19) g; "
		  . "UPDATE clinic.patients SET $name_column = $name_column || '+' WHERE id % 17 = $first % 17; "
		  . "DELETE FROM clinic.patients WHERE id % 29 = $first % 29 AND id > 40; "
		  . "INSERT INTO clinic.stays SELECT g, 'X' FROM generate_series($first, $first + 4) g; "
		  . "UPDATE clinic.stays SET ward = ward || '.' WHERE id % 13 = $first % 13; COMMIT;\n";
	}
	$hospital->safe_psql('postgres', $sql);
}

workload(20);
wait_converged('workload');

# Columns added on the hospital travel with the data: one with a default
# (the rows the replica has take it), one without.
$hospital->safe_psql('postgres', q{
	ALTER TABLE clinic.patients ADD COLUMN allergies text NOT NULL DEFAULT 'none';
	ALTER TABLE clinic.patients ADD COLUMN room int;
	UPDATE clinic.patients SET room = id % 50, allergies = 'latex' WHERE id % 5 = 0;
});
$checksum{'clinic.patients'} =~ s/born,/born, allergies, room,/;
workload(10);

# The hospital stops hard mid-stream.
$hospital->stop('immediate');
$hospital->start;
wait_converged('columns added, hospital shut down');

# A new table in the tracked schema: tracked on the hospital as it is
# created, created on the cloud by its first change.
$hospital->safe_psql('postgres', q{
	CREATE TABLE clinic.labs (id bigint PRIMARY KEY, patient int NOT NULL, result text, taken timestamptz);
	INSERT INTO clinic.labs SELECT g, g % 300 + 1, 'r' || g, timestamptz '2026-01-01' + g * interval '1 hour'
	  FROM generate_series(1, 500) g;
});
$checksum{'clinic.labs'} = q{SELECT count(*) || ':' || md5(string_agg(concat_ws('|', id, patient, result, taken, version),
                               ',' ORDER BY id)) FROM clinic.labs};
workload(5);

# Columns dropped, renamed and retyped, a table renamed: the replica's
# tables follow in stream order, rows changed right after included.
$hospital->safe_psql('postgres', q{
	ALTER TABLE clinic.patients DROP COLUMN born;
	UPDATE clinic.patients SET weight = weight + 0.5 WHERE id % 9 = 0;
	ALTER TABLE clinic.patients RENAME COLUMN name TO full_name;
	ALTER TABLE clinic.patients ALTER COLUMN weight TYPE numeric(8,3);
	UPDATE clinic.patients SET full_name = full_name || '!' WHERE id % 10 = 1;
	ALTER TABLE clinic.labs RENAME TO lab_results;
	INSERT INTO clinic.lab_results VALUES (1000, 1, 'after rename', now());
});
$checksum{'clinic.patients'} =~ s/id, name, weight, born,/id, full_name, weight,/;
delete $checksum{'clinic.labs'};
$checksum{'clinic.lab_results'} = q{SELECT count(*) || ':' || md5(string_agg(concat_ws('|', id, patient, result, taken, version),
                                     ',' ORDER BY id)) FROM clinic.lab_results};
workload_named(5);
wait_converged('columns dropped, renamed, retyped; table renamed');
is($cloud->safe_psql('replica', q{
	SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum)
	  FROM pg_attribute WHERE attrelid = 'clinic.patients'::regclass AND attnum > 0 AND NOT attisdropped}),
	'id integer, mrn text, full_name text, notes text, weight numeric(8,3), version bigint, '
	  . 'created_at timestamp with time zone, updated_at timestamp with time zone, allergies text, room integer',
	'the replica table has the hospital\'s columns, names and types');
is($cloud->safe_psql('replica', q{SELECT to_regclass('clinic.labs') IS NULL AND to_regclass('clinic.lab_results') IS NOT NULL}),
	't', 'the replica table was renamed');

# The cloud stops hard while the shipper applies.
workload(30);
$cloud->stop('immediate');
workload(3);
for (1 .. 300)
{
	last if status() =~ /^[1-9]\d*\|/;
	sleep(0.1);
}
like(status(), qr/^[1-9]\d*\|/, 'cloud down: failures recorded');
$cloud->start;

# A partition attached on the hospital: its rows arrive in the tracked table.
$hospital->safe_psql('postgres', q{
	CREATE TABLE public.stays_2 (id int NOT NULL, ward text NOT NULL, version bigint NOT NULL DEFAULT 1,
	                             created_at timestamptz NOT NULL DEFAULT now(),
	                             updated_at timestamptz NOT NULL DEFAULT now());
	ALTER TABLE clinic.stays ATTACH PARTITION public.stays_2 FOR VALUES FROM (100000) TO (200000);
	INSERT INTO clinic.stays SELECT g, 'P2' FROM generate_series(100000, 100099) g;
	UPDATE clinic.stays SET ward = 'P2b' WHERE id BETWEEN 100000 AND 100010;
});
workload(5);
wait_converged('new table, cloud shut down, partition attached');
like(status(), qr/^0\|/, 'the target is healthy');

# A replay of the whole stream by the shipper: its slot is replaced by the
# copy taken after the bootstrap and its record of acknowledgements
# forgotten, so it sends every transaction again, those
# from before the columns were renamed and dropped included.  Nothing is
# written, and the target stays healthy.
my $lsn = $cloud->safe_psql('replica', 'SELECT lsn FROM edgesync.applied_lsn');
edgesync_replay_writes_nothing(
	hospital => [ $hospital, 'postgres' ],
	cloud => [ $cloud, 'replica' ],
	target => 'cloud',
	copy => 'replay',
	role => 'feed',
	tables => [qw(clinic.patients clinic.stays clinic.lab_results)],
	checksums => \%checksum,
	hospital_sql => 'CREATE TABLE public.untracked (x int); INSERT INTO public.untracked VALUES (1);');
is($cloud->safe_psql('replica', 'SELECT lsn FROM edgesync.applied_lsn'), $lsn, 'the replay moved no position');

# Untracked on the hospital: no longer shipped, the replica keeps its table and rows.
my $kept = $cloud->safe_psql('replica', $checksum{'clinic.lab_results'});
$hospital->safe_psql('postgres', q{
	SELECT edgesync.untrack('clinic.lab_results');
	INSERT INTO clinic.lab_results VALUES (9999, 1, 'not shipped', now());
	UPDATE clinic.patients SET room = 1 WHERE id = 1;
});
delete $checksum{'clinic.lab_results'};
wait_converged('a table untracked');
is($cloud->safe_psql('replica', q{SELECT count(*) || ':' || md5(string_agg(concat_ws('|', id, patient, result, taken, version),
                               ',' ORDER BY id)) FROM clinic.lab_results}), $kept,
	'untracked: the replica keeps the table and its rows, and gets no new ones');

# Nobody but the event trigger records a schema change: not a table's owner.
$hospital->safe_psql('postgres', q{CREATE ROLE clerk LOGIN; GRANT USAGE ON SCHEMA edgesync TO clerk});
my ($frc, $fout, $ferr) = $hospital->psql('postgres', q{SET ROLE clerk;
	INSERT INTO edgesync.schema_changes (relid, change, old_name) VALUES (16384, 'drop_column', 'mrn')});
like($ferr, qr/permission denied for table schema_changes/, 'a hospital role cannot record a schema change');

# Check only: the DBA keeps the cloud's schema.  A column the replica lacks
# stops the target, which says what is missing and the statement that would
# fix it; the replica's table is left alone.  Back to apply, it catches up.
$hospital->safe_psql('postgres', q{
	SELECT edgesync.alter_target('cloud', schema_changes => 'check');
	ALTER TABLE clinic.patients ADD COLUMN ward text;
	UPDATE clinic.patients SET ward = 'ICU' WHERE id % 20 = 0;
});
$checksum{'clinic.patients'} =~ s/room,/room, ward,/;
my $detail = '';
for (1 .. 300)
{
	$detail = $hospital->safe_psql('postgres', q{SELECT coalesce(last_error_detail, '') FROM edgesync.target_state});
	last if $detail =~ /lacks column/;
	sleep(0.1);
}
like($detail, qr/replica table clinic\.patients lacks column ward \(fix: ALTER TABLE clinic\.patients ADD COLUMN "ward" pg_catalog\.text\)/,
	'check only: the target stops naming the table, the difference and the fix');
like(status(), qr/^[1-9]\d*\|.*42703/, 'check only: target_status shows the failure and its SQLSTATE');
is($cloud->safe_psql('replica', q{SELECT count(*) FROM pg_attribute WHERE attrelid = 'clinic.patients'::regclass AND attname = 'ward'}),
	'0', 'check only: the replica\'s table is left alone');
$hospital->safe_psql('postgres', q{SELECT edgesync.alter_target('cloud', schema_changes => 'apply')});
wait_converged('back to apply');

done_testing();
