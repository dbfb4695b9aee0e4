# Partitions of a tracked table through their ordinary life (issue 13): a
# row moved to another partition by an UPDATE, partitions attached (tracked
# or not, with or without edgesync's columns), detached (normally and
# CONCURRENTLY), created later, and unlogged ones refused.  What the table
# keeps, the change log and the stream (a real slot of the edgesync plugin)
# say the same.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use EdgesyncTest;

my $node = edgesync_node('hospital');
$node->safe_psql('postgres', q{
	CREATE EXTENSION edgesync;
	CREATE TABLE stays (id int, ward text, note text, PRIMARY KEY (id, ward)) PARTITION BY LIST (ward);
	CREATE TABLE stays_a PARTITION OF stays FOR VALUES IN ('A');
	-- A partition with its columns in another order: moved rows are converted.
	CREATE TABLE stays_b (note text, ward text NOT NULL, id int NOT NULL);
	ALTER TABLE stays ATTACH PARTITION stays_b FOR VALUES IN ('B');
	SELECT edgesync.track('stays');
	SELECT pg_create_logical_replication_slot('reader', 'edgesync');
	INSERT INTO stays SELECT g, 'A', 'stay ' || g FROM generate_series(1, 10) g;
	UPDATE stays SET note = note || '.' WHERE id <= 5;
});

# Changes read from the slot since the last call, one JSON line each.
sub stream
{
	return split /\n/, $node->safe_psql('postgres',
		q{SELECT data FROM pg_logical_slot_get_changes('reader', NULL, NULL)});
}
stream();

# The log after id $id; $by_key: by key first (rows a statement changed in
# the order of its scan), else in log order.
sub log_since
{
	my ($id, $by_key) = @_;
	my $order = $by_key ? q{(pk->>'id')::int, id} : 'id';
	return $node->safe_psql('postgres', qq{
		SELECT string_agg(op::text || coalesce(pk::text, relid::text) || ':' || coalesce(version::text, '-'), ' ' ORDER BY $order)
		  FROM edgesync.sync_log WHERE id > $id});
}
sub last_log_id { $node->safe_psql('postgres', 'SELECT coalesce(max(id), 0) FROM edgesync.sync_log') }

# 1. A cross-partition UPDATE is an update: version + 1, created_at kept.
my $before = $node->safe_psql('postgres',
	q{SELECT string_agg(id || ':' || version || ':' || created_at, ' ' ORDER BY id) FROM stays WHERE id IN (1, 6)});
my $mark = last_log_id();
$node->safe_psql('postgres', q{UPDATE stays SET ward = 'B', note = 'moved' WHERE id IN (1, 6)});
my $after = $node->safe_psql('postgres', q{
	SELECT string_agg(tableoid::regclass || ':' || id || ':' || version || ':' || created_at || ':' || (updated_at = created_at), ' ' ORDER BY id)
	  FROM stays WHERE id IN (1, 6)});
my ($c1, $c6) = $before =~ /1:2:(\S+ \S+) 6:1:(\S+ \S+)/;
is($after, "stays_b:1:3:$c1:false stays_b:6:2:$c6:false",
	'moved rows: one version more, created_at kept, updated_at moved (into a partition of another column order)');
is(log_since($mark, 1),
	'D{"id": 1, "ward": "A"}:2 U{"id": 1, "ward": "B"}:3 D{"id": 6, "ward": "A"}:1 U{"id": 6, "ward": "B"}:2',
	'the log: the old key deleted, the new key updated, as for any update of a key');
my @lines = stream();
like(join("\n", @lines), qr/"op":"insert","schema":"public","table":"stays","pk":\{"id":1,"ward":"B"\},"version":3/,
	'the stream carries the moved row with its new version');

