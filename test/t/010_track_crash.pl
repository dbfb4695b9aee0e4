# The change log survives a crash: after an immediate shutdown every committed
# change has its sync_log row (the log is written in the same transaction as
# the change), and nothing of an uncommitted transaction remains.
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
	CREATE TABLE hospital_patients (id int PRIMARY KEY, name text);
	SELECT edgesync.track('hospital_patients');
});

# An open transaction with buffered and flushed log entries at the crash.
my $open = $node->background_psql('postgres');
$open->query_safe('BEGIN');
$open->query_safe(q{INSERT INTO hospital_patients SELECT g, 'uncommitted' FROM generate_series(100001, 103000) g});

# Committed work: several statements, some larger than one log batch.
$node->safe_psql('postgres', q{
	INSERT INTO hospital_patients SELECT g, 'p' || g FROM generate_series(1, 5000) g;
	UPDATE hospital_patients SET name = name || '!' WHERE id % 3 = 0;
	DELETE FROM hospital_patients WHERE id % 7 = 0;
});

$node->stop('immediate');
$open->{run}->kill_kill;
$node->start;

is($node->safe_psql('postgres', q{SELECT count(*) FROM hospital_patients}),
	5000 - int(5000 / 7), 'committed rows survived');
is($node->safe_psql('postgres', q{SELECT count(*) FROM edgesync.sync_log WHERE op = 'I'}),
	'5000', 'one log row per committed insert');
is($node->safe_psql('postgres', q{SELECT count(*) FROM edgesync.sync_log WHERE op = 'U'}),
	int(5000 / 3), 'one log row per committed update');
is($node->safe_psql('postgres', q{SELECT count(*) FROM edgesync.sync_log WHERE op = 'D'}),
	int(5000 / 7), 'one log row per committed delete');
is($node->safe_psql('postgres', q{SELECT count(*) FROM edgesync.sync_log WHERE (pk->>'id')::int > 100000}),
	'0', 'nothing of the transaction open at the crash');
is($node->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE p.version = l.version) || '/' || count(*)
	  FROM hospital_patients p
	  JOIN (SELECT (pk->>'id')::int AS id, max(version) AS version
	          FROM edgesync.sync_log GROUP BY 1) l USING (id)}),
	(5000 - int(5000 / 7)) . '/' . (5000 - int(5000 / 7)),
	'the log has the current version of every row');

# Tracking still works after recovery.
$node->safe_psql('postgres', q{UPDATE hospital_patients SET name = 'after' WHERE id = 1});
is($node->safe_psql('postgres', q{SELECT version FROM hospital_patients WHERE id = 1}), '2',
	'versions go on after recovery');

$node->stop;
done_testing();
