# Many hospitals, one cloud (issue 12, point 5): three hospital clusters
# ship into one cloud database, a table keyed by (hospital_id, id).
#
#  1. Each source has its own applied position on the cloud: three rows in
#     applied_lsn, each named after its hospital's system identifier, each
#     moving only with its own hospital's batches.
#  2. One hospital is shut down immediately in the middle of its backlog and
#     stays down while the other two go on writing and shipping: the cloud
#     converges on theirs, and the down hospital's position does not move.
#  3. A hospital whose cloud is unreachable for it (its target disabled)
#     writes meanwhile and catches up when it is back.
#  4. The down hospital is started again and catches up: every hospital's
#     rows on the cloud equal its own (ordered checksums), and no row of one
#     hospital was touched by another's stream.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);
use FindBin;
use lib "$FindBin::RealBin/../perl";
use EdgesyncTest;

my $cloud = edgesync_node('cloud');
my $table = q{CREATE TABLE visits (hospital_id int NOT NULL, id int NOT NULL, ward text, note text,
                                   PRIMARY KEY (hospital_id, id))};
$cloud->safe_psql('postgres', "CREATE EXTENSION edgesync; $table; SELECT edgesync.track('visits');");
my $url = edgesync_applier_url($cloud, ['visits']);

my @hospitals;
for my $h (1 .. 3)
{
	my $node = edgesync_node("hospital$h", extra_conf => q{
edgesync.ship_databases = 'postgres'
edgesync.ship_naptime = 50ms
edgesync.ship_retry_min = 50ms
edgesync.ship_retry_max = 500ms
log_statement = none
});
	$node->safe_psql('postgres', "CREATE EXTENSION edgesync; $table; SELECT edgesync.track('visits');");
	$node->safe_psql('postgres',
		"SELECT edgesync.add_target('cloud', '$url', batch_changes => 300, timeout_ms => 5000)");
	push @hospitals, $node;
}

# Hospital h's transactions of inserts, updates and deletes of its own rows.
my @next_id = (0, 1, 1, 1);
sub workload
{
	my ($h, $txns, $rows) = @_;
	my $sql = '';
	for (1 .. $txns)
	{
		my $first = $next_id[$h];
		my $last = $first + $rows - 1;
		$next_id[$h] += $rows;
		$sql .= "BEGIN; INSERT INTO visits SELECT $h, g, 'A', repeat('x', g % 40) FROM generate_series($first, $last) g; ";
		$sql .= "UPDATE visits SET ward = 'B' WHERE id % 3 = 0 AND id BETWEEN $first - 30 AND $last; ";
		$sql .= "DELETE FROM visits WHERE id % 7 = 0 AND id BETWEEN $first - 40 AND $last; COMMIT;\n";
	}
	$hospitals[$h - 1]->safe_psql('postgres', $sql);
}

sub checksum
{
	my ($h) = @_;
	return "SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, ',' ORDER BY id)), '')
	          FROM (SELECT hospital_id, id, ward, note, version FROM visits WHERE hospital_id = $h) t";
}

sub wait_converged
{
	my ($what, @which) = @_;
	for my $h (@which)
	{
		my ($source, $replica) = ('', '');
		for (1 .. 900)
		{
			$source = $hospitals[$h - 1]->safe_psql('postgres', checksum($h));
			my ($rc, $out) = $cloud->psql('postgres', checksum($h));
			$replica = $out // '';
			last if $source eq $replica;
			sleep(0.1);
		}
		is($replica, $source, "$what: hospital $h: its rows on the cloud equal its own");
	}
}

# The cloud's applied position of each hospital, by the hospital's system identifier.
my %sysid = map {
	$hospitals[$_ - 1]->safe_psql('postgres', 'SELECT system_identifier FROM pg_control_system()') => $_
} 1 .. 3;
sub positions
{
	my %by_hospital;
	for my $line (split /\n/,
		$cloud->safe_psql('postgres', q{SELECT source || '|' || lsn FROM edgesync.applied_lsn}))
	{
		my ($source, $lsn) = split /\|/, $line;
		my ($sysid) = split m{/}, $source;
		$by_hospital{ $sysid{$sysid} // "unknown $source" } = $lsn;
	}
	return \%by_hospital;
}

# ---------------------------------------------------------------------------
# 1. Three sources, three positions.

workload($_, 10, 40) for 1 .. 3;
wait_converged('all three shipping', 1 .. 3);
my $pos = positions();
is_deeply([ sort keys %$pos ], [ 1, 2, 3 ], 'one applied position per hospital, named after its system');

# ---------------------------------------------------------------------------
# 2. Hospital 2 goes down mid-backlog; the others go on.

workload(2, 40, 100);
$hospitals[1]->stop('immediate');
my $pos2 = positions()->{2};
workload($_, 20, 50) for 1, 3;
wait_converged('hospital 2 down', 1, 3);
is(positions()->{2}, $pos2, 'hospital 2 down: its position did not move');

# ---------------------------------------------------------------------------
# 3. Hospital 3 cannot reach the cloud for a while, and writes meanwhile.

$hospitals[2]->safe_psql('postgres', q{SELECT edgesync.alter_target('cloud', enabled => false)});
my $pos3 = positions()->{3};
workload(3, 30, 50);
workload(1, 5, 20);
wait_converged('hospital 3 unreachable', 1);
is(positions()->{3}, $pos3, 'hospital 3 unreachable: its position did not move');
$hospitals[2]->safe_psql('postgres', q{SELECT edgesync.alter_target('cloud', enabled => true)});
wait_converged('hospital 3 back', 3);

# ---------------------------------------------------------------------------
# 4. Hospital 2 back: it catches up; every hospital converged.

$hospitals[1]->start;
workload(2, 5, 20);
wait_converged('hospital 2 back', 1 .. 3);
$pos = positions();
is(scalar(keys %$pos), 3, 'still one position per hospital');
for my $h (1 .. 3)
{
	my $ahead = $hospitals[$h - 1]->safe_psql('postgres',
		"SELECT '$pos->{$h}'::pg_lsn <= pg_current_wal_lsn()");
	is($ahead, 't', "hospital $h: its applied position is one of its own LSNs, not another's");
}
is($cloud->safe_psql('postgres', q{SELECT count(*) FROM visits WHERE hospital_id NOT IN (1, 2, 3)}),
	'0', 'no row outside the three hospitals');

$_->stop for @hospitals;
$cloud->stop;
done_testing();
