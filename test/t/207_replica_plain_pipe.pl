# `pg_recvlogical -o format=sql | psql` into a database without edgesync
# (stock server, nothing preloaded, no extension, no function of ours),
# applied by a role that is neither superuser nor REPLICATION and holds only
# USAGE and CREATE on one schema the DBA made for it (plugin option
# replica-schema).  The stream itself creates the position table and the
# tables there; a table the DBA pre-created with row level security and an
# identity key stops the stream up front, naming what is missing, and
# applies once a policy lets the role in.  Workload, columns added with and
# without a default, a new table, a partition attached, the hospital and the
# cloud each shut down immediately; the stream is also kept in a spool
# (tee), and the spool applied again whole after each failure.  At the end
# every table's ordered checksum matches the hospital's and one more replay
# of the whole spool writes no row.
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
my $spool = "$dir/cloud.sql";

my $cloud = PostgreSQL::Test::Cluster->new('cloud');
$cloud->init;
$cloud->start;
$cloud->safe_psql('postgres', q{
	CREATE DATABASE replica;
	CREATE ROLE feed LOGIN NOSUPERUSER NOREPLICATION;
});
$cloud->safe_psql('replica', q{
	CREATE SCHEMA mirror;
	GRANT USAGE, CREATE ON SCHEMA mirror TO feed;
	-- Pre-created by the DBA: row level security on, an identity key.
	CREATE TABLE mirror.wards (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL,
	                           version bigint NOT NULL DEFAULT 1, created_at timestamptz NOT NULL DEFAULT now(),
	                           updated_at timestamptz NOT NULL DEFAULT now());
	ALTER TABLE mirror.wards ENABLE ROW LEVEL SECURITY;
	GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON mirror.wards TO feed;
});
is($cloud->safe_psql('replica', q{
	SELECT (SELECT count(*) FROM pg_extension WHERE extname = 'edgesync') || '/' ||
	       (SELECT count(*) FROM pg_proc WHERE prosrc LIKE '%edgesync%' OR probin LIKE '%edgesync%') || '/' ||
	       (SELECT rolsuper OR rolreplication FROM pg_roles WHERE rolname = 'feed') || '/' ||
	       has_database_privilege('feed', 'replica', 'CREATE')}),
	'0/0/false/false', 'the cloud has no edgesync; the feed role is plain and may not create schemas');

my $hospital = edgesync_node('hospital', extra_conf => "edgesync.hash_key = 'tap-207-key'");
$hospital->safe_psql('postgres', q{
	CREATE EXTENSION edgesync;
	CREATE TABLE patients (id int PRIMARY KEY, mrn text NOT NULL, name text NOT NULL, weight numeric(6,2));
	CREATE TABLE wards (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL);
	CREATE TABLE stays (id int PRIMARY KEY, ward text NOT NULL) PARTITION BY RANGE (id);
	CREATE TABLE stays_a PARTITION OF stays FOR VALUES FROM (0) TO (100);
	SELECT edgesync.track('patients');
	SELECT edgesync.track('wards');
	SELECT edgesync.track('stays');
	SELECT edgesync.set_column_policy('patients', 'mrn', 'hash');
	SELECT pg_create_logical_replication_slot('cloud', 'edgesync');
	SELECT pg_create_logical_replication_slot('into_public', 'edgesync');
});

my %checksum = (
	patients => q{SELECT count(*) || ':' || md5(string_agg(concat_ws('|', id, name, weight, version, updated_at),
	                ',' ORDER BY id)) FROM S.patients},
	wards => q{SELECT count(*) || ':' || md5(string_agg(concat_ws('|', id, name, version), ',' ORDER BY id)) FROM S.wards},
	stays => q{SELECT count(*) || ':' || md5(string_agg(concat_ws('|', id, ward, version), ',' ORDER BY id)) FROM S.stays},);

sub checksums
{
	my ($node, $db, $schema) = @_;
	return join "\n", map {
		my $q = $checksum{$_} =~ s/\bS\./$schema./gr;
		"$_ " . $node->safe_psql($db, $q)
	} sort keys %checksum;
}