# Optimistic locking across partitions: a stale version moves nothing.
my ($rc, $out, $err) = $node->psql('postgres', q{UPDATE stays SET ward = 'A', version = 2 WHERE id = 1});
like($err, qr/version conflict updating table "stays_b".*current version is 3/s, 'a stale version is refused');
is($node->safe_psql('postgres', q{SELECT ward || version FROM stays WHERE id = 1}), 'B3', '... and the row stays');
$node->safe_psql('postgres', q{UPDATE stays SET ward = 'A', version = 3 WHERE id = 1});
is($node->safe_psql('postgres', q{SELECT ward || version || ':' || created_at FROM stays WHERE id = 1}),
	"A4:$c1", 'the version read moves it, one version more');

# Many rows in one statement, some moving and some not, and a savepoint
# rolled back between a move and a later insert.
$node->safe_psql('postgres', q{UPDATE stays SET ward = CASE WHEN id % 2 = 0 THEN 'B' ELSE ward END, note = 'bulk' WHERE id BETWEEN 2 AND 5});
is($node->safe_psql('postgres', q{SELECT string_agg(id || ward || version, ' ' ORDER BY id) FROM stays WHERE id BETWEEN 2 AND 5}),
	'2B3 3A3 4B3 5A3', 'a statement moving some rows and not others: each one version more');
$node->safe_psql('postgres', q{
	BEGIN;
	SAVEPOINT s;
	UPDATE stays SET ward = 'A' WHERE id = 2;
	ROLLBACK TO s;
	INSERT INTO stays (id, ward, note, version, created_at) VALUES (50, 'A', 'new', 4, '2000-01-01');
	COMMIT;
});
is($node->safe_psql('postgres', q{SELECT version || ' ' || (created_at > '2001-01-01') FROM stays WHERE id = 50}),
	'1 true', 'an insert is an insert, whatever happened before it');

# 2. ATTACH of an untracked table, lacking edgesync's columns: it gets them.
$mark = last_log_id();
$node->safe_psql('postgres', q{
	CREATE TABLE stays_c (id int NOT NULL, ward text NOT NULL, note text);
	INSERT INTO stays_c VALUES (100, 'C', 'before attach');
	ALTER TABLE stays ATTACH PARTITION stays_c FOR VALUES IN ('C');
	UPDATE stays SET note = 'after attach' WHERE id = 100;
	TRUNCATE stays_c;
	INSERT INTO stays VALUES (101, 'C', 'new');
});
is($node->safe_psql('postgres', q{SELECT string_agg(tgname, ' ' ORDER BY tgname) FROM pg_trigger WHERE tgrelid = 'stays_c'::regclass}),
	'edgesync_log edgesync_log_truncate edgesync_version', 'an attached table gets the triggers');
is(log_since($mark), 'U{"id": 100, "ward": "C"}:2 Tstays_c:- I{"id": 101, "ward": "C"}:1',
	'its changes are logged under the tracked table, its TRUNCATE under its name');

# 3. ATTACH of a table tracked itself (track_schema tracks every new table).
$node->safe_psql('postgres', q{
	CREATE SCHEMA ward_d;
	SELECT edgesync.track_schema('ward_d');
	CREATE TABLE ward_d.stays_d (id int NOT NULL, ward text NOT NULL, note text, PRIMARY KEY (id, ward));
	INSERT INTO ward_d.stays_d VALUES (200, 'D', 'tracked alone');
	UPDATE ward_d.stays_d SET note = 'tracked alone, updated';
});
is($node->safe_psql('postgres', q{SELECT edgesync._is_tracked('ward_d.stays_d')}), 't', 'a table of a tracked schema is tracked');
# (Tracked as its owner: a role that may create tables there, nothing more.)
$node->safe_psql('postgres', q{
	CREATE ROLE ward_clerk LOGIN;
	GRANT USAGE, CREATE ON SCHEMA ward_d TO ward_clerk;
	SET ROLE ward_clerk;
	CREATE TABLE ward_d.clerk_notes (id int PRIMARY KEY, body text);
	INSERT INTO ward_d.clerk_notes VALUES (1, 'x');
	RESET ROLE;
});
is($node->safe_psql('postgres', q{SELECT edgesync._is_tracked('ward_d.clerk_notes') || ' ' || version FROM ward_d.clerk_notes}),
	'true 1', 'a table an ordinary role creates in a tracked schema is tracked');
