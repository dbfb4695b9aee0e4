# A source transaction larger than edgesync.ship_transaction_memory, shipped
# to a replica and to an HTTP receiver.  Past that much output the shipper
# writes the transaction's further rows to a temporary file and reads them
# back while the batch is sent, so:
#
#  - the transaction arrives whole, in one batch (one replica transaction,
#    one HTTP request), and what follows it arrives too; a replica that
#    rejects a row of the spilled part applies none of it;
#  - the process that ships grows by far less than the transaction's output
#    (which, held in memory, it would hold about three times);
#  - the temporary file is gone afterwards.
#
# The shipper is run with edgesync.ship(), with the setting at its smallest,
# 1 MB, set in the session (it is superuser-only), then as the background
# worker with the setting in the configuration.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use EdgesyncReceiver;
use EdgesyncTest;

my $cloud = edgesync_node('cloud');
my $hospital = edgesync_node('hospital');
my $receiver = EdgesyncReceiver->new;

my $schema = q{
	CREATE EXTENSION edgesync;
	CREATE TABLE hospital_patients (id int PRIMARY KEY, notes text NOT NULL);
	SELECT edgesync.track('hospital_patients');
};
$hospital->safe_psql('postgres', $schema);
$cloud->safe_psql('postgres', $schema);
my $url = edgesync_applier_url($cloud, ['hospital_patients']);
$hospital->safe_psql('postgres', "SELECT edgesync.add_target('cloud_db', '$url')");
$hospital->safe_psql('postgres',
	"SELECT edgesync.add_target('api', '" . $receiver->url . "', timeout_ms => 60000)");

my $checksum = q{SELECT count(*) || ':' || coalesce(md5(string_agg(id || '/' || notes || '/' || version, ',' ORDER BY id)), '')
                   FROM hospital_patients};

# Ships a target in a session with the smallest setting; returns how much the
# session's peak resident memory grew while it did (kB) and the temporary
# files left in the default tablespace afterwards.
sub ship
{
	my ($target) = @_;
	my $hwm = q{(regexp_match(pg_read_file('/proc/' || pg_backend_pid() || '/status'), 'VmHWM:\s+(\d+) kB'))[1]::bigint};
	my $out = $hospital->safe_psql('postgres', qq{
		SET edgesync.ship_transaction_memory = '1MB';
		SELECT $hwm AS before \\gset
		SELECT edgesync.ship('$target', 1000);
		SELECT ($hwm - :before) || ' ' || (SELECT count(*) FROM pg_ls_tmpdir());
	});
	my @lines = split /\n/, $out;
	is($hospital->safe_psql('postgres',
			"SELECT consecutive_failures FROM edgesync.target_state WHERE name = '$target'"),
		'0', "$target: shipped without failure");
	return split / /, $lines[-1];
}

# A small transaction first: nothing to spill.
$hospital->safe_psql('postgres',
	q{INSERT INTO hospital_patients SELECT g, 'small' FROM generate_series(1, 10) g});
ship($_) for qw(cloud_db api);

# About 50 MB of sql output (80 MB of json) in one transaction, then a small
# one behind it.
$hospital->safe_psql('postgres', q{
	INSERT INTO hospital_patients SELECT g, repeat('n', 200) FROM generate_series(11, 200010) g;
});
$hospital->safe_psql('postgres',
	q{INSERT INTO hospital_patients VALUES (300000, 'behind the big one')});

# A replica that rejects a row deep in the spilled part: nothing of the
# transaction is applied (the chunks share one replica transaction), and the
# next attempt applies it whole.
$cloud->safe_psql('postgres',
	q{ALTER TABLE hospital_patients ADD CONSTRAINT not_yet CHECK (id <> 150000) NOT VALID});
$hospital->safe_psql('postgres',
	q{SET edgesync.ship_transaction_memory = '1MB'; SELECT edgesync.ship('cloud_db', 1000)});