my @psql = ('psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $cloud->connstr('replica') . ' user=feed');

# One round: everything the slot has up to now, through the pipe (and into
# the spool).  Returns psql's exit status and error output.
sub round
{
	$hospital->safe_psql('postgres', 'INSERT INTO patients VALUES (-1, \'marker\', \'m\', 0); DELETE FROM patients WHERE id = -1');
	my $end = $hospital->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
	$hospital->safe_psql('postgres', 'SELECT txid_current()');
	my ($err) = ('');
	my $ok = IPC::Run::run([ 'pg_recvlogical', '-d', $hospital->connstr('postgres'), '-S', 'cloud', '--start',
			'--no-loop', "--endpos=$end", '-o', 'format=sql', '-o', 'replica-schema=mirror', '-f', '-' ],
		'|', [ 'tee', '-p', '-a', $spool ], '|', \@psql, '2>', \$err, IPC::Run::timeout($timeout));
	return ($ok, $err);
}

# The whole spool again (after a failure: what the pipe lost is in it).
sub replay
{
	my ($err) = ('');
	my $ok = IPC::Run::run([ @psql, '-f', $spool ], '>', \my $out, '2>', \$err, IPC::Run::timeout($timeout));
	return ($ok, $err);
}

sub converged
{
	my ($what) = @_;
	is(checksums($cloud, 'replica', 'mirror'), checksums($hospital, 'postgres', 'public'),
		"$what: every table on the cloud equals the hospital's");
}

$hospital->safe_psql('postgres', q{
	INSERT INTO patients SELECT g, 'MRN-' || g, 'p' || g, g / 3.0 FROM generate_series(1, 200) g;
	INSERT INTO wards (name) SELECT 'ward ' || g FROM generate_series(1, 10) g;
	INSERT INTO stays SELECT g, 'A' FROM generate_series(1, 50) g;
});

# The DBA's table: row level security without a policy for the feed role.
my ($ok, $err) = round();
ok(!$ok, 'RLS without a policy: the stream stops');
like($err, qr/edgesync: row level security on replica table mirror\.wards would reject the rows of the applying role feed/,
	'... naming the table, the role and what is missing');
is($cloud->safe_psql('replica', q{SELECT count(*) FROM mirror.wards}), '0', '... before writing a row of it');
$cloud->safe_psql('replica', q{CREATE POLICY feed_all ON mirror.wards TO feed USING (true) WITH CHECK (true)});
($ok, $err) = replay();
ok($ok, 'with a policy for the role, the spool applies') or diag($err);
converged('first rows, into an identity key under RLS');
is($cloud->safe_psql('replica', q{
	SELECT string_agg(c.relname || ':' || pg_get_userbyid(c.relowner), ',' ORDER BY c.relname)
	  FROM pg_class c WHERE c.relnamespace = 'mirror'::regnamespace AND c.relkind IN ('r', 'p')}),
	'applied_lsn:feed,patients:feed,stays:feed,wards:' . $cloud->safe_psql('replica', 'SELECT current_user'),
	'the stream created the position table and the missing tables in the replica schema, owned by the feed role');

sub workload
{
	my ($base) = @_;
	$hospital->safe_psql('postgres', qq{
		INSERT INTO patients SELECT g, 'MRN-' || g, 'n' || g, 1 FROM generate_series($base, $base + 49) g;
		UPDATE patients SET name = name || '+' WHERE id % 7 = $base % 7;
		DELETE FROM patients WHERE id % 11 = $base % 11 AND id > 20;
		INSERT INTO wards (name) VALUES ('w$base');
		UPDATE stays SET ward = 'A' WHERE id % 5 = 0;
	});
}

workload(1000);
($ok, $err) = round();
ok($ok, 'workload applies') or diag($err);

# Columns added on the hospital: created on the cloud by the stream, the
# rows it has taking the default.
$hospital->safe_psql('postgres', q{
	ALTER TABLE patients ADD COLUMN allergies text NOT NULL DEFAULT 'none';
	ALTER TABLE patients ADD COLUMN room int;
	UPDATE patients SET room = id % 9 WHERE id % 4 = 0;
});
$checksum{patients} =~ s/weight,/weight, allergies, room,/;
workload(2000);
$hospital->stop('immediate');
$hospital->start;
($ok, $err) = round();
ok($ok, 'columns added, after the hospital stopped hard') or diag($err);
converged('columns added');

# A new tracked table and a partition attached.
$hospital->safe_psql('postgres', q{
	CREATE TABLE labs (id bigint PRIMARY KEY, result text);
	SELECT edgesync.track('labs');
	INSERT INTO labs SELECT g, 'r' || g FROM generate_series(1, 100) g;
	CREATE TABLE stays_b (id int NOT NULL, ward text NOT NULL, version bigint NOT NULL DEFAULT 1,
	                      created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now());
	ALTER TABLE stays ATTACH PARTITION stays_b FOR VALUES FROM (100) TO (200);
	INSERT INTO stays SELECT g, 'B' FROM generate_series(100, 140) g;
});
$checksum{labs} = q{SELECT count(*) || ':' || md5(string_agg(concat_ws('|', id, result, version), ',' ORDER BY id)) FROM S.labs};
workload(3000);

# The cloud stops hard: the round fails, the spool has it.
$cloud->stop('immediate');
($ok, $err) = round();
ok(!$ok, 'the round fails while the cloud is down');
$cloud->start;
($ok, $err) = replay();
ok($ok, 'the whole spool applies again once the cloud is back') or diag($err);
converged('new table, partition attached, cloud stopped hard');

# One more replay of the whole stream writes no row.
$cloud->safe_psql('replica', q{
	CREATE TABLE public.writes (tbl text);
	GRANT INSERT ON public.writes TO feed;
	CREATE FUNCTION public.count_write() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN INSERT INTO public.writes VALUES (TG_TABLE_NAME); RETURN NULL; END $$;
	CREATE TRIGGER count_write AFTER INSERT OR UPDATE OR DELETE ON mirror.patients FOR EACH ROW EXECUTE FUNCTION public.count_write();
	CREATE TRIGGER count_write AFTER INSERT OR UPDATE OR DELETE ON mirror.wards FOR EACH ROW EXECUTE FUNCTION public.count_write();
	CREATE TRIGGER count_write AFTER INSERT OR UPDATE OR DELETE ON mirror.stays FOR EACH ROW EXECUTE FUNCTION public.count_write();
	CREATE TRIGGER count_write AFTER INSERT OR UPDATE OR DELETE ON mirror.labs FOR EACH ROW EXECUTE FUNCTION public.count_write();
});
my $before = checksums($cloud, 'replica', 'mirror');
($ok, $err) = replay();
ok($ok, 'a replay of the whole stream applies without error') or diag($err);
is($cloud->safe_psql('replica', 'SELECT count(*) FROM public.writes'), '0', 'the replay wrote no row');
is(checksums($cloud, 'replica', 'mirror'), $before, 'the replay changed nothing');

# Columns dropped, renamed and retyped, a table renamed: the replica's
# tables follow through the pipe, in the replica schema.  (Statements
# written before such a change no longer parse on the replica once it is
# applied there: a spool is emptied after one, docs/replica.md.)
$hospital->safe_psql('postgres', q{
	ALTER TABLE patients DROP COLUMN room;
	ALTER TABLE patients RENAME COLUMN name TO full_name;
	ALTER TABLE patients ALTER COLUMN weight TYPE numeric(9,4);
	UPDATE patients SET full_name = full_name || '*', weight = weight + 1 WHERE id % 3 = 0;
	ALTER TABLE labs RENAME TO lab_results;
	INSERT INTO lab_results VALUES (5000, 'renamed');
});
$checksum{patients} =~ s/id, name, weight, allergies, room,/id, full_name, weight, allergies,/;
delete $checksum{labs};
$checksum{lab_results} = q{SELECT count(*) || ':' || md5(string_agg(concat_ws('|', id, result, version), ',' ORDER BY id)) FROM S.lab_results};
($ok, $err) = round();
ok($ok, 'columns dropped, renamed, retyped, a table renamed: the pipe applies') or diag($err);
converged('columns dropped, renamed, retyped; table renamed');
is($cloud->safe_psql('replica', q{
	SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum)
	  FROM pg_attribute WHERE attrelid = 'mirror.patients'::regclass AND attnum > 0 AND NOT attisdropped}),
	'id integer, mrn text, full_name text, weight numeric(9,4), version bigint, '
	  . 'created_at timestamp with time zone, updated_at timestamp with time zone, allergies text',
	'the replica table has the hospital\'s columns, names and types');

