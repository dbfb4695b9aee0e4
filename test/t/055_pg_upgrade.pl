# pg_upgrade of a hospital server from an older PostgreSQL major to this one
# (docs/upgrading.md, "Upgrading PostgreSQL"): tracked tables, a tracked
# schema, column policies, the change log and targets come through; the
# targets' slots, which pg_upgrade does not carry from 15 or 16, come back
# with resync(), and the re-send reaches an HTTP receiver with the policy
# applied.  It needs an older PostgreSQL with edgesync installed beside this
# one (scripts/test-matrix.sh puts this machine's 15 into the chroot of
# PostgreSQL 17); elsewhere its assertions are skipped, so that every version
# counts the same tests.
use strict;
use warnings;

use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);
use FindBin;
use lib "$FindBin::RealBin/../perl";
use EdgesyncTest;
use EdgesyncReceiver;

my $new = PostgreSQL::Test::Cluster->new('new');
my $new_bindir = $new->config_data('--bindir');
my ($new_major) = `$new_bindir/postgres --version` =~ /(\d+)(?:\.\d+)?/;

# The newest older major with edgesync installed, if any.
my $old_path;
for my $dir (sort { ($b =~ /(\d+)$/)[0] <=> ($a =~ /(\d+)$/)[0] } glob('/usr/lib/postgresql/*'))
{
	my ($major) = $dir =~ /(\d+)$/;
	next unless defined $major && $major < $new_major;
	next unless -x "$dir/bin/pg_upgrade" || -x "$dir/bin/postgres";
	next unless -f "$dir/lib/edgesync.so";
	$old_path = $dir;
	last;
}

