# A cloud replica fed by the stock tools: `pg_recvlogical -o format=sql -f - |
# psql -d replica`.  The replica is bootstrapped as docs/replica.md says:
# create the slot first, copy the tables while changes go on, then stream
# (the version guard makes the overlap harmless).  After a mixed workload
# (inserts, updates, deletes, TRUNCATE, a transaction larger than
# logical_decoding_work_mem, unchanged and changed TOAST values, key changes,
# composite keys, identifiers that need quoting) the replica equals the
# source by ordered row checksums; applying the same stream again changes
# no row.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use EdgesyncTest;

my $source = edgesync_node('source');
my $replica = edgesync_node('replica');
my $dir = PostgreSQL::Test::Utils::tempdir;
my $timeout = $PostgreSQL::Test::Utils::timeout_default;

my $tables = q{
	CREATE TABLE patients (id int PRIMARY KEY, mrn text NOT NULL, name text, ward text,
	                       weight numeric(6,2), born date, meta jsonb, scan text);
	CREATE TABLE visits (id bigint PRIMARY KEY, patient int, reason text);
	CREATE TABLE "Ward ""Beds""" ("ward name" text, bed int, "Patient" int, PRIMARY KEY ("ward name", bed));
};
my @tables = ('patients', 'visits', '"Ward ""Beds"""');
for my $node ($source, $replica)
{
	$node->safe_psql('postgres',
		q{CREATE DATABASE hospital ENCODING 'UTF8' LOCALE 'C' TEMPLATE template0});
	$node->safe_psql('hospital', 'CREATE EXTENSION edgesync');
}
$source->safe_psql('hospital', $tables . join '', map { "SELECT edgesync.track('$_');" } @tables);

# pg_dump_to_replica(ARGS): pg_dump ARGS of the source | psql on the replica.
sub pg_dump_to_replica
{
	my @args = @_;
	my ($out, $err);
	IPC::Run::run([ 'pg_dump', @args, '-d', $source->connstr('hospital') ],
		'|', psql_cmd($replica), '>', \$out, '2>', \$err, IPC::Run::timeout($timeout))
	  or die "pg_dump @args | psql failed: $err";
}
# The replica's tables as docs/replica.md makes them: the source's
# definitions, versions columns and (idle on the replica) triggers included.
pg_dump_to_replica('--schema-only', map { ('--table', $_) } @tables);
# Every row write on the replica is recorded, so a change applied twice shows.
$replica->safe_psql('hospital', q{
	CREATE TABLE applied (tbl text, op text, k text, version bigint);
	CREATE FUNCTION record_apply() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO applied VALUES (TG_TABLE_NAME, TG_OP,
			to_jsonb(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END)::text,
			(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END).version);
		RETURN NULL;
	END $$;
	CREATE TRIGGER record_apply AFTER INSERT OR UPDATE OR DELETE ON patients
		FOR EACH ROW EXECUTE FUNCTION record_apply();
	ALTER TABLE patients ENABLE ALWAYS TRIGGER record_apply;
});

# Rows before the replica exists.
$source->safe_psql('hospital', q{
	INSERT INTO patients SELECT g, 'MRN' || g, 'Patient ' || g, 'ward ' || (g % 5), g / 7.0,
	       date '1950-01-01' + g, jsonb_build_object('g', g), NULL
	  FROM generate_series(1, 400) g;
	INSERT INTO visits SELECT g, g % 400 + 1, 'checkup' FROM generate_series(1, 200) g;
	INSERT INTO "Ward ""Beds""" VALUES ('north', 1, 1), ('north', 2, 2), ('south''s', 1, 3);
});

sub recvlogical_cmd
{
	my ($node, @args) = @_;
	return [ 'pg_recvlogical', '--dbname', $node->connstr('hospital'), @args ];
}
sub psql_cmd
{
	my ($node) = @_;
	return [ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('hospital') ];
}

# 1. The slot first (and a second one, to apply the same stream again later).
for my $slot (qw(cloud cloud_again))
{
	my ($out, $err);
	IPC::Run::run(recvlogical_cmd($source, '-S', $slot, '--create-slot', '--plugin=edgesync'),
		'>', \$out, '2>', \$err)
	  or die "could not create slot $slot: $err";
}

# 2. Changes while the copy is being taken: in the copy and in the stream.
$source->safe_psql('hospital', q{
	UPDATE patients SET ward = 'moved' WHERE id <= 50;
	INSERT INTO patients SELECT g, 'MRN' || g, 'new ' || g, 'A', 1, NULL, NULL, NULL FROM generate_series(401, 450) g;
	DELETE FROM patients WHERE id BETWEEN 391 AND 400;
	INSERT INTO patients VALUES (451, 'MRN451', 'in and out', NULL, NULL, NULL, NULL, NULL);
	DELETE FROM patients WHERE id = 451;
});

# 3. The copy: rows with their versions and timestamps, replica triggers off.
pg_dump_to_replica('--data-only', '--disable-triggers', map { ('--table', $_) } @tables);
$replica->safe_psql('hospital', 'TRUNCATE applied');

