# Targets on their own (issue 18): the shipper's figures.
#
#  1. Exact figures: ship() and target_status count the same changes for an
#     HTTP receiver and a replica, checked against what each received: an
#     UPDATE that changes the primary key is one change on both kinds (the
#     sql format writes it as a delete and an upsert), a TRUNCATE one, a
#     logical message none; batches_shipped and bytes_shipped are the
#     requests the receiver stored and their bodies, the transactions the
#     replica committed and their query strings; a full re-send counts its
#     rows and batches.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use EdgesyncTest;
use EdgesyncReceiver;

my $receiver = EdgesyncReceiver->new;
my $cloud = edgesync_node('cloud');
my $hospital = edgesync_node('hospital', extra_conf => q{
log_statement = none
});

# ---------------------------------------------------------------------------
# 1. Exact figures, through ship() in a database no worker serves.

my $visits = q{
	CREATE EXTENSION edgesync;
	CREATE TABLE visits (id int PRIMARY KEY, note text NOT NULL);
	SELECT edgesync.track('visits');
};
$hospital->safe_psql('postgres', 'CREATE DATABASE counts');
$cloud->safe_psql('postgres', 'CREATE DATABASE counts');
$hospital->safe_psql('counts', $visits);
$cloud->safe_psql('counts', $visits);
# Every row the replica writes, with its transaction and the query string
# that carried it: a batch is one transaction and one query string.
$cloud->safe_psql('counts', q{
	CREATE ROLE counts_applier LOGIN IN ROLE edgesync_applier;
	GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON visits TO counts_applier;
	CREATE TABLE audit (xid bigint, query_bytes int);
	CREATE FUNCTION record_audit() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
		SET search_path = public AS $$
	BEGIN
		INSERT INTO audit VALUES (txid_current(), octet_length(current_query()));
		RETURN NULL;
	END $$;
	CREATE TRIGGER record_audit AFTER INSERT OR UPDATE OR DELETE ON visits
		FOR EACH ROW EXECUTE FUNCTION record_audit();
	CREATE TRIGGER record_audit_truncate AFTER TRUNCATE ON visits
		FOR EACH STATEMENT EXECUTE FUNCTION record_audit();
	ALTER TABLE visits ENABLE ALWAYS TRIGGER record_audit;
	ALTER TABLE visits ENABLE ALWAYS TRIGGER record_audit_truncate;
});
my $counts_url = 'postgresql://counts_applier@/counts?host=' . $cloud->host . '&port=' . $cloud->port;
$hospital->safe_psql('counts', "SELECT edgesync.add_target('counts_db', '$counts_url')");
$hospital->safe_psql('counts', "SELECT edgesync.add_target('counts_api', '" . $receiver->url('/counts') . "')");

# Ships to both targets; returns "http_changes replica_changes" as ship() says.
sub ship_both
{
	return $hospital->safe_psql('counts',
		q{SELECT edgesync.ship('counts_api') || ' ' || edgesync.ship('counts_db')});
}

my @steps = (
	[ 'two inserts', q{INSERT INTO visits VALUES (1, 'a'), (2, 'b')}, 2 ],
	[ 'an update of the key', q{UPDATE visits SET id = 10 WHERE id = 1}, 1 ],
	[ 'mixed, with key updates', q{
		BEGIN;
		UPDATE visits SET id = 20 WHERE id = 2;
		UPDATE visits SET note = 'c' WHERE id = 10;
		DELETE FROM visits WHERE id = 20;
		INSERT INTO visits VALUES (3, 'd');
		UPDATE visits SET id = id + 100;
		COMMIT;}, 6 ],
	[ 'an insert and a message', q{
		BEGIN;
		INSERT INTO visits VALUES (4, 'e');
		SELECT pg_logical_emit_message(true, 'app', 'not a change');
		COMMIT;}, 1 ],
	[ 'a truncate', q{TRUNCATE visits}, 1 ],
	[ 'inserts after it', q{INSERT INTO visits SELECT g, 'f' FROM generate_series(200, 204) g}, 5 ],
);
my $expected = 0;
for my $step (@steps)
{
	my ($what, $sql, $changes) = @$step;
	$hospital->safe_psql('counts', $sql);
	is(ship_both(), "$changes $changes", "ship() counts $what as $changes on both kinds");
	$expected += $changes;
}

sub figures
{
	my ($target) = @_;
	return $hospital->safe_psql('counts', qq{
		SELECT changes_shipped || ' ' || batches_shipped || ' ' || bytes_shipped
		  FROM edgesync.target_status WHERE name = '$target'});
}

# What the HTTP receiver stored: changes are the lines that are not begin,
# commit or message lines; a batch one request; its bytes its body's.
sub received
{
	my ($key_pattern) = @_;
	my ($changes, $batches, $bytes) = (0, 0, 0);
	for my $b (grep { $_->{key} =~ $key_pattern } $receiver->deliveries)
	{
		$batches++;
		$bytes += length($_) + 1 for @{ $b->{lines} };
		$changes += grep { /^\{"op":"(insert|update|delete|truncate)"/ } @{ $b->{lines} };
	}
	return ($changes, $batches, $bytes);
}
my ($changes, $batches, $bytes) = received(qr/^\d/);
is($changes, $expected, "the HTTP receiver got $expected changes");
is(figures('counts_api'), "$expected $batches $bytes",
	'HTTP target: changes, batches and bytes are what the receiver stored');

my ($replica_batches, $replica_bytes) = split / /, $cloud->safe_psql('counts', q{
	SELECT count(*) || ' ' || sum(query_bytes)
	  FROM (SELECT DISTINCT xid, query_bytes FROM audit) b});
is(figures('counts_db'), "$expected $replica_batches $replica_bytes",
	'replica target: the same changes; batches and bytes are the transactions and query strings it committed');
is($cloud->safe_psql('counts', q{SELECT string_agg(id || note, ',' ORDER BY id) FROM visits}),
	$hospital->safe_psql('counts', q{SELECT string_agg(id || note, ',' ORDER BY id) FROM visits}),
	'the replica equals the source');

# A full re-send counts its rows and its batches (the HTTP receiver's).
$hospital->safe_psql('counts', q{SELECT edgesync.resync('counts_api')});
$hospital->safe_psql('counts', q{SELECT edgesync.resync('counts_db')});
is(ship_both(), '5 5', 'ship() counts a full re-send as its rows');
my ($resync_changes, $resync_batches, $resync_bytes) = received(qr/^resync-/);
is(figures('counts_api'),
	($expected + $resync_changes) . ' ' . ($batches + $resync_batches) . ' ' . ($bytes + $resync_bytes),
	'HTTP target: a re-send adds its rows, requests and bytes');
like(figures('counts_db'), qr/^@{[$expected + 5]} @{[$replica_batches + 1]} \d+$/,
	'replica target: a re-send adds its rows and its batch');

$hospital->stop;
$cloud->stop;
$receiver->stop;
done_testing();
