# The shipper's binary runs (docs/shipping.md, "Binary runs"): a run of
# upserts whose columns are all of built-in types goes to the replica as one
# statement whose values are binary arrays in parameters of the extended
# protocol.  On a stock cloud with nothing of edgesync, every type that
# travels so (NULLs, NaN, infinities, a numeric with a typmod, text with
# quotes, backslashes, newlines and non-ASCII letters, bytea with zero bytes,
# json and jsonb), a hashed column and a redacted one, and beside them a
# table whose domain and enum columns keep the text arrays: inserts, updates,
# deletes and a key deleted and inserted again, in transactions of many rows.
# The cloud's statement log shows which way each table went; every column on
# the cloud equals the hospital's (the hashed one holds the hash, the
# redacted one nothing); a large transaction, spilled to disk by the shipper,
# goes the same way; and a replay of the whole stream writes no row.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);
use FindBin;
use lib "$FindBin::RealBin/../perl";
use EdgesyncTest;

my $cloud = PostgreSQL::Test::Cluster->new('cloud');
$cloud->init;
$cloud->append_conf('postgresql.conf', q{
log_statement = 'all'
log_parameter_max_length = 0
});
$cloud->start;
$cloud->safe_psql('postgres', q{
	CREATE DATABASE replica;
	CREATE ROLE feed LOGIN PASSWORD 'pw-SECRET-313' NOSUPERUSER NOREPLICATION;
	REVOKE ALL ON DATABASE replica FROM PUBLIC;
	GRANT CONNECT, CREATE, TEMPORARY ON DATABASE replica TO feed;
});
$cloud->safe_psql('replica', q{
	CREATE DOMAIN public.ward_code AS text CHECK (VALUE ~ '^W[0-9]+$');
	CREATE TYPE public.triage AS ENUM ('green', 'yellow', 'red');
	GRANT CREATE ON SCHEMA public TO feed;
});

my $hospital = edgesync_node('hospital', extra_conf => q{
edgesync.hash_key = 'tap-313-key'
edgesync.ship_databases = 'postgres'
edgesync.ship_naptime = 50ms
edgesync.ship_retry_min = 50ms
edgesync.ship_retry_max = 500ms
edgesync.ship_transaction_memory = 1MB
log_temp_files = 0
});
$hospital->safe_psql('postgres', q{
	CREATE EXTENSION edgesync;
	CREATE DOMAIN public.ward_code AS text CHECK (VALUE ~ '^W[0-9]+$');
	CREATE TYPE public.triage AS ENUM ('green', 'yellow', 'red');
	CREATE TABLE public.vitals (
		id int8 PRIMARY KEY, b bool, i2 int2, i4 int4, f4 float4, f8 float8, n numeric(14,3),
		t text, vc varchar(20), c char(5), by bytea, d date, tm time, ts timestamp,
		tstz timestamptz, iv interval, u uuid, j json, jb jsonb, mrn text, note text);
	CREATE TABLE public.wards (id int PRIMARY KEY, code public.ward_code, level public.triage);
	SELECT edgesync.track('public.vitals');
	SELECT edgesync.track('public.wards');
	SELECT edgesync.set_column_policy('public.vitals', 'mrn', 'hash');
	SELECT edgesync.set_column_policy('public.vitals', 'note', 'redact');
});

my $url = 'postgresql://feed:pw-SECRET-313@/replica?host=' . $cloud->host . '&port=' . $cloud->port;
$hospital->safe_psql('postgres', qq{SELECT edgesync.add_target('cloud', '$url', timeout_ms => 5000)});
# The whole stream from here, to replay at the end.
$hospital->safe_psql('postgres', q{SELECT pg_copy_logical_replication_slot('edgesync_cloud', 'replay')});

# Every value of a row from its id: each type's edge cases in turn, NULLs included.
my $row = q{
	SELECT g,
	       CASE WHEN g % 7 = 0 THEN NULL ELSE g % 2 = 0 END,
	       (g % 32000)::int2,
	       CASE WHEN g % 11 = 0 THEN NULL ELSE (g * 7919 % 2000000000)::int4 * CASE WHEN g % 2 = 0 THEN -1 ELSE 1 END END,
	       (ARRAY['NaN', 'Infinity', '-Infinity', '1.5', '-0'])[g % 5 + 1]::float4,
	       CASE WHEN g % 13 = 0 THEN 'NaN'::float8 ELSE g / 3.0 END,
	       CASE WHEN g % 17 = 0 THEN 'NaN'::numeric ELSE round(g * 1234.5678, 3) END,
	       (ARRAY[E'plain', E'it''s "quoted"', E'back\\slash', E'two\nlines\ttab', 'Grüße 患者 ' || g, ''])[g % 6 + 1] || g,
	       'vc' || g,
	       lpad((g % 1000)::text, 5, '0'),
	       CASE WHEN g % 9 = 0 THEN NULL ELSE decode(lpad(to_hex(g), 8, '0') || '00ff0a00', 'hex') END,
	       CASE WHEN g % 19 = 0 THEN 'infinity'::date ELSE date '2000-01-01' + g END,
	       time '00:00' + g * interval '1 second',
	       CASE WHEN g % 23 = 0 THEN '-infinity'::timestamp ELSE timestamp '2020-02-29 12:34:56.789' + g * interval '1 minute' END,
	       timestamptz '2021-06-01 08:00:00.123456+02' + g * interval '1 hour',
	       make_interval(months => g % 14, days => g % 40, secs => g * 1.5),
	       md5(g::text)::uuid,
	       json_build_object('id', g, 'tags', json_build_array('a', g)),
	       jsonb_build_object('id', g, 'nested', jsonb_build_object('x', g * 1.25, 'ok', g % 2 = 0)),
	       'MRN-' || g,
	       'secret note ' || g
	  FROM generate_series(FROM_ID, TO_ID) g};