SKIP:
{
	skip 'no older PostgreSQL with edgesync installed beside this one', 8 unless $old_path;
	note("upgrading from $old_path to PostgreSQL $new_major");

	my $receiver = EdgesyncReceiver->new;
	my $old = PostgreSQL::Test::Cluster->new('old', install_path => $old_path);
	$old->init(allows_streaming => 'logical');
	$old->append_conf('postgresql.conf',
		slurp_file(dirname(__FILE__) . '/../edgesync.conf') . "jit = off\n");
	# The test framework of a newer release may write settings the old server
	# does not know (18's writes autovacuum_worker_slots): comment them out.
	for (1 .. 5)
	{
		my $check = `$old_path/bin/postgres -D @{[ $old->data_dir ]} -C port 2>&1`;
		my @unknown = $check =~ /unrecognized configuration parameter "(\w+)"/g;
		last unless @unknown;
		my $conf = slurp_file($old->data_dir . '/postgresql.conf');
		$conf =~ s/^(\s*$_\s*=)/# (not in this release) $1/mg for @unknown;
		open(my $fh, '>', $old->data_dir . '/postgresql.conf') or die $!;
		print $fh $conf;
		close $fh;
	}
	unless ($old->start(fail_ok => 1))
	{
		diag(slurp_file($old->logfile)
			  . `$old_path/bin/postgres -D @{[ $old->data_dir ]} -C port 2>&1`);
		BAIL_OUT('the old server did not start');
	}
	$old->safe_psql('postgres', q{
		SET client_min_messages = warning;
		CREATE EXTENSION edgesync;
		CREATE TABLE patients (id int PRIMARY KEY, name text, ward text);
		SELECT edgesync.track('patients');
		SELECT edgesync.set_column_policy('patients', 'name', 'redact');
		CREATE SCHEMA clinic;
		SELECT edgesync.track_schema('clinic');
		INSERT INTO patients VALUES (1, 'Ann', 'A'), (2, 'Bob', 'B'), (3, 'Cy', 'C');
		UPDATE patients SET ward = 'D' WHERE id = 2;
	});
	$old->safe_psql('postgres',
		"SELECT edgesync.add_target('cloud', '" . $receiver->url . "')");
	my $before = $old->safe_psql('postgres', q{
		SELECT string_agg(format('%s:%s:%s', id, ward, version), ',' ORDER BY id) FROM patients});
	my $log_before = $old->safe_psql('postgres', 'SELECT count(*) FROM edgesync.sync_log');
	$old->stop;

	# initdb turns data checksums on by default from 18; pg_upgrade needs the
	# old cluster's setting (off here, as initdb left it before 18).
	$new->init(allows_streaming => 'logical',
		extra => $new_major >= 18 ? ['--no-data-checksums'] : []);
	$new->append_conf('postgresql.conf',
		slurp_file(dirname(__FILE__) . '/../edgesync.conf'));
	my $out = PostgreSQL::Test::Utils::tempdir;
	my @upgrade = (
		"$new_bindir/pg_upgrade", '--no-sync',
		'-b', "$old_path/bin", '-B', $new_bindir,
		'-d', $old->data_dir, '-D', $new->data_dir,
		'-s', $new->host, '-p', $old->port, '-P', $new->port);
	my ($stdout, $stderr);
	my $ok = IPC::Run::run([ @upgrade, '--check' ], '>', \$stdout, '2>', \$stderr,
		init => sub { chdir $out });
	ok($ok, 'pg_upgrade --check accepts a server with edgesync')
	  or diag("$stdout\n$stderr\n" . join("\n",
		map { slurp_file($_) } glob($new->data_dir . '/pg_upgrade_output.d/*/*.txt')));
	$ok = IPC::Run::run(\@upgrade, '>', \$stdout, '2>', \$stderr, init => sub { chdir $out });
	ok($ok, 'pg_upgrade') or diag("$stdout\n$stderr\n" . join("\n",
		map { join("\n", grep { /error|ERROR|DETAIL|HINT/ } split /\n/, slurp_file($_)) }
		  glob($new->data_dir . '/pg_upgrade_output.d/*/log/pg_upgrade_dump_*.log')));

	$new->start;
	is( $new->safe_psql('postgres', q{
			SELECT string_agg(format('%s:%s:%s', id, ward, version), ',' ORDER BY id) FROM patients}),
		$before, 'the tracked table and its versions came through');
	is( $new->safe_psql('postgres', q{
			SELECT (SELECT count(*) FROM edgesync.sync_log)
			    || ' ' || (SELECT string_agg(relid::text || '.' || attname || '=' || policy, ',')
			                 FROM edgesync.column_policies)
			    || ' ' || (SELECT string_agg(nspname, ',') FROM edgesync.tracked_schemas)}),
		"$log_before patients.name=redact clinic",
		'the change log, the column policy and the tracked schema came through');
	is( $new->safe_psql('postgres', q{
			UPDATE patients SET ward = 'E' WHERE id = 3;
			CREATE TABLE clinic.visits (id int PRIMARY KEY);
			SELECT (SELECT version FROM patients WHERE id = 3)
			    || ' ' || (SELECT count(*) FROM edgesync.sync_log WHERE relid = 'patients'::regclass)
			    || ' ' || (SELECT count(*) FROM edgesync.tracked_tables)}),
		'2 5 2', 'the triggers run on the new server, and the schema still tracks new tables');

	is( $new->safe_psql('postgres',
			"SELECT slot_exists FROM edgesync.target_status WHERE name = 'cloud'"),
		'f', 'the target came through, its slot did not');
	$new->safe_psql('postgres', "SELECT edgesync.resync('cloud')");
	for (1 .. 50)
	{
		$new->safe_psql('postgres', "SELECT edgesync.ship('cloud')");
		last if grep { $_->{key} =~ /^resync-/ } $receiver->deliveries;
		sleep(0.1);
	}
	my @lines = map { @{ $_->{lines} } } $receiver->deliveries;
	my @ids = sort map { /"pk":\{"id":(\d+)\}/ ? $1 : () } @lines;
	is(join(',', @ids), '1,2,3', 'resync() sends every row from the upgraded server');
	is(scalar(grep { /"(Ann|Bob|Cy)"/ } @lines), 0, 'with the column policy applied (no name leaves)');
	$new->stop;
}

done_testing();