like($hospital->safe_psql('postgres',
		q{SELECT last_error FROM edgesync.target_state WHERE name = 'cloud_db'}),
	qr/replica rejected batch: .*"not_yet"/, 'replica: a row rejected in the spilled part fails the batch');
is($cloud->safe_psql('postgres', 'SELECT count(*) FROM hospital_patients'),
	'10', 'replica: and nothing of the transaction was applied');
$cloud->safe_psql('postgres', 'ALTER TABLE hospital_patients DROP CONSTRAINT not_yet');

my ($grown, $tmpfiles) = ship('cloud_db');
is($cloud->safe_psql('postgres', $checksum),
	$hospital->safe_psql('postgres', $checksum),
	'replica: the big transaction and the one behind it arrived whole');
cmp_ok($grown, '<', 64 * 1024,
	"replica: the shipping session grew by $grown kB, far less than the transaction's output");
is($tmpfiles, '0', 'replica: no temporary file is left');
is($cloud->safe_psql('postgres',
		q{SELECT count(DISTINCT xmin::text) FROM hospital_patients WHERE id BETWEEN 11 AND 200010}),
	'1', 'replica: the big transaction was applied as one transaction');

($grown, $tmpfiles) = ship('api');
cmp_ok($grown, '<', 64 * 1024, "http: the shipping session grew by $grown kB");
is($tmpfiles, '0', 'http: no temporary file is left');
my @batches = $receiver->deliveries;
my ($big) = grep { @{ $_->{lines} } > 200000 } @batches;
ok($big, 'http: the big transaction arrived in one request');
my @inserts = $big ? grep { /"op":"insert"/ } @{ $big->{lines} } : ();
is(scalar @inserts, 200000, 'http: with every one of its rows');
like($big ? $big->{lines}[-1] : '', qr/^\{"op":"commit","changes":200000,/,
	'http: ending with its commit line');
my %ids;
for my $b (@batches)
{
	$ids{$_}++ for map { /"op":"insert".*?"pk":\{"id":(\d+)\}/ ? $1 : () } @{ $b->{lines} };
}
is(scalar(keys %ids), 200011, 'http: every row arrived, the one behind the big transaction too');

# The background worker, with the setting at 1MB in the configuration: it
# reads the spill file back outside any transaction.  An UPDATE of every row
# in one transaction reaches both targets.
$hospital->append_conf('postgresql.conf', qq{
edgesync.ship_transaction_memory = '1MB'
edgesync.ship_databases = 'postgres'
});
$hospital->reload;
$hospital->safe_psql('postgres', q{UPDATE hospital_patients SET notes = notes || 'x'});
ok($hospital->poll_query_until('postgres',
		q{SELECT bool_and(acked_lsn >= pg_current_wal_lsn() - 1024 * 1024 AND consecutive_failures = 0)
		    FROM edgesync.target_state}),
	'worker: both targets caught up with the big UPDATE');
is($cloud->safe_psql('postgres', $checksum),
	$hospital->safe_psql('postgres', $checksum),
	'worker: the replica equals the hospital');
my %versions;
for my $b ($receiver->deliveries)
{
	$versions{$_}++ for map { /"op":"update".*?"version":(\d+)/ ? $1 : () } @{ $b->{lines} };
}
is($versions{2} // 0, 200011, 'worker: the HTTP receiver got every row\'s update');
is($hospital->safe_psql('postgres', 'SELECT count(*) FROM pg_ls_tmpdir()'),
	'0', 'worker: no temporary file is left');

# Only a superuser may move the setting.
$hospital->safe_psql('postgres', 'CREATE ROLE plain_user LOGIN');
my ($rc, $out, $err) = $hospital->psql('postgres',
	q{SET edgesync.ship_transaction_memory = '4GB'}, extra_params => [ '-U', 'plain_user' ]);
like($err, qr/permission denied to set parameter "edgesync.ship_transaction_memory"/,
	'a plain role cannot change the setting');

$receiver->stop;
$hospital->stop;
$cloud->stop;
done_testing();
