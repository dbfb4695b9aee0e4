# Whole-table reads of a federated view: merged in one pass in key order
# (edgesync.federate_streaming, the default) they give exactly the answer of
# the merge in memory, also for text keys that the two servers' collations
# sort differently; where the orders cannot be trusted (another encoding at
# the hospital, keys that are not unique there) the scan merges in memory.
# count(*) is answered by the hospital when that is provably the same number,
# and by the replica, with a WARNING, when the hospital cannot answer.
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

# Two tables: an integer key, and a text/integer key whose text sorts
# differently in the hospital's collation (ICU) and the replica's ("C").
my $tables = q{
	CREATE TABLE patients (id int PRIMARY KEY, name text, ward text);
	CREATE TABLE queues (ward text COLLATE "und-x-icu", ticket int, status text,
	                     PRIMARY KEY (ward, ticket));
};
$hospital->safe_psql('postgres', qq{
	CREATE EXTENSION edgesync;
	$tables
	SELECT edgesync.track('patients');
	SELECT edgesync.track('queues');
	INSERT INTO patients (id, name, ward)
	SELECT g, 'patient ' || g, CASE WHEN g % 3 = 0 THEN NULL ELSE 'w' || g % 5 END
	  FROM generate_series(1, 300) g;
	INSERT INTO queues (ward, ticket, status)
	SELECT w, t, 'waiting'
	  FROM unnest(ARRAY['a', 'B', 'b', 'Z', 'z ', 'é', 'E', 'Émile', ' ', 'a''b']) w, generate_series(1, 3) t;
	-- Keys that are not unique: rows of patient 5 and 6 twice.
	CREATE VIEW patients_twice AS
	  SELECT * FROM patients UNION ALL SELECT * FROM patients WHERE id IN (5, 6);
});

# The replica: the same rows (queues.ward in "C" here), copied as the stream would.
sub copy_rows
{
	my ($table, $cols) = @_;
	return $hospital->safe_psql('postgres', qq{
		SELECT coalesce(string_agg(format('(%s)', concat_ws(', ', $cols)), ', '), '')
		  FROM (SELECT * FROM $table) t});
}
my $patient_rows = copy_rows('patients',
	q{id, quote_nullable(name), quote_nullable(ward), version, quote_literal(created_at), quote_literal(updated_at)});
my $queue_rows = copy_rows('queues',
	q{quote_literal(ward), ticket, quote_literal(status), version, quote_literal(created_at), quote_literal(updated_at)});
my ($host, $port) = ($hospital->host, $hospital->port);
$cloud->safe_psql('postgres', qq{
	CREATE EXTENSION edgesync;
	CREATE EXTENSION postgres_fdw;
	CREATE SERVER hospital FOREIGN DATA WRAPPER postgres_fdw
	  OPTIONS (host '$host', port '$port', dbname 'postgres');
	CREATE USER MAPPING FOR CURRENT_USER SERVER hospital;
	CREATE TABLE patients (id int PRIMARY KEY, name text, ward text, version bigint NOT NULL,
	    created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL);
	CREATE TABLE queues (ward text COLLATE "C", ticket int, status text, version bigint NOT NULL,
	    created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL, PRIMARY KEY (ward, ticket));
	INSERT INTO patients VALUES $patient_rows;
	INSERT INTO queues VALUES $queue_rows;
	CREATE TABLE patients_dup (LIKE patients INCLUDING ALL);
	INSERT INTO patients_dup SELECT * FROM patients;
	SELECT edgesync.federate('patients', 'hospital');
	SELECT edgesync.federate('queues', 'hospital');
	SELECT edgesync.federate('patients_dup', 'hospital', remote_table => 'patients_twice');
});

