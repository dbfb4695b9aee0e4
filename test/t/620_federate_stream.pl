# The federated view over a replica fed by edgesync's own stream
# (pg_recvlogical -o format=sql | psql), with column policies: the replica
# holds name redacted and mrn hashed; the federated view shows the real
# values while the hospital answers, and the replica's when it does not.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use EdgesyncTest;

my $hospital = edgesync_node('hospital', extra_conf => "edgesync.hash_key = 'regress-key'");
my $cloud = edgesync_node('cloud');
my $timeout = $PostgreSQL::Test::Utils::timeout_default;

for my $node ($hospital, $cloud)
{
	$node->safe_psql('postgres', q{CREATE DATABASE hospital});
	$node->safe_psql('hospital', 'CREATE EXTENSION edgesync');
}
$hospital->safe_psql('hospital', q{
	CREATE TABLE hospital_patients (id int PRIMARY KEY, mrn text NOT NULL, name text, ward text);
	SELECT edgesync.track('hospital_patients');
	SELECT edgesync.set_column_policy('hospital_patients', 'name', 'redact');
	SELECT edgesync.set_column_policy('hospital_patients', 'mrn', 'hash');
});

# The replica's table: the hospital's definition.
my ($out, $err);
IPC::Run::run([ 'pg_dump', '--schema-only', '--table', 'hospital_patients', '-d', $hospital->connstr('hospital') ],
	'|', [ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $cloud->connstr('hospital') ],
	'>', \$out, '2>', \$err, IPC::Run::timeout($timeout))
  or die "pg_dump | psql failed: $err";

# Stream the hospital's changes into it.
IPC::Run::run([ 'pg_recvlogical', '--dbname', $hospital->connstr('hospital'), '-S', 'cloud',
		'--create-slot', '--plugin=edgesync' ], '>', \$out, '2>', \$err)
  or die "could not create the slot: $err";
$hospital->safe_psql('hospital', q{
	INSERT INTO hospital_patients (id, mrn, name, ward)
	SELECT g, 'MRN' || g, 'Patient ' || g, 'A' FROM generate_series(1, 20) g;
	UPDATE hospital_patients SET ward = 'B' WHERE id <= 5;
});
my $end = $hospital->lsn('insert');
ok(IPC::Run::run([ 'pg_recvlogical', '--dbname', $hospital->connstr('hospital'), '-S', 'cloud', '--start',
			'--no-loop', '--endpos', $end, '-f', '-', '-o', 'format=sql', '-o', 'source=hospital' ],
		'|', [ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $cloud->connstr('hospital') ],
		'>', \$out, '2>', \$err, IPC::Run::timeout($timeout)),
	'the replica is fed by the stream') or diag($err);
is($cloud->safe_psql('hospital', q{
	SELECT count(*) || '/' || count(name) || '/' || count(*) FILTER (WHERE mrn LIKE 'MRN%') || '/' || sum(version)
	  FROM hospital_patients}),
	'20/0/0/25', 'the replica has every row and version, name redacted and mrn hashed');

my $host = $hospital->host;
my $port = $hospital->port;
$cloud->safe_psql('hospital', qq{
	CREATE EXTENSION postgres_fdw;
	CREATE SERVER hospital FOREIGN DATA WRAPPER postgres_fdw
	  OPTIONS (host '$host', port '$port', dbname 'hospital');
	CREATE USER MAPPING FOR CURRENT_USER SERVER hospital;
	SELECT edgesync.federate('hospital_patients', 'hospital');
});

is($cloud->safe_psql('hospital', q{
	SELECT name || '/' || mrn || '/' || ward || '/' || _source || '/' || _version
	  FROM hospital_patients_federated WHERE id = 3}),
	'Patient 3/MRN3/B/hospital/2', 'hospital up: redacted and hashed columns come from the live row');
is($cloud->safe_psql('hospital', q{SELECT count(*) FROM hospital_patients_federated WHERE name LIKE 'Patient %'}),
	'20', 'for every row');
is($cloud->safe_psql('hospital', q{SELECT id FROM hospital_patients_federated WHERE mrn = 'MRN7'}),
	'7', 'a filter on a hashed column finds the live row');

$hospital->stop('fast');
$cloud->psql('hospital', q{
	SELECT coalesce(name, '(redacted)') || '/' || (mrn = 'MRN3') || '/' || ward || '/' || _source
	  FROM hospital_patients_federated WHERE id = 3},
	stdout => \$out, stderr => \$err);
is($out, '(redacted)/false/B/replica', 'hospital down: the replica row, as the stream left it');
like($err, qr/WARNING:  hospital server "hospital" is unreachable/, 'with a WARNING');

$cloud->stop;
done_testing();
