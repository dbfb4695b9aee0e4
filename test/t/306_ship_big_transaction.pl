# A source transaction larger than edgesync.ship_max_transaction_size: the
# shipper holds a transaction's output in memory to send it as one batch, so
# past the limit it stops with an error instead of exhausting the server's
# memory, ships nothing of that transaction or after it, and ships all of it
# once the limit is raised.
#
# The shipper is run with edgesync.ship() (no background worker), under the
# setting's smallest value, 16 MB, set in the session (the setting is
# superuser-only, so a DBA can also push one big transaction through by hand
# this way).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use EdgesyncTest;

my $cloud = edgesync_node('cloud');
my $hospital = edgesync_node('hospital');

my $schema = q{
	CREATE EXTENSION edgesync;
	CREATE TABLE hospital_patients (id int PRIMARY KEY, notes text NOT NULL);
	SELECT edgesync.track('hospital_patients');
};
$hospital->safe_psql('postgres', $schema);
$cloud->safe_psql('postgres', $schema);
$cloud->safe_psql('postgres', q{
	CREATE ROLE cloud_applier LOGIN IN ROLE edgesync_applier;
	GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON hospital_patients TO cloud_applier;
});
my $url = 'postgresql://cloud_applier@/postgres?host=' . $cloud->host . '&port=' . $cloud->port;
$hospital->safe_psql('postgres', "SELECT edgesync.add_target('cloud_db', '$url')");

my $checksum = q{SELECT count(*) || ':' || coalesce(md5(string_agg(id || '/' || notes || '/' || version, ',' ORDER BY id)), '')
                   FROM hospital_patients};
my $limit = q{SET edgesync.ship_max_transaction_size = '16MB';};

# A small transaction goes through under the limit.
$hospital->safe_psql('postgres',
	q{INSERT INTO hospital_patients SELECT g, 'small' FROM generate_series(1, 10) g});
$hospital->safe_psql('postgres', $limit . q{SELECT edgesync.ship('cloud_db', 1000)});
is($cloud->safe_psql('postgres', 'SELECT count(*) FROM hospital_patients'),
	'10', 'a transaction under the limit is shipped');

# About 25 MB of output in one transaction, then a small one behind it.
$hospital->safe_psql('postgres', q{
	INSERT INTO hospital_patients SELECT g, repeat('n', 200) FROM generate_series(11, 100010) g;
});
$hospital->safe_psql('postgres',
	q{INSERT INTO hospital_patients VALUES (200000, 'behind the big one')});
my $acked_before = $hospital->safe_psql('postgres',
	q{SELECT acked_lsn FROM edgesync.target_state WHERE name = 'cloud_db'});

my ($rc, $out, $err) = $hospital->psql('postgres',
	q{\set VERBOSITY verbose
	} . $limit . q{SELECT edgesync.ship('cloud_db', 1000)});
isnt($rc, 0, 'ship() fails on a transaction over the limit');
like($err, qr/54000: transaction \d+ is too large to ship from replication slot "edgesync_cloud_db"/,
	'the error names the transaction and the slot, with SQLSTATE 54000');
like($err, qr/DETAIL:  Its output passed edgesync.ship_max_transaction_size \(16384 kB\)/,
	'the detail names the setting and its value');
like($err, qr/HINT:  Raise edgesync.ship_max_transaction_size, or call edgesync.resync\(\)/,
	'the hint says what to do');
is($cloud->safe_psql('postgres', 'SELECT count(*) FROM hospital_patients'),
	'10', 'nothing of the big transaction, nor of the one behind it, reached the replica');
is($hospital->safe_psql('postgres',
		q{SELECT acked_lsn FROM edgesync.target_state WHERE name = 'cloud_db'}),
	$acked_before, 'nothing more is counted as acknowledged');

# The default limit (256MB) lets it through: nothing was lost.
$hospital->safe_psql('postgres', q{SELECT edgesync.ship('cloud_db', 1000)});
is($cloud->safe_psql('postgres', $checksum),
	$hospital->safe_psql('postgres', $checksum),
	'with the limit raised, the replica equals the hospital');
is($cloud->safe_psql('postgres', 'SELECT count(*) FROM hospital_patients'),
	'100011', 'the big transaction and the one behind it arrived');

# Only a superuser may move the limit.
$hospital->safe_psql('postgres', 'CREATE ROLE plain_user LOGIN');
($rc, $out, $err) = $hospital->psql('postgres',
	q{SET edgesync.ship_max_transaction_size = '4GB'}, extra_params => [ '-U', 'plain_user' ]);
like($err, qr/permission denied to set parameter "edgesync.ship_max_transaction_size"/,
	'a plain role cannot change the limit');

$hospital->stop;
$cloud->stop;
done_testing();