# A column put under the hash policy: text on the replica from then on, its
# next values hashes.
$hospital->safe_psql('postgres', q{
	SELECT edgesync.set_column_policy('patients', 'weight', 'hash');
	UPDATE patients SET weight = weight + 1 WHERE id = 3;
});
($ok, $err) = round();
ok($ok, 'a column newly hashed: the pipe applies') or diag($err);
is($cloud->safe_psql('replica', q{
	SELECT format_type(atttypid, atttypmod) || ' ' || (SELECT weight ~ '^[0-9a-f]{64}$' FROM mirror.patients WHERE id = 3)
	  FROM pg_attribute WHERE attrelid = 'mirror.patients'::regclass AND attname = 'weight'}),
	'text true', 'the newly hashed column is text on the replica and holds the hash');

# A role with only CONNECT and CREATE on its database, no replica schema:
# the hospital's tables go to schema public, which PostgreSQL 15 and later
# keep to their owner.  The stream stops at the first table, saying which
# GRANT is missing, and applies once it is given.
$cloud->safe_psql('postgres', q{
	CREATE DATABASE replica2;
	CREATE ROLE feed2 LOGIN NOSUPERUSER NOREPLICATION;
	GRANT CONNECT, CREATE ON DATABASE replica2 TO feed2;
});
$cloud->safe_psql('replica2', q{
	REVOKE CREATE ON SCHEMA public FROM PUBLIC;
	CREATE SCHEMA "Ward A";
	GRANT USAGE, CREATE ON SCHEMA "Ward A" TO feed2;
});
# A table in a schema whose name needs quoting, which the replica has and
# lets the role create in.
$hospital->safe_psql('postgres', q{
	CREATE SCHEMA "Ward A";
	CREATE TABLE "Ward A".beds (id int PRIMARY KEY, note text);
	SELECT edgesync.track('"Ward A".beds');
	INSERT INTO "Ward A".beds VALUES (1, 'by the window');
});
my $end = $hospital->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
my $public_spool = "$dir/public.sql";
IPC::Run::run([ 'pg_recvlogical', '-d', $hospital->connstr('postgres'), '-S', 'into_public', '--start',
		'--no-loop', "--endpos=$end", '-o', 'format=sql', '-f', $public_spool ],
	IPC::Run::timeout($timeout)) or die 'pg_recvlogical failed';