$mark = last_log_id();
$node->safe_psql('postgres', q{
	ALTER TABLE stays ATTACH PARTITION ward_d.stays_d FOR VALUES IN ('D');
	UPDATE stays SET note = 'as a partition' WHERE id = 200;
});
is($node->safe_psql('postgres', q{
	SELECT edgesync._is_tracked('ward_d.stays_d') || ' ' ||
	       (SELECT string_agg(tgname || (tgparentid <> 0)::text, ' ' ORDER BY tgname) FROM pg_trigger
	         WHERE tgrelid = 'ward_d.stays_d'::regclass)}),
	'false edgesync_logtrue edgesync_log_truncatefalse edgesync_versiontrue',
	'attaching a tracked table: it is tracked as a partition from then on, with the cloned triggers');
is($node->safe_psql('postgres', q{SELECT version FROM stays WHERE id = 200}), '3', 'its versions go on');
is(log_since($mark), 'U{"id": 200, "ward": "D"}:3', 'its changes are logged under the tracked table');
@lines = stream();
like(join("\n", @lines), qr/"op":"update","schema":"public","table":"stays","pk":\{"id":200,"ward":"D"\},"version":3/,
	'and streamed under it');

# A tracked table into a partitioned table nobody tracks: refused.
$node->safe_psql('postgres', q{
	CREATE TABLE other (id int, ward text, note text, version bigint NOT NULL DEFAULT 1,
	  created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(),
	  PRIMARY KEY (id, ward)) PARTITION BY LIST (ward);
	CREATE TABLE lonely (id int NOT NULL, ward text NOT NULL, note text, PRIMARY KEY (id, ward));
	SELECT edgesync.track('lonely');
});
($rc, $out, $err) = $node->psql('postgres', q{ALTER TABLE other ATTACH PARTITION lonely FOR VALUES IN ('E')});
like($err, qr/table "public.lonely" is tracked by edgesync.*would make it a partition/s,
	'a tracked table cannot become a partition of an untracked one');

# 4. New partitions later, and unlogged ones refused.
$node->safe_psql('postgres', q{CREATE TABLE stays_f PARTITION OF stays FOR VALUES IN ('F')});
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_trigger WHERE tgrelid = 'stays_f'::regclass AND tgname LIKE 'edgesync%'}),
	'3', 'a new partition has the triggers');
($rc, $out, $err) = $node->psql('postgres', q{CREATE UNLOGGED TABLE stays_g PARTITION OF stays FOR VALUES IN ('G')});
like($err, qr/partition "public.stays_g" of table "public.stays" would be unlogged/, 'an unlogged new partition is refused');
($rc, $out, $err) = $node->psql('postgres', q{ALTER TABLE stays_f SET UNLOGGED});
like($err, qr/partition "public.stays_f" of table "public.stays" would be unlogged/, 'making a partition unlogged is refused');
($rc, $out, $err) = $node->psql('postgres', q{
	CREATE UNLOGGED TABLE stays_h (id int NOT NULL, ward text NOT NULL, note text);
	ALTER TABLE stays ATTACH PARTITION stays_h FOR VALUES IN ('H')});
like($err, qr/partition "public.stays_h" of table "public.stays" would be unlogged/, 'attaching an unlogged table is refused');
is($node->safe_psql('postgres', q{SELECT string_agg(relid::text, ' ' ORDER BY relid::text) FROM pg_partition_tree('stays') WHERE relid <> 'stays'::regclass}),
	'stays_a stays_b stays_c stays_f ward_d.stays_d', 'none of them joined the table');

