# A federated view never takes "not visible" for "deleted".  When row level
# security at the hospital hides rows from the user mapping's role, the
# merge would take every hidden replica row as deleted and answer that
# patients who exist do not.  federate() refuses such a role (or, asked for
# visible_rows_only, serves the hidden rows from the replica, marked), a
# policy that starts hiding rows later turns the answer into the replica's
# with a WARNING, and a role that cannot read a column is refused up front.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use EdgesyncTest;

my $hospital = edgesync_node('hospital');
my $cloud = edgesync_node('cloud');

# Two hospitals' rows in one table, split by a policy for the reporting role.
$hospital->safe_psql('postgres', q{
	CREATE EXTENSION edgesync;
	CREATE TABLE patients (id int PRIMARY KEY, hospital_id int NOT NULL, name text);
	SELECT edgesync.track('patients');
	INSERT INTO patients (id, hospital_id, name)
	SELECT g, 1 + g % 2, 'patient ' || g FROM generate_series(1, 10) g;
	ALTER TABLE patients ENABLE ROW LEVEL SECURITY;
	CREATE ROLE cloud_reader LOGIN;
	CREATE ROLE cloud_partial LOGIN;
	GRANT SELECT ON patients TO cloud_reader;
	GRANT SELECT (id, hospital_id, version, created_at, updated_at) ON patients TO cloud_partial;
	CREATE POLICY own_hospital ON patients FOR SELECT TO cloud_reader, cloud_partial
	    USING (hospital_id = 1);
});

my $rows = $hospital->safe_psql('postgres', q{
	SELECT string_agg(format('(%s, %s, %L, %s, %L, %L)', id, hospital_id, name, version,
	                         created_at, updated_at), ', ' ORDER BY id) FROM patients});
my ($host, $port) = ($hospital->host, $hospital->port);
$cloud->safe_psql('postgres', qq{
	CREATE EXTENSION edgesync;
	CREATE EXTENSION postgres_fdw;
	CREATE SERVER hospital FOREIGN DATA WRAPPER postgres_fdw
	  OPTIONS (host '$host', port '$port', dbname 'postgres');
	CREATE SERVER hospital_partial FOREIGN DATA WRAPPER postgres_fdw
	  OPTIONS (host '$host', port '$port', dbname 'postgres');
	CREATE USER MAPPING FOR CURRENT_USER SERVER hospital OPTIONS (user 'cloud_reader');
	CREATE USER MAPPING FOR CURRENT_USER SERVER hospital_partial OPTIONS (user 'cloud_partial');
	CREATE TABLE patients (id int PRIMARY KEY, hospital_id int NOT NULL, name text,
	    version bigint NOT NULL DEFAULT 1, created_at timestamptz NOT NULL DEFAULT now(),
	    updated_at timestamptz NOT NULL DEFAULT now());
	INSERT INTO patients VALUES $rows;
});

# 1. A role that row level security limits is refused, with the role, the table and the fix.
my ($rc, $out, $err) = $cloud->psql('postgres',
	q{SELECT edgesync.federate('patients', 'hospital')},
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/ERROR:  42501: row level security hides rows of "public\.patients" from role "cloud_reader" on server "hospital"/,
	'federate() refuses a mapped role that row level security limits');
like($err, qr/HINT:  .*BYPASSRLS.*visible_rows_only => true/s, 'and says how to fix it');
is($cloud->safe_psql('postgres', q{SELECT count(*) FROM pg_class WHERE relname LIKE 'patients_federated%'}),
	'0', 'and creates nothing');

# 2. A role that cannot read a column the view needs is refused, naming the columns.
($rc, $out, $err) = $cloud->psql('postgres',
	q{SELECT edgesync.federate('patients', 'hospital_partial', view_name => 'partial')},
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/ERROR:  42501: role "cloud_partial" on server "hospital_partial" cannot read columns name of "public\.patients"/,
	'federate() refuses a mapped role that cannot read a column');
like($err, qr/HINT:  At the hospital: GRANT SELECT \(name\) ON public\.patients TO cloud_partial;/,
	'and gives the GRANT that fixes it');

# 3. Asked for it, a view limited to what the role sees: hidden rows come from the replica, marked.
$cloud->safe_psql('postgres',
	q{SELECT edgesync.federate('patients', 'hospital', view_name => 'patients_visible', visible_rows_only => true)});