my @psql2 = ('psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $cloud->connstr('replica2') . ' user=feed2', '-f', $public_spool);
$ok = IPC::Run::run(\@psql2, '>', \my $out2, '2>', \$err, IPC::Run::timeout($timeout));
ok(!$ok, 'no CREATE on schema public: the stream stops');
like($err, qr/edgesync: the applying role feed2 may not create replica table public\.\w+ in schema public \(fix: GRANT CREATE ON SCHEMA public TO feed2, by the schema's owner/,
	'... saying which GRANT is missing');
is($cloud->safe_psql('replica2', q{SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace}), '0',
	'... having created nothing in public');
$cloud->safe_psql('replica2', 'GRANT CREATE ON SCHEMA public TO feed2');
$ok = IPC::Run::run(\@psql2, '>', \$out2, '2>', \$err, IPC::Run::timeout($timeout));
ok($ok, 'with the GRANT, the same stream applies') or diag($err);
is($cloud->safe_psql('replica2', 'SELECT count(*) FROM public.wards'),
	$hospital->safe_psql('postgres', 'SELECT count(*) FROM wards'), '... and the rows are there');
is($cloud->safe_psql('replica2', 'SELECT note FROM "Ward A".beds'), 'by the window',
	'... also in a schema whose name needs quoting');

done_testing();