# A sub-partitioned table attached: all its partitions get the TRUNCATE trigger.
$node->safe_psql('postgres', q{
	CREATE TABLE stays_i (id int NOT NULL, ward text NOT NULL, note text) PARTITION BY RANGE (id);
	CREATE TABLE stays_i1 PARTITION OF stays_i FOR VALUES FROM (0) TO (1000);
	ALTER TABLE stays ATTACH PARTITION stays_i FOR VALUES IN ('I');
	INSERT INTO stays VALUES (300, 'I', 'deep');
});
is($node->safe_psql('postgres', q{
	SELECT string_agg(tgrelid::regclass::text, ' ' ORDER BY 1) FROM pg_trigger
	 WHERE tgname = 'edgesync_log_truncate' AND tgrelid IN ('stays_i'::regclass, 'stays_i1'::regclass)}),
	'stays_i stays_i1', 'an attached partitioned table and its partitions get the TRUNCATE trigger');
is($node->safe_psql('postgres', q{SELECT version FROM stays WHERE id = 300}), '1', 'its rows are versioned');

# 5. DETACH: the detached table is a table of its own, not tracked: it keeps
# its rows with their versions and timestamps and edgesync's columns, and
# none of edgesync's triggers; its later changes are neither versioned,
# logged nor streamed.
my $kept = $node->safe_psql('postgres', q{SELECT id || ':' || version || ':' || created_at FROM stays WHERE id = 100 OR id = 101 ORDER BY id LIMIT 1});
$node->safe_psql('postgres', q{ALTER TABLE stays DETACH PARTITION stays_c});
stream();
$mark = last_log_id();
is($node->safe_psql('postgres', q{
	SELECT edgesync._is_tracked('stays_c') || ' ' || count(t.tgname)
	  FROM (SELECT 1) x LEFT JOIN pg_trigger t ON t.tgrelid = 'stays_c'::regclass}),
	'false 0', 'a detached partition is not tracked and keeps no trigger of edgesync');
is($node->safe_psql('postgres', q{SELECT id || ':' || version || ':' || created_at FROM stays_c ORDER BY id LIMIT 1}),
	$kept, 'it keeps its rows, versions and timestamps');
$node->safe_psql('postgres', q{UPDATE stays_c SET note = 'detached'; TRUNCATE stays_c; INSERT INTO stays_c VALUES (102, 'C', 'x')});
is(log_since($mark), '', 'its changes are not logged');
ok(!grep({ /"table":"stays(_c)?"/ } stream()), 'nor streamed');

# DETACH ... CONCURRENTLY (two transactions), and DETACH in a tracked
# schema: the table is then tracked on its own, as any new table there.
$node->safe_psql('postgres', q{ALTER TABLE stays DETACH PARTITION stays_f CONCURRENTLY});
is($node->safe_psql('postgres', q{
	SELECT edgesync._is_tracked('stays_f') || ' ' || count(t.tgname)
	  FROM (SELECT 1) x LEFT JOIN pg_trigger t ON t.tgrelid = 'stays_f'::regclass}),
	'false 0', 'DETACH CONCURRENTLY: the same');
$node->safe_psql('postgres', q{ALTER TABLE stays DETACH PARTITION ward_d.stays_d});
is($node->safe_psql('postgres', q{
	SELECT edgesync._is_tracked('ward_d.stays_d') || ' ' ||
	       (SELECT string_agg(tgname || (tgparentid <> 0)::text, ' ' ORDER BY tgname) FROM pg_trigger
	         WHERE tgrelid = 'ward_d.stays_d'::regclass)}),
	'true edgesync_logfalse edgesync_log_truncatefalse edgesync_versionfalse',
	'detached into a tracked schema, a table is tracked on its own');
$node->safe_psql('postgres', q{UPDATE ward_d.stays_d SET note = 'alone again'});
is($node->safe_psql('postgres', q{SELECT version FROM ward_d.stays_d}), '4', 'its versions go on');

$node->stop;
done_testing();