# 4. The mixed workload.
$source->safe_psql('hospital', q{
	-- out-of-line TOAST values (hex does not compress)
	UPDATE patients SET scan = (SELECT string_agg(md5(id::text || g::text), '') FROM generate_series(1, 400) g)
	 WHERE id % 20 = 0;
	-- TOAST unchanged: other columns only
	UPDATE patients SET ward = 'toast kept' WHERE id % 40 = 0;
	-- TOAST changed
	UPDATE patients SET scan = 'short now' WHERE id = 60;
	-- deletes, NULLs, quoting in values
	DELETE FROM patients WHERE id % 13 = 0;
	UPDATE patients SET name = NULL, meta = 'null' WHERE id = 2;
	UPDATE patients SET name = E'O''Brien; DROP TABLE patients; --\n\\ "x"', born = 'infinity' WHERE id = 3;
	-- key changes
	UPDATE patients SET id = id + 10000 WHERE id BETWEEN 101 AND 110;
	UPDATE "Ward ""Beds""" SET bed = 9 WHERE "ward name" = 'north' AND bed = 2;
	UPDATE "Ward ""Beds""" SET "ward name" = 'east' WHERE "ward name" = 'south''s';
	INSERT INTO "Ward ""Beds""" VALUES ('west', 1, NULL);
	-- TRUNCATE, then new rows
	TRUNCATE visits;
	INSERT INTO visits SELECT g, g % 400 + 1, 'after truncate' FROM generate_series(1, 100) g;
});
# A transaction larger than logical_decoding_work_mem (64kB), and a
# transaction with a savepoint rolled back.
$source->safe_psql('hospital', q{
	BEGIN;
	INSERT INTO visits SELECT g, g % 400 + 1, repeat('long visit ', 10) FROM generate_series(1001, 4000) g;
	UPDATE visits SET reason = 'updated in the same transaction' WHERE id % 2 = 0;
	DELETE FROM visits WHERE id % 3 = 0 AND id > 1000;
	UPDATE patients SET weight = weight + 1 WHERE id <= 300;
	COMMIT;
	BEGIN;
	INSERT INTO patients VALUES (900, 'MRN900', 'kept', NULL, NULL, NULL, NULL, NULL);
	SAVEPOINT s;
	INSERT INTO patients VALUES (901, 'MRN901', 'rolled back', NULL, NULL, NULL, NULL, NULL);
	ROLLBACK TO s;
	COMMIT;
});
my $end = $source->lsn('insert');

# 5. Stream: pg_recvlogical | psql.
my ($out, $err) = ('', '');
my $ok = IPC::Run::run(
	recvlogical_cmd($source, '-S', 'cloud', '--start', '--no-loop', '--endpos', $end, '-f', '-',
		'-o', 'format=sql', '-o', 'source=hospital'),
	'|', psql_cmd($replica), '>', \$out, '2>', \$err, IPC::Run::timeout($timeout));
ok($ok, 'pg_recvlogical -o format=sql -f - | psql -d replica') or diag($err);

my %checksum;
sub checksums
{
	my ($node) = @_;
	return $node->safe_psql('hospital', join(' UNION ALL ', map {
		"SELECT '$_' || ': ' || count(*) || ' ' || coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '')
		   FROM $_ t" } @tables));
}
my $want = checksums($source);
is(checksums($replica), $want, 'replica = source (row checksums of every table)');
is($replica->safe_psql('hospital', q{SELECT count(*) FROM patients WHERE scan IS NOT NULL AND length(scan) > 10000}),
	$source->safe_psql('hospital', q{SELECT count(*) FROM patients WHERE scan IS NOT NULL AND length(scan) > 10000}),
	'TOAST values kept on the replica where they did not change');
is($replica->safe_psql('hospital', q{
	SELECT count(*) FROM (SELECT tbl, op, k FROM applied GROUP BY 1, 2, 3 HAVING count(*) > 1) d}),
	'0', 'no row image was written twice');

# 6. The same stream again (the second slot, under the same source name):
# every transaction is recognised as applied, nothing changes.
my $again = "$dir/again.sql";
($out, $err) = ('', '');
IPC::Run::run(
	recvlogical_cmd($source, '-S', 'cloud_again', '--start', '--no-loop', '--endpos', $end,
		'-f', $again, '-o', 'format=sql', '-o', 'source=hospital'),
	'>', \$out, '2>', \$err, IPC::Run::timeout($timeout))
  or diag("pg_recvlogical to a file: $err");
ok(-s $again, 'the stream written to a file');
my $rows_before = $replica->safe_psql('hospital', join(' UNION ALL ', map {
	"SELECT '$_', string_agg(xmin::text || ctid::text, ',' ORDER BY ctid) FROM $_" } @tables));
my $applied_before = $replica->safe_psql('hospital', 'SELECT count(*) FROM applied');
for my $round (1, 2)
{
	($out, $err) = ('', '');
	ok(IPC::Run::run(psql_cmd($replica), '<', $again, '>', \$out, '2>', \$err, IPC::Run::timeout($timeout)),
		"the same stream applied again (round $round)") or diag($err);
}
is(checksums($replica), $want, 'replica still = source');
is($replica->safe_psql('hospital', join(' UNION ALL ', map {
	"SELECT '$_', string_agg(xmin::text || ctid::text, ',' ORDER BY ctid) FROM $_" } @tables)),
	$rows_before, 'applying the stream again wrote no row');
is($replica->safe_psql('hospital', 'SELECT count(*) FROM applied'), $applied_before,
	'no trigger fired on the replica either');

$source->stop;
$replica->stop;
done_testing();