# Changes on both sides since the copy: every case of the merge.
$hospital->safe_psql('postgres', q{
	UPDATE patients SET ward = 'ICU' WHERE id IN (1, 150, 300);            -- hospital fresher
	DELETE FROM patients WHERE id IN (2, 151, 299);                        -- deleted at the hospital
	INSERT INTO patients (id, name, ward) VALUES (0, 'first', 'A'), (500, 'x', NULL), (1000, 'last', 'A');   -- not replicated yet
	UPDATE queues SET status = 'seen' WHERE ticket = 1;                    -- hospital fresher
	DELETE FROM queues WHERE ward IN ('B', 'é') AND ticket = 2;            -- deleted there
	INSERT INTO queues (ward, ticket, status) VALUES ('b', 9, 'new'), ('Émile', 0, 'new'), ('0', 1, 'new');
});
$cloud->safe_psql('postgres', q{
	UPDATE patients SET ward = 'X-RAY', version = 9 WHERE id IN (3, 152, 298);    -- replica fresher
	UPDATE queues SET status = 'called', version = 9 WHERE ward IN ('z ', 'E') AND ticket = 3;
});

sub fed
{
	my ($sql, %opts) = @_;
	my $settings = $opts{streaming} // 1 ? '' : 'SET edgesync.federate_streaming = off;';
	return $cloud->safe_psql('postgres', "$settings $sql");
}

# Every column of every row, in one string, ordered here.
my %whole = (
	patients_federated => q{SELECT string_agg(format('%s|%s|%s|%s|%s|%s|%s', id, name, ward, version, updated_at, _source, _version), E'\n' ORDER BY id) FROM patients_federated},
	queues_federated => q{SELECT string_agg(format('%s|%s|%s|%s|%s', ward, ticket, status, _source, _version), E'\n' ORDER BY ward COLLATE "C", ticket) FROM queues_federated},
	patients_dup_federated => q{SELECT string_agg(format('%s|%s|%s|%s', id, ward, _source, _version), E'\n' ORDER BY id, _source) FROM patients_dup_federated},
);
for my $view (sort keys %whole)
{
	my $streamed = fed($whole{$view});
	my $in_memory = fed($whole{$view}, streaming => 0);
	is($streamed, $in_memory, "$view: the merge in key order gives the merge in memory's answer");
}

# The answer itself.
is(fed(q{SELECT count(*) FILTER (WHERE _source = 'hospital') || '/' || count(*) FILTER (WHERE _source = 'replica')
            || '/' || count(*) FILTER (WHERE id IN (2, 151, 299)) || '/' || string_agg(id::text, ',' ORDER BY id) FILTER (WHERE id IN (0, 500, 1000))
          FROM patients_federated}),
	'297/3/0/0,500,1000', 'patients: 3 replica rows fresher, 3 deleted, 3 new at the hospital');
is(fed(q{SELECT string_agg(ward || ticket || ':' || status || ':' || _source, ' ' ORDER BY ward COLLATE "C", ticket)
          FROM queues_federated WHERE ticket <> 2 AND ward IN ('z ', 'E', 'b', 'Émile', '0')}),
	'01:new:hospital E1:seen:hospital E3:called:replica b1:seen:hospital b3:waiting:hospital b9:new:hospital '
	  . 'z 1:seen:hospital z 3:called:replica Émile0:new:hospital Émile1:seen:hospital Émile3:waiting:hospital',
	'queues: text keys merged whatever each side\'s collation');
is(fed(q{SELECT count(*) FROM queues_federated WHERE ticket = 2}), '8', 'queues: two rows deleted at the hospital are gone');

my $plan = fed(q{EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM queues_federated});
like($plan, qr/Remote SQL: SELECT .* FROM public\.queues ORDER BY ward COLLATE pg_catalog\."C", ticket/,
	'a whole read asks both sides for key order, text compared byte by byte');
like($plan, qr/Merge: in key order/, 'and says it merges in key order');
like(fed(q{EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM patients_federated WHERE id = 7}), qr/Merge: in memory/,
	'a filtered read merges in memory');