$hospital->safe_psql('postgres', q{
	UPDATE patients SET name = 'renamed' WHERE id IN (2, 3);   -- 2 visible (hospital 1), 3 hidden
	DELETE FROM patients WHERE id = 4;                          -- visible, deleted
});
# Row 4 is gone at the hospital, but a missing row cannot be told from a
# hidden one: until the stream deletes it from the replica, it is unverified.
is($cloud->safe_psql('postgres', q{
	SELECT string_agg(id || ':' || name || ':' || _source, ' ' ORDER BY id)
	  FROM patients_visible WHERE id <= 5}),
	'1:patient 1:replica_unverified 2:renamed:hospital 3:patient 3:replica_unverified 4:patient 4:replica_unverified 5:patient 5:replica_unverified',
	'visible rows are live, rows the hospital does not return come from the replica as replica_unverified');
$cloud->safe_psql('postgres', q{DELETE FROM patients WHERE id = 4});   # as the stream would
is($cloud->safe_psql('postgres', q{SELECT count(*) FROM patients_visible}), '9',
	'once the replica has the delete, the row is gone');
is($cloud->safe_psql('postgres', q{SELECT visible_rows_only FROM edgesync.federations WHERE view = 'patients_visible'::regclass}),
	't', 'edgesync.federations says which views are limited');

# 4. A role that sees every row is accepted; when a policy starts hiding rows
#    later, the query answers from the replica with a WARNING, never silently short.
$hospital->safe_psql('postgres', q{ALTER ROLE cloud_reader BYPASSRLS});
is($cloud->safe_psql('postgres', q{SELECT edgesync.federate('patients', 'hospital')}),
	'patients_federated', 'a role that bypasses row level security is accepted');
is($cloud->safe_psql('postgres', q{SELECT count(*) || '/' || count(*) FILTER (WHERE _source = 'hospital') FROM patients_federated}),
	'9/9', 'the view answers from the hospital, the deleted row gone');

$hospital->safe_psql('postgres', q{ALTER ROLE cloud_reader NOBYPASSRLS});
($rc, $out, $err) = $cloud->psql('postgres', q{
	SELECT count(*) || '/' || count(*) FILTER (WHERE _source = 'replica') FROM patients_federated});
is($out, '9/9', 'rows hidden later: the answer is the replica\'s, whole (5 rows would be silently short)');
like($err, qr/WARNING:  row level security hides rows of public\.patients from the user mapping's role on hospital server "hospital": answering from the replica alone/,
	'with a WARNING that says why');
is(scalar(() = $err =~ /WARNING/g), 1, 'one WARNING for the statement');
($rc, $out, $err) = $cloud->psql('postgres', q{SELECT name FROM patients_federated WHERE id = 2});
is($out, 'patient 2', 'a one-patient lookup is answered from the replica too');
like($err, qr/WARNING:  row level security hides rows/, 'with the same WARNING');

# count(*) is sent to the hospital (one statement), and the same rule holds:
# with rows hidden, the replica's count, never the 4 rows the role sees.
like($cloud->safe_psql('postgres', q{EXPLAIN (VERBOSE, COSTS OFF) SELECT count(*) FROM patients_federated}),
	qr/Remote SQL: SELECT pg_catalog\.count\(\*\) FROM public\.patients/, 'count(*) is sent to the hospital');
($rc, $out, $err) = $cloud->psql('postgres', q{SELECT count(*) FROM patients_federated});
is($out, '9', 'count(*) with rows hidden: the replica\'s count, not the hospital\'s shorter one');
like($err, qr/WARNING:  row level security hides rows/, 'with the same WARNING');
# A view limited to what the role sees also returns the replica rows it does
# not see: its count is the scan's, not the hospital's.
unlike($cloud->safe_psql('postgres', q{EXPLAIN (VERBOSE, COSTS OFF) SELECT count(*) FROM patients_visible}),
	qr/count\(\*\) FROM public\.patients/, 'count(*) of a visible_rows_only view is not sent to the hospital');
is($cloud->safe_psql('postgres', q{SELECT count(*) FROM patients_visible}), '9',
	'and counts the rows the view returns');

# The plan says who answered.
my $plan = $cloud->safe_psql('postgres',
	q{EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT * FROM patients_visible});
like($plan, qr/Answered By: hospital \(rows it hides: replica\) and replica/, 'EXPLAIN ANALYZE shows a limited answer');

$hospital->stop;
$cloud->stop;
done_testing();