sub vitals_rows
{
	my ($from, $to, $where) = @_;
	my $sql = $row;
	$sql =~ s/FROM_ID/$from/;
	$sql =~ s/TO_ID/$to/;
	return "INSERT INTO public.vitals $sql " . ($where // '') . ';';
}
my $vitals_columns = q{id, b, i2, i4, f4, f8, n, t, vc, c, by, d, tm, ts, tstz, iv, u, j::text, jb, mrn IS NOT NULL, version};
my %checksum = (
	vitals => qq{SELECT count(*) || ':' || md5(string_agg(concat_ws('|', $vitals_columns), ',' ORDER BY id))
	               FROM public.vitals},
	wards => q{SELECT count(*) || ':' || md5(string_agg(concat_ws('|', id, code, level, version), ',' ORDER BY id))
	             FROM public.wards},);

sub status { return edgesync_target_health($hospital, 'postgres') }

sub wait_converged
{
	my ($what) = @_;
	edgesync_wait_converged($what, hospital => [ $hospital, 'postgres' ], cloud => [ $cloud, 'replica' ],
		checksums => \%checksum, seconds => 60);
}

# Inserts, 100 rows per transaction; the wards table beside them.
for my $t (0 .. 9)
{
	my ($from, $to) = ($t * 100 + 1, $t * 100 + 100);
	$hospital->safe_psql('postgres', vitals_rows($from, $to)
		  . "INSERT INTO public.wards SELECT g, 'W' || g, (ARRAY['green', 'yellow', 'red'])[g % 3 + 1]::public.triage
		       FROM generate_series($from, $to) g;");
}
wait_converged('inserts');

my $log = slurp_file($cloud->logfile);
like($log, qr/INSERT INTO "public"\."vitals" AS target .* SELECT pg_catalog\.unnest\(\$1::bigint\[\]\)/,
	'the built-in types went as binary arrays in parameters');
like($log, qr/INSERT INTO "public"\."wards" AS target .* SELECT pg_catalog\.unnest\('\{/,
	'the domain and the enum as text arrays');
unlike($log, qr/MRN-\d/, 'no clear text of the hashed column in any statement');

# Updates of every column, deletes, and keys deleted then inserted again
# within one batch (their versions start again at 1).
$hospital->safe_psql('postgres', q{
	UPDATE public.vitals SET t = t || ' (seen)', n = n + 1, jb = jb || '{"seen": true}', tstz = tstz + interval '1 day'
	 WHERE id % 3 = 0;
	UPDATE public.wards SET level = 'red' WHERE id % 4 = 0;
	DELETE FROM public.vitals WHERE id % 10 = 5;
	DELETE FROM public.wards WHERE id % 10 = 5;
});
$hospital->safe_psql('postgres', vitals_rows(1, 200, 'WHERE g % 10 = 5')
	  . q{UPDATE public.vitals SET b = NOT coalesce(b, false) WHERE id <= 50;});
wait_converged('updates, deletes, keys inserted again');
is($cloud->safe_psql('replica', q{SELECT count(*) FILTER (WHERE mrn LIKE 'MRN-%') || '/' || count(note) || '/' ||
	count(DISTINCT mrn) || '/' || min(length(mrn)) FROM public.vitals}),
	'0/0/920/64', 'the hashed column holds the hash, the redacted one nothing');

# A transaction larger than ship_transaction_memory: spilled, read back, the same way.
$hospital->safe_psql('postgres', vitals_rows(100001, 106000));
wait_converged('a spilled transaction');
my $spilled = 0;
for (1 .. 300)
{
	$spilled = slurp_file($hospital->logfile) =~ /LOG:  temporary file: path "[^"]*pgsql_tmp/;
	last if $spilled;
	sleep(0.1);
}
ok($spilled, '... which the shipper spilled to a temporary file');
like(status(), qr/^0\|$/, 'the target is healthy');

# A replay of the whole stream: the shipper's slot replaced by the copy from
# the start, its acknowledgements forgotten.  Nothing is written.
edgesync_replay_writes_nothing(
	hospital => [ $hospital, 'postgres' ],
	cloud => [ $cloud, 'replica' ],
	target => 'cloud',
	copy => 'replay',
	role => 'feed',
	tables => [qw(public.vitals public.wards)],
	checksums => \%checksum);

$hospital->safe_psql('postgres', q{SELECT pg_drop_replication_slot('replay')});
done_testing();