like(fed(q{EXPLAIN (ANALYZE, VERBOSE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT * FROM patients_dup_federated}),
	qr/Merge: in memory/, 'keys that are not unique at the hospital: the scan merges in memory after all');

# Built-in types travel in binary when a whole read is merged in key order:
# every value comes back as the hospital has it, as through the merge in
# memory (text).  A domain (not built in) sends the whole row in text.
$hospital->safe_psql('postgres', q{
	CREATE DOMAIN short_code AS varchar(4) CHECK (VALUE <> '');
	CREATE TABLE kinds (id numeric(6, 1) PRIMARY KEY, n numeric(10, 2), v varchar(5), b bytea, j jsonb,
	    a int[], i interval, f float8, t timestamp, tz timestamptz, d date, u uuid, bo boolean, tx text,
	    version bigint NOT NULL DEFAULT 1);
	INSERT INTO kinds VALUES
	  (1.5, 12.34, 'abc', '\x00ff', '{"a": [1, 2]}', '{1,NULL,3}', '1 day -02:03:04', 1.0e-300, '2024-02-29 12:00',
	   '2024-02-29 12:00+05', '2024-02-29', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', true, 'é'),
	  (-3, 'NaN', '', '\x', 'null', '{}', '-1 mons', 'NaN', 'infinity', '-infinity', 'infinity', NULL, false, ''),
	  (7, NULL, NULL, NULL, NULL, NULL, NULL, '-Infinity', NULL, NULL, NULL, NULL, NULL, NULL);
	CREATE TABLE coded (code short_code PRIMARY KEY, note text, version bigint NOT NULL DEFAULT 1);
	INSERT INTO coded VALUES ('b', 'bee'), ('a', 'ay');
	CREATE TABLE noted (id int PRIMARY KEY, code short_code, d date, version bigint NOT NULL DEFAULT 1);
	INSERT INTO noted VALUES (2, 'b', '2024-01-02'), (1, 'a', NULL);
});
$cloud->safe_psql('postgres', q{
	CREATE DOMAIN short_code AS varchar(4) CHECK (VALUE <> '');
	CREATE TABLE kinds (id numeric(6, 1) PRIMARY KEY, n numeric(10, 2), v varchar(5), b bytea, j jsonb,
	    a int[], i interval, f float8, t timestamp, tz timestamptz, d date, u uuid, bo boolean, tx text,
	    version bigint NOT NULL DEFAULT 0);
	INSERT INTO kinds (id) VALUES (1.5), (-3), (7);
	CREATE TABLE coded (code short_code PRIMARY KEY, note text, version bigint NOT NULL DEFAULT 0);
	INSERT INTO coded (code) VALUES ('a'), ('b');
	CREATE TABLE noted (id int PRIMARY KEY, code short_code, d date, version bigint NOT NULL DEFAULT 0);
	INSERT INTO noted (id) VALUES (1), (2);
	SELECT edgesync.federate('kinds', 'hospital');
	SELECT edgesync.federate('coded', 'hospital');
	SELECT edgesync.federate('noted', 'hospital');
});
my $kinds = q{SELECT string_agg(concat_ws('|', id, n, v, b, j, a, i, f, t, tz, d, u, bo, tx, _source), E'\n' ORDER BY id) FROM kinds_federated};
my $at_hospital = $hospital->safe_psql('postgres',
	q{SELECT string_agg(concat_ws('|', id, n, v, b, j, a, i, f, t, tz, d, u, bo, tx, 'hospital'), E'\n' ORDER BY id) FROM kinds});
is(fed($kinds), $at_hospital, 'every built-in type comes back as the hospital has it, merged in key order');
is(fed($kinds, streaming => 0), $at_hospital, 'and merged in memory');
like(fed(q{EXPLAIN (ANALYZE, VERBOSE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT * FROM kinds_federated}),
	qr/Merge: in key order/, 'a numeric key is merged in key order');
like(fed(q{EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM coded_federated}), qr/Merge: in memory/,
	'a key of a domain type is merged in memory (its order is not known to be the same)');
is(fed(q{SELECT string_agg(code || ':' || note, ' ' ORDER BY code) FROM coded_federated}), 'a:ay b:bee',
	'with the right answer');
like(fed(q{EXPLAIN (ANALYZE, VERBOSE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT * FROM noted_federated}),
	qr/Merge: in key order/, 'a column of a domain type: merged in key order (its values in text)');
is(fed(q{SELECT string_agg(concat_ws(':', id, code, d, _source), ' ' ORDER BY id) FROM noted_federated}),
	'1:a:hospital 2:b:2024-01-02:hospital', 'with the right answer');

# A hospital database in another encoding: text does not sort alike there.
$hospital->safe_psql('postgres', q{
	CREATE DATABASE latin ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0});
$hospital->safe_psql('latin', qq{
	CREATE TABLE queues (ward text, ticket int, status text, version bigint NOT NULL DEFAULT 1,
	    created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(),
	    PRIMARY KEY (ward, ticket));
	INSERT INTO queues (ward, ticket, status) VALUES (chr(233), 1, 'x'), ('z', 1, 'x'), ('E', 1, 'x');  -- é
});
$cloud->safe_psql('postgres', qq{
	CREATE SERVER latin FOREIGN DATA WRAPPER postgres_fdw
	  OPTIONS (host '$host', port '$port', dbname 'latin');
	CREATE USER MAPPING FOR CURRENT_USER SERVER latin;
	CREATE TABLE latin_queues (LIKE queues INCLUDING ALL);
	INSERT INTO latin_queues (ward, ticket, status, version, created_at, updated_at)
	VALUES ('é', 1, 'x', 1, now(), now()), ('z', 1, 'x', 1, now(), now()), ('E', 1, 'x', 1, now(), now());
	SELECT edgesync.federate('latin_queues', 'latin', remote_table => 'queues');
});
$plan = fed(q{EXPLAIN (ANALYZE, VERBOSE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT * FROM latin_queues_federated});
like($plan, qr/Merge: in memory/, 'another encoding at the hospital, a text key: merged in memory');
like($plan, qr/Answered By: hospital and replica/, 'by both sides');
is(fed(q{SELECT string_agg(ward || ':' || _source, ' ' ORDER BY ward COLLATE "C") FROM latin_queues_federated}),
	'E:hospital z:hospital é:hospital', 'with the right answer');

# count(*): the hospital's, in one statement.
$plan = fed(q{EXPLAIN (VERBOSE, COSTS OFF) SELECT count(*) FROM patients_federated});
like($plan, qr/Foreign Scan\n.*Relations: Aggregate on \(public\.patients_federated_scan\).*Remote SQL: SELECT pg_catalog\.count\(\*\) FROM public\.patients/s,
	'count(*) of a whole view is sent to the hospital');
is(fed(q{SELECT count(*) FROM patients_federated}), fed(q{SELECT count(*) FROM patients_federated WHERE _source IS NOT NULL}),
	'and equals the number of rows the view returns');
is(fed(q{SELECT count(*) || '/' || (count(*) * 2)::text FROM queues_federated}), '31/62', 'in an expression too');
unlike(fed(q{EXPLAIN (VERBOSE, COSTS OFF) SELECT count(*) FROM patients_federated WHERE ward = 'ICU'}),
	qr/count\(\*\) FROM public\.patients/, 'not with a filter');
unlike(fed(q{EXPLAIN (VERBOSE, COSTS OFF) SELECT count(name) FROM patients_federated}),
	qr/count\(\*\) FROM public\.patients/, 'nor for another aggregate');
is(fed(q{SELECT count(*) FROM patients_federated WHERE ward = 'ICU'}), '3', 'which are answered by the scan');

# The hospital stopped: the replica's count, with the scan's WARNING.
$hospital->stop('fast');
my ($out, $err) = ('', '');
$cloud->psql('postgres', q{SELECT count(*) FROM patients_federated}, stdout => \$out, stderr => \$err);
is($out, '300', 'hospital down: count(*) is the replica\'s');
like($err, qr/WARNING:  hospital server "hospital" is unreachable: answering from the replica alone/, 'with a WARNING');
$cloud->psql('postgres', q{SELECT count(*) FILTER (WHERE _source = 'replica') FROM queues_federated},
	stdout => \$out, stderr => \$err);
is($out, '30', 'hospital down: a whole read in key order is the replica\'s');
like($err, qr/WARNING:  hospital server "hospital" is unreachable/, 'with a WARNING');

$cloud->stop;
done_testing();
